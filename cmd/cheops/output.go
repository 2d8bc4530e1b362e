package main

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/cheops-io/cheops"
	"github.com/cheops-io/cheops/client"
)

// print writes v as JSON or YAML, or calls table for the table format.
func (f *clientFlags) print(cmd *cobra.Command, v any, table func(w *tabwriter.Writer)) error {
	out := cmd.OutOrStdout()
	switch f.Output {
	case "json":
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	case "yaml":
		b, err := yaml.Marshal(v)
		if err != nil {
			return err
		}
		_, err = out.Write(b)
		return err
	case "table":
		w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		table(w)
		return w.Flush()
	default:
		return usageError{fmt.Errorf("--output: %q is not table, json or yaml", f.Output)}
	}
}

// printResource shows a resource with its rollback, if any, and one line per replica.
func (f *clientFlags) printResource(cmd *cobra.Command, r client.Resource) error {
	return f.print(cmd, r, func(w *tabwriter.Writer) {
		fmt.Fprintf(w, "ID:\t%s\nName:\t%s\nGeneration:\t%d\nConsistency:\t%s\nState:\t%s\n", r.ID, r.Name, r.Generation, r.Policy.Consistency, r.State)
		if pol := r.Policy.WithDefaults(); pol.Conflict == cheops.ConflictAdopt {
			fmt.Fprintf(w, "Conflict:\tadopt (adopted objects: %s on delete)\n", pol.Adopted)
		}
		if len(r.DependsOn) > 0 {
			fmt.Fprintf(w, "Depends on:\t%s\n", strings.Join(r.DependsOn, ", "))
		}
		if r.Paused {
			fmt.Fprintln(w, "Paused:\tyes (cheops resume "+r.Name+")")
		}
		if rb := r.Rollback; rb != nil && rb.Generation == r.Generation {
			progress := "in progress"
			if rb.Done {
				progress = "done"
			}
			fmt.Fprintf(w, "Rollback:\tgeneration %d, %s\n", rb.Generation, progress)
			for _, site := range slices.Sorted(maps.Keys(rb.Reasons)) {
				fmt.Fprintf(w, "  %s:\t%s\n", site, rb.Reasons[site])
			}
		}
		fmt.Fprintln(w)
		fmt.Fprintln(w, "SITE\tSTATE\tLOCAL ID\tGENERATION\tATTEMPTS\tOVERRIDES\tMESSAGE")
		for _, rep := range r.Replicas {
			localID := rep.LocalID
			if rep.Adopted {
				localID += " (adopted)"
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%d\t%s\t%s\n", rep.Site, rep.State, localID, rep.ObservedGeneration, rep.Attempts, strings.Join(rep.Overrides, ","), replicaMessage(rep))
		}
	})
}

// replicaMessage is a replica's message, after what drifted on its site, if anything did.
func replicaMessage(rep cheops.Replica) string {
	if !rep.Drifted {
		return rep.Message
	}
	msg := "drifted: " + rep.DriftMessage
	if rep.Message != "" {
		msg += "; " + rep.Message
	}
	return msg
}

// labelsString writes labels as a selector would, sorted: "region=eu,tier=web".
func labelsString(l map[string]string) string {
	parts := make([]string, 0, len(l))
	for _, k := range slices.Sorted(maps.Keys(l)) {
		parts = append(parts, k+"="+l[k])
	}
	return strings.Join(parts, ",")
}

package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/cheops-io/cheops"
	"github.com/cheops-io/cheops/client"
)

func newListCmd(f *clientFlags) *cobra.Command {
	var o client.ListOptions
	var state string
	cmd := &cobra.Command{
		Use: "list", Short: "List resources", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := f.api()
			if err != nil {
				return err
			}
			o.State = cheops.ResourceState(state)
			all, err := c.ListAllResources(cmd.Context(), o)
			if err != nil {
				return err
			}
			return f.print(cmd, map[string]any{"items": all}, func(w *tabwriter.Writer) {
				fmt.Fprintln(w, "NAME\tID\tGENERATION\tSTATE\tREADY")
				for _, r := range all {
					fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%s\n", r.Name, r.ID, r.Generation, r.State, readyColumn(r))
				}
			})
		},
	}
	cmd.Flags().StringVar(&o.Site, "site", "", "only resources with a replica on this site")
	cmd.Flags().StringVar(&state, "state", "", "only resources in this state")
	cmd.Flags().StringVar(&o.NamePrefix, "name-prefix", "", "only resources whose name starts so")
	return cmd
}

// readyColumn says how many replicas are Ready at the current generation; for a rolled-back
// resource, whose replicas were put back to an earlier generation, how many are Ready at that one.
func readyColumn(r client.Resource) string {
	if r.State == cheops.ResourceRolledBack {
		at := map[int64]int{}
		var gen int64
		for _, rep := range r.Replicas {
			if rep.State == cheops.ReplicaReady {
				at[rep.ObservedGeneration]++
				gen = max(gen, rep.ObservedGeneration)
			}
		}
		if gen > 0 {
			return fmt.Sprintf("%d/%d at generation %d", at[gen], len(r.Replicas), gen)
		}
	}
	return fmt.Sprintf("%d/%d", r.ReadyReplicas(), len(r.Replicas))
}

package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/cheops-io/cheops"
	"github.com/cheops-io/cheops/client"
)

// applyOptions are apply's flags.
type applyOptions struct {
	file, name                 string
	sites, selector, expr      string
	consistency, policyTimeout string
	readiness, readyTimeout    string
	conflict, adopted          string
	rolloutWave, rolloutSoak   string
	rolloutGroups              []string
	rolloutMaxFailures         int
	// dependsOn is set when --depends-on is given: the names of resources depended on (none
	// when the flag is given empty).
	dependsOn *[]string
	drift     string
	wait      bool
	timeout   time.Duration
}

func newApplyCmd(f *clientFlags) *cobra.Command {
	var o applyOptions
	var dependsOn string
	cmd := &cobra.Command{
		Use:   "apply -f FILE|FOLDER|- (--sites a,b | --selector SEL | --scope EXPR)",
		Short: "Create or update resources from manifests (YAML, several documents, or JSON; a file or a folder)",
		Long: `Create a resource from a Kubernetes manifest, or from an OpenStack one ({type, spec}), or update
it when a resource of that name exists. The name defaults to the manifest's metadata.name (OpenStack:
spec.name). An update sets the manifest to the file's, and the scope and the policy fields whose
flags are given; what no flag names keeps its current value (--policy-timeout alone leaves a
transactional resource transactional). It is refused if the resource changed since apply read it.
-f may name a YAML file of several documents (---), or a folder, whose .yaml, .yml and .json files
are applied in name order; each manifest is a resource, the flags apply to all, and apply goes on
after one fails and exits non-zero at the end. --wait shows per-site progress until every replica
is Ready, or a replica fails. --depends-on names resources that must be available on a site before
these are applied there (a Namespace or a CRD declared as a resource is waited for without it).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cmd.Flags().Changed("depends-on") {
				deps := []string{}
				for _, name := range strings.Split(dependsOn, ",") {
					if name = strings.TrimSpace(name); name != "" {
						deps = append(deps, name)
					}
				}
				o.dependsOn = &deps
			}
			return f.apply(cmd, o)
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&o.file, "file", "f", "", "manifest file (YAML, several documents allowed, or JSON), a folder of them, or - for standard input")
	fl.StringVar(&o.name, "name", "", "resource name (default: the manifest's metadata.name, or spec.name)")
	fl.StringVar(&o.sites, "sites", "", "comma-separated site names")
	fl.StringVar(&o.selector, "selector", "", "label selector of sites, e.g. region=eu-west")
	fl.StringVar(&o.expr, "scope", "", `scope-lang expression, e.g. "paris & berlin", "paris | berlin", "(paris | lyon) & region=de"`)
	fl.StringVar(&o.consistency, "consistency", "", "eventual (default) or transactional (all sites or none)")
	fl.StringVar(&o.policyTimeout, "policy-timeout", "", "transactional: how long a site may take before every site is rolled back (default 5m)")
	fl.StringVar(&o.readiness, "readiness", "", "when a replica is Ready: status (default: when its object's status says so, e.g. a Deployment Available) or applied (once the site took it)")
	fl.StringVar(&o.readyTimeout, "ready-timeout", "", "how long an applied replica may take to become Ready before it fails on its site (default 5m)")
	fl.StringVar(&o.conflict, "conflict", "", "when a site already holds someone else's object of that name: abort (default: fail that site, naming the owner) or adopt (take it over)")
	fl.StringVar(&o.adopted, "adopted", "", "what deleting the resource does to an object it adopted: release (default: leave it, without cheops' marks) or delete")
	fl.StringVar(&o.rolloutWave, "rollout-wave", "", `progressive rollout: sites per wave, a count (3) or a percentage of the sites in scope ("30%")`)
	fl.StringArrayVar(&o.rolloutGroups, "rollout-group", nil, "progressive rollout: a label selector whose sites go before the others' (repeat, in order; e.g. canary=true)")
	fl.StringVar(&o.rolloutSoak, "rollout-soak", "", "progressive rollout: how long to wait after each wave (e.g. 30s)")
	fl.IntVar(&o.rolloutMaxFailures, "rollout-max-failures", 0, "progressive rollout: failed sites that stop it and pause the resource (0: never stop)")
	fl.StringVar(&dependsOn, "depends-on", "", `comma-separated names of resources that must be available on a site before this one is applied there ("" removes them)`)
	fl.StringVar(&o.drift, "drift", "", "when a replica's object is deleted or changed on its site by someone else: correct (default: re-apply it) or report (only say so)")
	fl.BoolVar(&o.wait, "wait", false, "wait until every replica is Ready, showing progress")
	fl.DurationVar(&o.timeout, "timeout", 5*time.Minute, "how long --wait waits")
	_ = cmd.RegisterFlagCompletionFunc("sites", f.completeSiteList)
	_ = cmd.RegisterFlagCompletionFunc("consistency", cobra.FixedCompletions([]string{"eventual", "transactional"}, cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.RegisterFlagCompletionFunc("readiness", cobra.FixedCompletions([]string{"status", "applied"}, cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.RegisterFlagCompletionFunc("conflict", cobra.FixedCompletions([]string{"abort", "adopt"}, cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.RegisterFlagCompletionFunc("adopted", cobra.FixedCompletions([]string{"release", "delete"}, cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.RegisterFlagCompletionFunc("drift", cobra.FixedCompletions([]string{"correct", "report"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

// apply applies each manifest -f names (a file, a folder, standard input; YAML may hold several
// documents) in turn: see applyOne. It goes on after a manifest fails, and fails at the end if any
// did. --wait waits for each resource applied, once all are.
func (f *clientFlags) apply(cmd *cobra.Command, o applyOptions) error {
	if o.file == "" {
		return usageError{errors.New("-f/--file is required")}
	}
	ms, err := readManifests(cmd, o.file)
	if err != nil {
		return err
	}
	if len(ms) == 0 {
		return usageError{fmt.Errorf("-f %s: no manifest in it", o.file)}
	}
	if o.name != "" && len(ms) > 1 {
		return usageError{fmt.Errorf("--name names one resource, and -f %s holds %d manifests", o.file, len(ms))}
	}
	scope, err := o.scope()
	if err != nil {
		return err
	}
	policy, err := o.policy(cmd.Flags())
	if err != nil {
		return err
	}
	c, err := f.api()
	if err != nil {
		return err
	}
	var applied []client.Resource
	var failed []error
	for _, m := range ms {
		r, err := f.applyOne(cmd, c, o, m, scope, policy)
		if err != nil {
			if len(ms) == 1 {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "%s: %v\n", m.source, err)
			failed = append(failed, fmt.Errorf("%s: %w", m.source, err))
			continue
		}
		applied = append(applied, r)
	}
	for _, r := range applied {
		if o.wait {
			if r, err = f.wait(cmd, c, r.ID, o.timeout, func(r client.Resource) bool { return r.State == cheops.ResourceReady }); err != nil {
				failed = append(failed, err)
				continue
			}
		}
		if err := f.printResource(cmd, r); err != nil {
			return err
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("%d of %d manifests not applied or not ready: %w", len(failed), len(ms), errors.Join(failed...))
	}
	return nil
}

// applyOne creates the resource of one manifest, or changes the existing one with a merge patch of
// what the manifest and the flags say: the manifest, the scope when a scope flag is given, and only
// the policy fields whose flags are given; every other field keeps its value.
func (f *clientFlags) applyOne(cmd *cobra.Command, c *client.Client, o applyOptions, m manifest, scope *cheops.Scope, policy *client.PolicyPatch) (client.Resource, error) {
	name, fromManifest := o.name, o.name == ""
	if fromManifest {
		name = m.name
	}
	if name == "" {
		return client.Resource{}, usageError{fmt.Errorf("-f %s: the manifest has no metadata.name (OpenStack: spec.name); give --name", m.source)}
	}
	ctx := cmd.Context()
	r, err := c.GetResource(ctx, name)
	switch {
	case err == nil:
		if r.Driver != m.driver {
			return r, fmt.Errorf("resource %s is a %s resource; %s is a %s manifest, and a resource cannot change driver", r.Name, r.Driver, m.source, m.driver)
		}
		var patch client.ResourcePatch
		if patch.Manifest, err = client.ManifestPatch(r.Manifest, m.json); err != nil {
			return r, fmt.Errorf("-f %s: %w", m.source, err)
		}
		patch.Scope, patch.Policy, patch.DependsOn = scope, policy, o.dependsOn
		// If-Match: a change made by someone else since the read is refused, not overwritten.
		r, err = c.PatchResource(ctx, r.ID, patch, client.UpdateOptions{IfGeneration: r.Generation})
	case client.IsNotFound(err):
		if scope == nil {
			return r, usageError{errors.New("a new resource needs --sites, --selector or --scope")}
		}
		req := client.ResourceRequest{Name: name, Driver: m.driver, Manifest: m.json, Scope: scope, DependsOn: o.dependsOn}
		if policy != nil {
			req.Policy = &cheops.Policy{}
			if policy.Consistency != nil {
				req.Policy.Consistency = *policy.Consistency
			}
			if policy.Timeout != nil {
				req.Policy.Timeout = *policy.Timeout
			}
			if policy.Readiness != nil {
				req.Policy.Readiness = *policy.Readiness
			}
			req.Policy.Rollout = policy.Rollout
			if policy.ReadyTimeout != nil {
				req.Policy.ReadyTimeout = *policy.ReadyTimeout
			}
			if policy.Conflict != nil {
				req.Policy.Conflict = *policy.Conflict
			}
			if policy.Adopted != nil {
				req.Policy.Adopted = *policy.Adopted
			}
			if policy.Drift != nil {
				req.Policy.Drift = *policy.Drift
			}
		}
		r, err = c.CreateResource(ctx, req, client.CreateOptions{IdempotencyKey: uuid.NewString()})
	}
	var p *client.Problem
	if fromManifest && errors.As(err, &p) && p.Field == "name" {
		// The user wrote no name: say where it came from.
		return r, fmt.Errorf("-f %s: the resource is named after the manifest's metadata.name (OpenStack: spec.name), %q, which cannot name a resource: %s; give --name", m.source, name, p.Detail)
	}
	if err != nil {
		return r, err
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "resource %s (%s) at generation %d\n", r.Name, r.ID, r.Generation)
	return r, nil
}

// manifest is one manifest apply read from -f.
type manifest struct {
	json   json.RawMessage
	driver cheops.DriverName
	// name is the manifest's metadata.name, or spec.name for an OpenStack one.
	name string
	// source says where it was read: the file, and the document's number when the file has several.
	source string
}

// readManifests reads the manifests of file: a YAML (one or more documents) or JSON file, "-" for
// standard input, or a folder, whose .yaml, .yml and .json files are read in name order (not its
// subfolders). Empty documents are skipped.
func readManifests(cmd *cobra.Command, file string) ([]manifest, error) {
	if file == "-" {
		raw, err := io.ReadAll(cmd.InOrStdin())
		if err != nil {
			return nil, fmt.Errorf("-f -: %w", err)
		}
		return parseManifests("-", raw)
	}
	info, err := os.Stat(file)
	if err != nil {
		return nil, fmt.Errorf("-f: %w", err)
	}
	files := []string{file}
	if info.IsDir() {
		entries, err := os.ReadDir(file)
		if err != nil {
			return nil, fmt.Errorf("-f: %w", err)
		}
		files = nil
		for _, e := range entries {
			switch filepath.Ext(e.Name()) {
			case ".yaml", ".yml", ".json":
				if !e.IsDir() {
					files = append(files, filepath.Join(file, e.Name()))
				}
			}
		}
	}
	var all []manifest
	for _, path := range files {
		raw, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("-f: %w", err)
		}
		ms, err := parseManifests(path, raw)
		if err != nil {
			return nil, err
		}
		all = append(all, ms...)
	}
	return all, nil
}

// parseManifests splits raw into its YAML documents and reads each as a manifest, telling which
// driver it is for: a Kubernetes manifest has an apiVersion, an OpenStack one a type and a spec.
func parseManifests(source string, raw []byte) ([]manifest, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(raw)))
	var docs [][]byte
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("-f %s: %w", source, err)
		}
		if len(bytes.TrimSpace(doc)) > 0 && !onlyComments(doc) {
			docs = append(docs, doc)
		}
	}
	var out []manifest
	for i, doc := range docs {
		src := source
		if len(docs) > 1 {
			src = fmt.Sprintf("%s (document %d)", source, i+1)
		}
		js, err := yaml.YAMLToJSON(doc)
		if err != nil {
			return nil, fmt.Errorf("-f %s: not YAML or JSON: %w", src, err)
		}
		var m struct {
			APIVersion string                `json:"apiVersion"`
			Type       string                `json:"type"`
			Metadata   struct{ Name string } `json:"metadata"`
			Spec       struct{ Name string } `json:"spec"`
		}
		_ = json.Unmarshal(js, &m)
		if m.APIVersion == "" && m.Type != "" {
			out = append(out, manifest{json: js, driver: cheops.DriverOpenStack, name: m.Spec.Name, source: src})
		} else {
			out = append(out, manifest{json: js, driver: cheops.DriverKubernetes, name: m.Metadata.Name, source: src})
		}
	}
	return out, nil
}

// onlyComments says whether a YAML document holds nothing but comments.
func onlyComments(doc []byte) bool {
	for _, line := range strings.Split(string(doc), "\n") {
		if t := strings.TrimSpace(line); t != "" && !strings.HasPrefix(t, "#") {
			return false
		}
	}
	return true
}

// scope returns the scope the flags give, or nil when none is given.
func (o applyOptions) scope() (*cheops.Scope, error) {
	given := 0
	for _, v := range []string{o.sites, o.selector, o.expr} {
		if v != "" {
			given++
		}
	}
	switch {
	case given > 1:
		return nil, usageError{errors.New("give one of --sites, --selector or --scope")}
	case o.sites != "":
		return &cheops.Scope{Sites: strings.Split(o.sites, ",")}, nil
	case o.selector != "":
		return &cheops.Scope{Selector: o.selector}, nil
	case o.expr != "":
		return &cheops.Scope{Expression: o.expr}, nil
	}
	return nil, nil
}

// policy returns the policy fields whose flags were given on the command line, or nil when none
// was: a flag left out must not change the resource's current value.
func (o applyOptions) policy(flags *pflag.FlagSet) (*client.PolicyPatch, error) {
	var p client.PolicyPatch
	if flags.Changed("consistency") {
		if o.consistency == "" {
			return nil, usageError{errors.New("--consistency: give eventual or transactional")}
		}
		c := cheops.Consistency(o.consistency)
		p.Consistency = &c
	}
	for _, f := range []struct {
		flag, text string
		into       **cheops.Duration
	}{{"policy-timeout", o.policyTimeout, &p.Timeout}, {"ready-timeout", o.readyTimeout, &p.ReadyTimeout}} {
		if !flags.Changed(f.flag) {
			continue
		}
		d, err := time.ParseDuration(f.text)
		if err != nil {
			return nil, usageError{fmt.Errorf("--%s: %q is not a duration such as 90s or 5m", f.flag, f.text)}
		}
		t := cheops.Duration(d)
		*f.into = &t
	}
	if flags.Changed("rollout-wave") || flags.Changed("rollout-group") || flags.Changed("rollout-soak") || flags.Changed("rollout-max-failures") {
		ro := &cheops.Rollout{Groups: o.rolloutGroups, MaxFailures: o.rolloutMaxFailures}
		if flags.Changed("rollout-wave") {
			if err := json.Unmarshal([]byte(strconv.Quote(o.rolloutWave)), &ro.MaxUnavailable); err != nil {
				return nil, usageError{fmt.Errorf("--rollout-wave: %v", err)}
			}
		}
		if flags.Changed("rollout-soak") {
			d, err := time.ParseDuration(o.rolloutSoak)
			if err != nil {
				return nil, usageError{fmt.Errorf("--rollout-soak: %q is not a duration such as 30s", o.rolloutSoak)}
			}
			ro.Soak = cheops.Duration(d)
		}
		p.Rollout = ro
	}
	if flags.Changed("readiness") {
		if o.readiness == "" {
			return nil, usageError{errors.New("--readiness: give status or applied")}
		}
		r := cheops.ReadinessPolicy(o.readiness)
		p.Readiness = &r
	}
	if flags.Changed("conflict") {
		c := cheops.ConflictPolicy(o.conflict)
		if c != cheops.ConflictAbort && c != cheops.ConflictAdopt {
			return nil, usageError{fmt.Errorf("--conflict: give abort or adopt, not %q", o.conflict)}
		}
		p.Conflict = &c
	}
	if flags.Changed("adopted") {
		a := cheops.AdoptedDeletion(o.adopted)
		if a != cheops.AdoptedRelease && a != cheops.AdoptedDelete {
			return nil, usageError{fmt.Errorf("--adopted: give release or delete, not %q", o.adopted)}
		}
		p.Adopted = &a
	}
	if flags.Changed("drift") {
		if o.drift == "" {
			return nil, usageError{errors.New("--drift: give correct or report")}
		}
		d := cheops.DriftPolicy(o.drift)
		p.Drift = &d
	}
	if p == (client.PolicyPatch{}) {
		return nil, nil
	}
	return &p, nil
}

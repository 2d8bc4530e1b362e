package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"sigs.k8s.io/yaml"

	"github.com/cheops-io/cheops"
	"github.com/cheops-io/cheops/client"
)

// applyOptions are apply's flags.
type applyOptions struct {
	file, name                 string
	sites, selector, expr      string
	consistency, policyTimeout string
	wait                       bool
	timeout                    time.Duration
}

func newApplyCmd(f *clientFlags) *cobra.Command {
	var o applyOptions
	cmd := &cobra.Command{
		Use:   "apply -f FILE (--sites a,b | --selector SEL | --scope EXPR)",
		Short: "Create or update a resource from a manifest (YAML or JSON)",
		Long: `Create a resource from a Kubernetes manifest, or from an OpenStack one ({type, spec}), or update
it when a resource of that name exists. The name defaults to the manifest's metadata.name (OpenStack:
spec.name). An update sets the manifest to the file's, and the scope and the policy fields whose
flags are given; what no flag names keeps its current value (--policy-timeout alone leaves a
transactional resource transactional). It is refused if the resource changed since apply read it.
--wait shows per-site progress until every replica is Ready, or a replica fails.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return f.apply(cmd, o) },
	}
	fl := cmd.Flags()
	fl.StringVarP(&o.file, "file", "f", "", "manifest file (YAML or JSON); - reads standard input")
	fl.StringVar(&o.name, "name", "", "resource name (default: the manifest's metadata.name, or spec.name)")
	fl.StringVar(&o.sites, "sites", "", "comma-separated site names")
	fl.StringVar(&o.selector, "selector", "", "label selector of sites, e.g. region=eu-west")
	fl.StringVar(&o.expr, "scope", "", `scope-lang expression, e.g. "paris & berlin", "paris | berlin", "(paris | lyon) & region=de"`)
	fl.StringVar(&o.consistency, "consistency", "", "eventual (default) or transactional (all sites or none)")
	fl.StringVar(&o.policyTimeout, "policy-timeout", "", "transactional: how long a site may take before every site is rolled back (default 5m)")
	fl.BoolVar(&o.wait, "wait", false, "wait until every replica is Ready, showing progress")
	fl.DurationVar(&o.timeout, "timeout", 5*time.Minute, "how long --wait waits")
	_ = cmd.RegisterFlagCompletionFunc("sites", f.completeSiteList)
	_ = cmd.RegisterFlagCompletionFunc("consistency", cobra.FixedCompletions([]string{"eventual", "transactional"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

// apply creates the resource, or changes the existing one with a merge patch of what the file and
// the flags say: the manifest, the scope when a scope flag is given, and only the policy fields
// whose flags are given — every other field keeps its value.
func (f *clientFlags) apply(cmd *cobra.Command, o applyOptions) error {
	if o.file == "" {
		return usageError{errors.New("-f/--file is required")}
	}
	m, err := readManifest(cmd, o.file)
	if err != nil {
		return err
	}
	fromManifest := o.name == ""
	if fromManifest {
		o.name = m.name
	}
	if o.name == "" {
		return usageError{fmt.Errorf("-f %s: the manifest has no metadata.name (OpenStack: spec.name); give --name", o.file)}
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
	ctx := cmd.Context()
	r, err := c.GetResource(ctx, o.name)
	switch {
	case err == nil:
		if r.Driver != m.driver {
			return fmt.Errorf("resource %s is a %s resource; %s is a %s manifest, and a resource cannot change driver", r.Name, r.Driver, o.file, m.driver)
		}
		var patch client.ResourcePatch
		if patch.Manifest, err = client.ManifestPatch(r.Manifest, m.json); err != nil {
			return fmt.Errorf("-f %s: %w", o.file, err)
		}
		patch.Scope, patch.Policy = scope, policy
		// If-Match: a change made by someone else since the read is refused, not overwritten.
		r, err = c.PatchResource(ctx, r.ID, patch, client.UpdateOptions{IfGeneration: r.Generation})
	case client.IsNotFound(err):
		if scope == nil {
			return usageError{errors.New("a new resource needs --sites, --selector or --scope")}
		}
		req := client.ResourceRequest{Name: o.name, Driver: m.driver, Manifest: m.json, Scope: scope}
		if policy != nil {
			req.Policy = &cheops.Policy{}
			if policy.Consistency != nil {
				req.Policy.Consistency = *policy.Consistency
			}
			if policy.Timeout != nil {
				req.Policy.Timeout = *policy.Timeout
			}
		}
		r, err = c.CreateResource(ctx, req, client.CreateOptions{IdempotencyKey: uuid.NewString()})
	}
	var p *client.Problem
	if fromManifest && errors.As(err, &p) && p.Field == "name" {
		// The user wrote no name: say where it came from.
		return fmt.Errorf("-f %s: the resource is named after the manifest's metadata.name (OpenStack: spec.name), %q, which cannot name a resource: %s; give --name", o.file, o.name, p.Detail)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "resource %s (%s) at generation %d\n", r.Name, r.ID, r.Generation)
	if o.wait {
		if r, err = f.wait(cmd, c, r.ID, o.timeout, func(r client.Resource) bool { return r.State == cheops.ResourceReady }); err != nil {
			return err
		}
	}
	return f.printResource(cmd, r)
}

// manifest is what apply read from -f.
type manifest struct {
	json   json.RawMessage
	driver cheops.DriverName
	// name is the manifest's metadata.name, or spec.name for an OpenStack one.
	name string
}

// readManifest reads a YAML or JSON manifest from file ("-": standard input) and tells which
// driver it is for: a Kubernetes manifest has an apiVersion, an OpenStack one a type and a spec.
func readManifest(cmd *cobra.Command, file string) (manifest, error) {
	var raw []byte
	var err error
	if file == "-" {
		raw, err = io.ReadAll(cmd.InOrStdin())
	} else {
		raw, err = os.ReadFile(file)
	}
	if err != nil {
		return manifest{}, fmt.Errorf("-f: %w", err)
	}
	doc, err := yaml.YAMLToJSON(raw)
	if err != nil {
		return manifest{}, fmt.Errorf("-f %s: not YAML or JSON: %w", file, err)
	}
	var m struct {
		APIVersion string                `json:"apiVersion"`
		Type       string                `json:"type"`
		Metadata   struct{ Name string } `json:"metadata"`
		Spec       struct{ Name string } `json:"spec"`
	}
	_ = json.Unmarshal(doc, &m)
	if m.APIVersion == "" && m.Type != "" {
		return manifest{json: doc, driver: cheops.DriverOpenStack, name: m.Spec.Name}, nil
	}
	return manifest{json: doc, driver: cheops.DriverKubernetes, name: m.Metadata.Name}, nil
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
	if flags.Changed("policy-timeout") {
		d, err := time.ParseDuration(o.policyTimeout)
		if err != nil {
			return nil, usageError{fmt.Errorf("--policy-timeout: %q is not a duration such as 90s or 5m", o.policyTimeout)}
		}
		t := cheops.Duration(d)
		p.Timeout = &t
	}
	if p == (client.PolicyPatch{}) {
		return nil, nil
	}
	return &p, nil
}

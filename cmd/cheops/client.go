package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"
	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"
)

// clientFlags are the flags every client command shares.
type clientFlags struct {
	Server string
	Output string
}

func (f *clientFlags) register(cmd *cobra.Command) {
	cmd.PersistentFlags().StringVar(&f.Server, "server", envOr("CHEOPS_SERVER", "http://127.0.0.1:8080"), "API address (CHEOPS_SERVER)")
	cmd.PersistentFlags().StringVarP(&f.Output, "output", "o", envOr("CHEOPS_OUTPUT", "table"), "output format: table, json or yaml (CHEOPS_OUTPUT)")
}

// apiError is a problem document the API answered with.
type apiError struct {
	Status int    `json:"status"`
	Title  string `json:"title"`
	Detail string `json:"detail"`
	Errors []struct {
		Field   string `json:"field"`
		Message string `json:"message"`
	} `json:"errors"`
}

func (e *apiError) Error() string {
	msg := fmt.Sprintf("%d %s: %s", e.Status, e.Title, e.Detail)
	if len(e.Errors) > 1 {
		for _, fe := range e.Errors {
			msg += fmt.Sprintf("\n  %s: %s", fe.Field, fe.Message)
		}
	}
	return msg
}

// call sends one request and decodes a JSON answer into out (when not nil).
func (f *clientFlags) call(ctx context.Context, method, path string, header http.Header, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(f.Server, "/")+path, body)
	if err != nil {
		return fmt.Errorf("--server %s: %w", f.Server, err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach the cheops API at %s (--server, CHEOPS_SERVER): %w", f.Server, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		ae := &apiError{Status: resp.StatusCode, Title: resp.Status}
		if json.Unmarshal(data, ae) != nil || ae.Detail == "" {
			ae.Detail = strings.TrimSpace(string(data))
		}
		return ae
	}
	if out != nil && len(data) > 0 {
		return json.Unmarshal(data, out)
	}
	return nil
}

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

// ---- views of API answers ----

type siteView struct {
	Name       string            `json:"name"`
	Driver     string            `json:"driver"`
	Labels     map[string]string `json:"labels,omitempty"`
	Kubernetes map[string]string `json:"kubernetes,omitempty"`
	Health     string            `json:"health"`
	// HealthMessage says why a site is Unreachable.
	HealthMessage string    `json:"healthMessage"`
	CreatedAt     time.Time `json:"createdAt"`
}

type replicaView struct {
	Site               string   `json:"site"`
	State              string   `json:"state"`
	LocalID            string   `json:"localID"`
	ObservedGeneration int64    `json:"observedGeneration"`
	Message            string   `json:"message"`
	Attempts           int      `json:"attempts"`
	Overrides          []string `json:"overrides"`
}

type resourceView struct {
	ID         string          `json:"id"`
	Name       string          `json:"name"`
	Driver     string          `json:"driver"`
	Generation int64           `json:"generation"`
	State      string          `json:"state"`
	Manifest   json.RawMessage `json:"manifest"`
	Scope      json.RawMessage `json:"scope"`
	Policy     struct {
		Consistency string `json:"consistency"`
	} `json:"policy"`
	Paused   bool `json:"paused"`
	Rollback *struct {
		Generation int64             `json:"generation"`
		Reasons    map[string]string `json:"reasons"`
		Done       bool              `json:"done"`
	} `json:"rollback"`
	Replicas []replicaView `json:"replicas"`
}

func labelsString(l map[string]string) string {
	keys := make([]string, 0, len(l))
	for k := range l {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, k+"="+l[k])
	}
	return strings.Join(parts, ",")
}

// ---- site ----

func parseLabels(labels []string) (map[string]string, error) {
	l := map[string]string{}
	for _, kv := range labels {
		key, val, ok := strings.Cut(kv, "=")
		if !ok {
			return nil, usageError{fmt.Errorf("--label %q is not key=value", kv)}
		}
		l[key] = val
	}
	return l, nil
}

func newSiteAddOpenStackCmd(f *clientFlags) *cobra.Command {
	var o struct {
		authURL, region, projectID, projectName, projectDomain, username, userDomain string
		appCredID, cloudsFile, cloud, caFile, passwordEnv, secretEnv                 string
		insecure                                                                     bool
		labels                                                                       []string
	}
	cmd := &cobra.Command{
		Use:   "add-openstack NAME",
		Short: "Register an OpenStack site (one region of a cloud, one project)",
		Long: `Register an OpenStack site. Authenticate with --username and a password, with
--application-credential-id and its secret, or with --clouds-file and --cloud (a clouds.yaml on the
worker's host). Secrets are read from environment variables, never from flags, and stored write-only.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			l, err := parseLabels(o.labels)
			if err != nil {
				return err
			}
			spec := map[string]any{"authURL": o.authURL, "region": o.region, "projectID": o.projectID,
				"projectName": o.projectName, "projectDomain": o.projectDomain, "username": o.username,
				"userDomain": o.userDomain, "applicationCredentialID": o.appCredID, "cloudsFile": o.cloudsFile,
				"cloud": o.cloud, "caFile": o.caFile, "insecure": o.insecure}
			if o.username != "" {
				spec["password"] = os.Getenv(o.passwordEnv)
			}
			if o.appCredID != "" {
				spec["applicationCredentialSecret"] = os.Getenv(o.secretEnv)
			}
			var site siteView
			if err := f.call(cmd.Context(), http.MethodPost, "/v1/sites", nil,
				map[string]any{"name": args[0], "driver": "openstack", "labels": l, "openstack": spec}, &site); err != nil {
				return err
			}
			return f.print(cmd, site, func(w *tabwriter.Writer) { fmt.Fprintf(w, "site %s registered\n", site.Name) })
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.authURL, "auth-url", "", "Keystone v3 URL, e.g. https://keystone.example:5000/v3")
	fl.StringVar(&o.region, "region", "", "region of the service endpoints, e.g. RegionOne")
	fl.StringVar(&o.projectName, "project", "", "project name")
	fl.StringVar(&o.projectID, "project-id", "", "project ID (instead of --project)")
	fl.StringVar(&o.projectDomain, "project-domain", "", "project's domain name (default Default)")
	fl.StringVar(&o.username, "username", "", "user name")
	fl.StringVar(&o.userDomain, "user-domain", "", "user's domain name (default Default)")
	fl.StringVar(&o.passwordEnv, "password-env", "OS_PASSWORD", "environment variable holding the password")
	fl.StringVar(&o.appCredID, "application-credential-id", "", "application credential ID")
	fl.StringVar(&o.secretEnv, "application-credential-secret-env", "OS_APPLICATION_CREDENTIAL_SECRET", "environment variable holding the application credential's secret")
	fl.StringVar(&o.cloudsFile, "clouds-file", "", "clouds.yaml path on the worker's host")
	fl.StringVar(&o.cloud, "cloud", "", "cloud name in --clouds-file")
	fl.StringVar(&o.caFile, "ca-file", "", "PEM bundle on the worker's host to verify the endpoints")
	fl.BoolVar(&o.insecure, "insecure", false, "skip TLS verification")
	fl.StringArrayVarP(&o.labels, "label", "l", nil, "label key=value (repeatable)")
	return cmd
}

func newSiteCmd(f *clientFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "site", Short: "Register, list, show and remove sites"}
	var kubeconfig, kubeconfigPath, kctx, ns string
	var labels []string
	add := &cobra.Command{
		Use:   "add NAME",
		Short: "Register a Kubernetes site",
		Long: `Register a Kubernetes site. --kubeconfig reads a kubeconfig file here and sends its content
(stored write-only); --kubeconfig-path names a file on the worker's host instead.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			k := map[string]string{"kubeconfigPath": kubeconfigPath, "context": kctx, "namespace": ns}
			if kubeconfig != "" {
				b, err := os.ReadFile(kubeconfig)
				if err != nil {
					return fmt.Errorf("--kubeconfig: %w", err)
				}
				k["kubeconfig"] = string(b)
			}
			l, err := parseLabels(labels)
			if err != nil {
				return err
			}
			var site siteView
			err = f.call(cmd.Context(), http.MethodPost, "/v1/sites", nil,
				map[string]any{"name": args[0], "driver": "kubernetes", "labels": l, "kubernetes": k}, &site)
			if err != nil {
				return err
			}
			return f.print(cmd, site, func(w *tabwriter.Writer) { fmt.Fprintf(w, "site %s registered\n", site.Name) })
		},
	}
	add.Flags().StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig file to send (stored write-only)")
	add.Flags().StringVar(&kubeconfigPath, "kubeconfig-path", "", "kubeconfig path on the worker's host")
	add.Flags().StringVar(&kctx, "context", "", "kubeconfig context (default: its current context)")
	add.Flags().StringVar(&ns, "namespace", "", "namespace for objects that name none")
	add.Flags().StringArrayVarP(&labels, "label", "l", nil, "label key=value (repeatable)")

	cmd.AddCommand(newSiteAddOpenStackCmd(f))

	list := &cobra.Command{
		Use: "list", Short: "List sites", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var out struct {
				Items []siteView `json:"items"`
			}
			if err := f.call(cmd.Context(), http.MethodGet, "/v1/sites", nil, nil, &out); err != nil {
				return err
			}
			return f.print(cmd, out, func(w *tabwriter.Writer) {
				fmt.Fprintln(w, "NAME\tDRIVER\tHEALTH\tLABELS\tMESSAGE")
				for _, s := range out.Items {
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", s.Name, s.Driver, s.Health, labelsString(s.Labels), s.HealthMessage)
				}
			})
		},
	}
	get := &cobra.Command{
		Use: "get NAME", Short: "Show a site (never its credentials)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var s siteView
			if err := f.call(cmd.Context(), http.MethodGet, "/v1/sites/"+url.PathEscape(args[0]), nil, nil, &s); err != nil {
				return err
			}
			return f.print(cmd, s, func(w *tabwriter.Writer) {
				fmt.Fprintf(w, "Name:\t%s\nDriver:\t%s\nHealth:\t%s\nLabels:\t%s\n", s.Name, s.Driver, s.Health, labelsString(s.Labels))
				for _, k := range []string{"kubeconfigPath", "context", "namespace"} {
					if s.Kubernetes[k] != "" {
						fmt.Fprintf(w, "%s:\t%s\n", k, s.Kubernetes[k])
					}
				}
			})
		},
	}
	var force bool
	remove := &cobra.Command{
		Use: "remove NAME", Short: "Remove a site; refused while it holds replicas unless --force", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			q := ""
			if force {
				q = "?force=true"
			}
			if err := f.call(cmd.Context(), http.MethodDelete, "/v1/sites/"+url.PathEscape(args[0])+q, nil, nil, nil); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "site %s removed\n", args[0])
			return nil
		},
	}
	remove.Flags().BoolVar(&force, "force", false, "remove even if replicas remain there (they are forgotten, not deleted)")
	cmd.AddCommand(add, list, get, remove)
	return cmd
}

// ---- apply ----

func newApplyCmd(f *clientFlags) *cobra.Command {
	var file, name, sites, selector, expr, consistency, policyTimeout string
	var wait bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "apply -f FILE (--sites a,b | --selector SEL | --scope EXPR)",
		Short: "Create or update a resource from a manifest (YAML or JSON)",
		Long: `Create a resource from a Kubernetes manifest, or from an OpenStack one ({type, spec}), or update
it when a resource of that name exists. The name defaults to the manifest's metadata.name (OpenStack:
spec.name). --wait shows per-site progress until every
replica is Ready, or a replica fails.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file == "" {
				return usageError{errors.New("-f/--file is required")}
			}
			var raw []byte
			var err error
			if file == "-" {
				raw, err = io.ReadAll(cmd.InOrStdin())
			} else {
				raw, err = os.ReadFile(file)
			}
			if err != nil {
				return fmt.Errorf("-f: %w", err)
			}
			manifest, err := yaml.YAMLToJSON(raw)
			if err != nil {
				return fmt.Errorf("-f %s: not YAML or JSON: %w", file, err)
			}
			// A Kubernetes manifest has an apiVersion; an OpenStack one a type and a spec.
			var m struct {
				APIVersion string                `json:"apiVersion"`
				Type       string                `json:"type"`
				Metadata   struct{ Name string } `json:"metadata"`
				Spec       struct{ Name string } `json:"spec"`
			}
			_ = json.Unmarshal(manifest, &m)
			driver := "kubernetes"
			if m.APIVersion == "" && m.Type != "" {
				driver = "openstack"
				m.Metadata.Name = m.Spec.Name
			}
			if name == "" {
				name = m.Metadata.Name
			}
			body := map[string]any{"name": name, "driver": driver, "manifest": json.RawMessage(manifest)}
			given := 0
			for _, v := range []string{sites, selector, expr} {
				if v != "" {
					given++
				}
			}
			switch {
			case given > 1:
				return usageError{errors.New("give one of --sites, --selector or --scope")}
			case sites != "":
				body["scope"] = map[string]any{"sites": strings.Split(sites, ",")}
			case selector != "":
				body["scope"] = map[string]any{"selector": selector}
			case expr != "":
				body["scope"] = map[string]any{"expression": expr}
			}
			if consistency != "" || policyTimeout != "" {
				body["policy"] = map[string]any{"consistency": consistency, "timeout": policyTimeout}
			}
			ctx := cmd.Context()
			var r resourceView
			err = f.call(ctx, http.MethodGet, "/v1/resources/"+url.PathEscape(name), nil, nil, &r)
			var ae *apiError
			switch {
			case err == nil:
				err = f.call(ctx, http.MethodPut, "/v1/resources/"+r.ID, http.Header{"If-Match": {fmt.Sprint(r.Generation)}}, body, &r)
			case errors.As(err, &ae) && ae.Status == http.StatusNotFound:
				if body["scope"] == nil {
					return usageError{errors.New("a new resource needs --sites, --selector or --scope")}
				}
				err = f.call(ctx, http.MethodPost, "/v1/resources", http.Header{"Idempotency-Key": {uuid.NewString()}}, body, &r)
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "resource %s (%s) at generation %d\n", r.Name, r.ID, r.Generation)
			if wait {
				if r, err = f.wait(cmd, r.ID, timeout, func(r resourceView) bool { return r.State == "Ready" }); err != nil {
					return err
				}
			}
			return f.printResource(cmd, r)
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "manifest file (YAML or JSON); - reads standard input")
	cmd.Flags().StringVar(&name, "name", "", "resource name (default: the manifest's metadata.name, or spec.name)")
	cmd.Flags().StringVar(&sites, "sites", "", "comma-separated site names")
	cmd.Flags().StringVar(&selector, "selector", "", "label selector of sites, e.g. region=eu-west")
	cmd.Flags().StringVar(&expr, "scope", "", `scope-lang expression, e.g. "paris & berlin", "paris | berlin", "(paris | lyon) & region=de"`)
	cmd.Flags().StringVar(&consistency, "consistency", "", "eventual (default) or transactional (all sites or none)")
	cmd.Flags().StringVar(&policyTimeout, "policy-timeout", "", "transactional: how long a site may take before every site is rolled back (default 5m)")
	cmd.Flags().BoolVar(&wait, "wait", false, "wait until every replica is Ready, showing progress")
	cmd.Flags().DurationVar(&timeout, "timeout", 5*time.Minute, "how long --wait waits")
	return cmd
}

// wait polls a resource, printing each change of a replica's state, until done says so, a replica
// fails, or the timeout passes.
func (f *clientFlags) wait(cmd *cobra.Command, id string, timeout time.Duration, done func(resourceView) bool) (resourceView, error) {
	ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
	defer cancel()
	seen := map[string]string{}
	for {
		var r resourceView
		err := f.call(ctx, http.MethodGet, "/v1/resources/"+id, nil, nil, &r)
		var ae *apiError
		if errors.As(err, &ae) && ae.Status == http.StatusNotFound {
			return r, errNotFound
		}
		if err != nil && ctx.Err() == nil {
			return r, err
		}
		for _, rep := range r.Replicas {
			line := fmt.Sprintf("%s %s gen=%d %s", rep.State, rep.LocalID, rep.ObservedGeneration, rep.Message)
			if seen[rep.Site] != line {
				seen[rep.Site] = line
				fmt.Fprintf(cmd.ErrOrStderr(), "  %-20s %s\n", rep.Site, line)
			}
		}
		switch {
		case err == nil && done(r):
			return r, nil
		case r.State == "Failed" || r.State == "Degraded" || r.State == "RolledBack":
			return r, fmt.Errorf("resource %s is %s", r.Name, r.State)
		case ctx.Err() != nil:
			return r, fmt.Errorf("still %s after %s", r.State, timeout)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

var errNotFound = errors.New("not found")

func (f *clientFlags) printResource(cmd *cobra.Command, r resourceView) error {
	return f.print(cmd, r, func(w *tabwriter.Writer) {
		fmt.Fprintf(w, "ID:\t%s\nName:\t%s\nGeneration:\t%d\nConsistency:\t%s\nState:\t%s\n", r.ID, r.Name, r.Generation, r.Policy.Consistency, r.State)
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
			fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%d\t%s\t%s\n", rep.Site, rep.State, rep.LocalID, rep.ObservedGeneration, rep.Attempts, strings.Join(rep.Overrides, ","), rep.Message)
		}
	})
}

// ---- get / list / delete / events ----

func newGetCmd(f *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use: "get ID|NAME", Short: "Show a resource with its per-site replicas", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var r resourceView
			if err := f.call(cmd.Context(), http.MethodGet, "/v1/resources/"+url.PathEscape(args[0]), nil, nil, &r); err != nil {
				return err
			}
			return f.printResource(cmd, r)
		},
	}
}

func newListCmd(f *clientFlags) *cobra.Command {
	var site, state, prefix string
	cmd := &cobra.Command{
		Use: "list", Short: "List resources", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var all []resourceView
			token := ""
			for {
				q := url.Values{"site": {site}, "state": {state}, "namePrefix": {prefix}, "pageToken": {token}}
				var page struct {
					Items         []resourceView `json:"items"`
					NextPageToken string         `json:"nextPageToken"`
				}
				if err := f.call(cmd.Context(), http.MethodGet, "/v1/resources?"+q.Encode(), nil, nil, &page); err != nil {
					return err
				}
				all = append(all, page.Items...)
				if token = page.NextPageToken; token == "" {
					break
				}
			}
			return f.print(cmd, map[string]any{"items": all}, func(w *tabwriter.Writer) {
				fmt.Fprintln(w, "NAME\tID\tGENERATION\tSTATE\tREADY")
				for _, r := range all {
					ready := 0
					for _, rep := range r.Replicas {
						if rep.State == "Ready" && rep.ObservedGeneration == r.Generation {
							ready++
						}
					}
					fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%d/%d\n", r.Name, r.ID, r.Generation, r.State, ready, len(r.Replicas))
				}
			})
		},
	}
	cmd.Flags().StringVar(&site, "site", "", "only resources with a replica on this site")
	cmd.Flags().StringVar(&state, "state", "", "only resources in this state")
	cmd.Flags().StringVar(&prefix, "name-prefix", "", "only resources whose name starts so")
	return cmd
}

func newDeleteCmd(f *clientFlags) *cobra.Command {
	var orphan, wait bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use: "delete ID|NAME", Short: "Delete a resource and its replicas (--orphan leaves the replicas)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			q := ""
			if orphan {
				q = "?orphan=true"
			}
			var r resourceView
			if err := f.call(cmd.Context(), http.MethodDelete, "/v1/resources/"+url.PathEscape(args[0])+q, nil, nil, &r); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "resource %s is being deleted\n", r.Name)
			if wait {
				_, err := f.wait(cmd, r.ID, timeout, func(resourceView) bool { return false })
				if !errors.Is(err, errNotFound) {
					return err
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "resource %s deleted\n", r.Name)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&orphan, "orphan", false, "forget the replicas but leave them on their sites")
	cmd.Flags().BoolVar(&wait, "wait", false, "wait until the resource is gone")
	cmd.Flags().DurationVar(&timeout, "timeout", 5*time.Minute, "how long --wait waits")
	return cmd
}

// newActionCmds returns the operator controls: each sends its signal to the resource's workflow.
func newActionCmds(f *clientFlags) []*cobra.Command {
	var cmds []*cobra.Command
	for _, a := range []struct{ name, short string }{
		{"pause", "Pause a resource: nothing is applied until it is resumed"},
		{"resume", "Resume a paused resource; what changed meanwhile is applied"},
		{"retry", "Retry failed replicas now, including ones a site rejected, and a rolled-back generation"},
		{"resync", "Re-apply every replica of a resource, converged or not"},
	} {
		cmds = append(cmds, &cobra.Command{
			Use: a.name + " ID|NAME", Short: a.short, Args: cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				var r resourceView
				if err := f.call(cmd.Context(), http.MethodPost, "/v1/resources/"+url.PathEscape(args[0])+":"+a.name, nil, nil, &r); err != nil {
					return err
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "%s sent to resource %s\n", a.name, r.Name)
				return nil
			},
		})
	}
	return cmds
}

func newEventsCmd(f *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use: "events ID|NAME", Short: "Show a resource's event log", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var out struct {
				Items []struct {
					Time       time.Time `json:"time"`
					Type       string    `json:"type"`
					Site       string    `json:"site"`
					Generation int64     `json:"generation"`
					Message    string    `json:"message"`
				} `json:"items"`
			}
			if err := f.call(cmd.Context(), http.MethodGet, "/v1/resources/"+url.PathEscape(args[0])+"/events", nil, nil, &out); err != nil {
				return err
			}
			return f.print(cmd, out, func(w *tabwriter.Writer) {
				fmt.Fprintln(w, "TIME\tTYPE\tSITE\tGENERATION\tMESSAGE")
				for _, e := range out.Items {
					fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%s\n", e.Time.Format(time.RFC3339), e.Type, e.Site, e.Generation, e.Message)
				}
			})
		},
	}
}

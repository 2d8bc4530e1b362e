package main

import (
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/cheops-io/cheops"
	"github.com/cheops-io/cheops/client"
)

func newSiteCmd(f *clientFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "site", Short: "Register, list, show and remove sites"}
	cmd.AddCommand(newSiteAddCmd(f), newSiteAddOpenStackCmd(f), newSiteListCmd(f), newSiteGetCmd(f), newSiteRemoveCmd(f), newSiteEventsCmd(f))
	return cmd
}

// parseLabels reads repeated --label key=value flags.
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

func newSiteAddCmd(f *clientFlags) *cobra.Command {
	var kubeconfig string
	var k client.KubernetesSettings
	var labels []string
	cmd := &cobra.Command{
		Use:   "add NAME",
		Short: "Register a Kubernetes site",
		Long: `Register a Kubernetes site. --kubeconfig reads a kubeconfig file here and sends its content
(stored write-only); --kubeconfig-path names a file on the worker's host instead.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if kubeconfig != "" {
				b, err := os.ReadFile(kubeconfig)
				if err != nil {
					return fmt.Errorf("--kubeconfig: %w", err)
				}
				k.Kubeconfig = string(b)
			}
			l, err := parseLabels(labels)
			if err != nil {
				return err
			}
			return f.addSite(cmd, client.SiteRequest{Name: args[0], Driver: cheops.DriverKubernetes, Labels: l, Kubernetes: &k})
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig file to send (stored write-only)")
	fl.StringVar(&k.KubeconfigPath, "kubeconfig-path", "", "kubeconfig path on the worker's host")
	fl.StringVar(&k.Context, "context", "", "kubeconfig context (default: its current context)")
	fl.StringVar(&k.Namespace, "namespace", "", "namespace for objects that name none")
	fl.StringArrayVarP(&labels, "label", "l", nil, "label key=value (repeatable)")
	return cmd
}

func newSiteAddOpenStackCmd(f *clientFlags) *cobra.Command {
	var o client.OpenStackSettings
	var passwordEnv, secretEnv string
	var labels []string
	cmd := &cobra.Command{
		Use:   "add-openstack NAME",
		Short: "Register an OpenStack site (one region of a cloud, one project)",
		Long: `Register an OpenStack site. Authenticate with --username and a password, with
--application-credential-id and its secret, or with --clouds-file and --cloud (a clouds.yaml on the
worker's host). Secrets are read from environment variables, never from flags, and stored write-only.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			l, err := parseLabels(labels)
			if err != nil {
				return err
			}
			if o.Username != "" {
				o.Password = os.Getenv(passwordEnv)
			}
			if o.ApplicationCredentialID != "" {
				o.ApplicationCredentialSecret = os.Getenv(secretEnv)
			}
			return f.addSite(cmd, client.SiteRequest{Name: args[0], Driver: cheops.DriverOpenStack, Labels: l, OpenStack: &o})
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.AuthURL, "auth-url", "", "Keystone v3 URL, e.g. https://keystone.example:5000/v3")
	fl.StringVar(&o.Region, "region", "", "region of the service endpoints, e.g. RegionOne")
	fl.StringVar(&o.ProjectName, "project", "", "project name")
	fl.StringVar(&o.ProjectID, "project-id", "", "project ID (instead of --project)")
	fl.StringVar(&o.ProjectDomain, "project-domain", "", "project's domain name (default Default)")
	fl.StringVar(&o.Username, "username", "", "user name")
	fl.StringVar(&o.UserDomain, "user-domain", "", "user's domain name (default Default)")
	fl.StringVar(&passwordEnv, "password-env", "OS_PASSWORD", "environment variable holding the password")
	fl.StringVar(&o.ApplicationCredentialID, "application-credential-id", "", "application credential ID")
	fl.StringVar(&secretEnv, "application-credential-secret-env", "OS_APPLICATION_CREDENTIAL_SECRET", "environment variable holding the application credential's secret")
	fl.StringVar(&o.CloudsFile, "clouds-file", "", "clouds.yaml path on the worker's host")
	fl.StringVar(&o.Cloud, "cloud", "", "cloud name in --clouds-file")
	fl.StringVar(&o.CAFile, "ca-file", "", "PEM bundle on the worker's host to verify the endpoints")
	fl.BoolVar(&o.Insecure, "insecure", false, "skip TLS verification")
	fl.StringArrayVarP(&labels, "label", "l", nil, "label key=value (repeatable)")
	return cmd
}

func (f *clientFlags) addSite(cmd *cobra.Command, req client.SiteRequest) error {
	c, err := f.api()
	if err != nil {
		return err
	}
	site, err := c.CreateSite(cmd.Context(), req)
	if err != nil {
		return err
	}
	return f.print(cmd, site, func(w *tabwriter.Writer) { fmt.Fprintf(w, "site %s registered\n", site.Name) })
}

func newSiteListCmd(f *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use: "list", Short: "List sites", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := f.api()
			if err != nil {
				return err
			}
			sites, err := c.ListSites(cmd.Context())
			if err != nil {
				return err
			}
			return f.print(cmd, map[string]any{"items": sites}, func(w *tabwriter.Writer) {
				fmt.Fprintln(w, "NAME\tDRIVER\tHEALTH\tLABELS\tMESSAGE")
				for _, s := range sites {
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", s.Name, s.Driver, s.Health, labelsString(s.Labels), s.HealthMessage)
				}
			})
		},
	}
}

func newSiteGetCmd(f *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use: "get NAME", Short: "Show a site (never its credentials)", Args: cobra.ExactArgs(1),
		ValidArgsFunction: f.completeSiteName,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.api()
			if err != nil {
				return err
			}
			s, err := c.GetSite(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return f.print(cmd, s, func(w *tabwriter.Writer) {
				fmt.Fprintf(w, "Name:\t%s\nDriver:\t%s\nHealth:\t%s\nLabels:\t%s\n", s.Name, s.Driver, s.Health, labelsString(s.Labels))
				if s.HealthMessage != "" {
					fmt.Fprintf(w, "Health message:\t%s\n", s.HealthMessage)
				}
				var settings [][2]string
				if k := s.Kubernetes; k != nil {
					settings = [][2]string{{"kubeconfigPath", k.KubeconfigPath}, {"context", k.Context}, {"namespace", k.Namespace}}
				}
				if o := s.OpenStack; o != nil {
					settings = [][2]string{{"authURL", o.AuthURL}, {"region", o.Region}, {"projectName", o.ProjectName},
						{"projectID", o.ProjectID}, {"username", o.Username}, {"applicationCredentialID", o.ApplicationCredentialID},
						{"cloudsFile", o.CloudsFile}, {"cloud", o.Cloud}}
				}
				for _, kv := range settings {
					if kv[1] != "" {
						fmt.Fprintf(w, "%s:\t%s\n", kv[0], kv[1])
					}
				}
			})
		},
	}
}

func newSiteRemoveCmd(f *clientFlags) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use: "remove NAME", Short: "Remove a site; refused while it holds replicas unless --force", Args: cobra.ExactArgs(1),
		ValidArgsFunction: f.completeSiteName,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.api()
			if err != nil {
				return err
			}
			if err := c.DeleteSite(cmd.Context(), args[0], force); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "site %s removed\n", args[0])
			return nil
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "remove even if replicas remain there (they are forgotten, not deleted)")
	return cmd
}

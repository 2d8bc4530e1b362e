// Command cheops is the one binary of cheops: `cheops dev` runs everything in one process,
// `cheops server` the API, `cheops worker` the Temporal worker, and the other commands are the client.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

func main() {
	if err := newRoot().Execute(); err != nil {
		var ue usageError
		if errors.As(err, &ue) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

// usageError marks a mistake in the command line itself.
type usageError struct{ error }

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:   "cheops",
		Short: "Replicate one resource across many Kubernetes and OpenStack sites, and keep it converged",
		Long: `cheops keeps one declared resource replicated across many sites and every copy converged.

Run everything locally with 'cheops dev', then talk to it with the client commands
(site, apply, get, list, delete, events, pause, resume, retry, resync). Environment
variables named in each flag's help are read when the flag is not given.

` + metricsHelp,
		SilenceUsage: true,
	}
	root.AddCommand(newDevCmd(), newServerCmd(), newWorkerCmd(), newAdminCmd())
	client := &clientFlags{}
	for _, c := range append([]*cobra.Command{newSiteCmd(client), newApplyCmd(client), newGetCmd(client),
		newListCmd(client), newDeleteCmd(client), newEventsCmd(client), newLoginCmd(client)}, newActionCmds(client)...) {
		client.register(c)
		root.AddCommand(c)
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageError{fmt.Errorf("%w\nsee '%s --help'", err, c.CommandPath())}
	})
	return root
}

// envOr returns the environment variable key, or def when it is unset.
func envOr(key, def string) string {
	if v, ok := os.LookupEnv(key); ok {
		return v
	}
	return def
}

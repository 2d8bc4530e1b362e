package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/cheops-io/cheops/client"
)

// newActionCmds returns the operator controls: each sends its signal to the resource's workflow.
func newActionCmds(f *clientFlags) []*cobra.Command {
	var cmds []*cobra.Command
	for _, a := range []struct {
		action client.Action
		short  string
	}{
		{client.Pause, "Pause a resource: nothing is applied until it is resumed"},
		{client.Resume, "Resume a paused resource; what changed meanwhile is applied"},
		{client.Retry, "Retry failed replicas now, including ones a site rejected, and a rolled-back generation"},
		{client.Resync, "Re-apply every replica of a resource, converged or not"},
	} {
		cmds = append(cmds, &cobra.Command{
			Use: string(a.action) + " ID|NAME", Short: a.short, Args: cobra.ExactArgs(1),
			ValidArgsFunction: f.completeResourceName,
			RunE: func(cmd *cobra.Command, args []string) error {
				c, err := f.api()
				if err != nil {
					return err
				}
				r, err := c.Act(cmd.Context(), args[0], a.action)
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "%s sent to resource %s\n", a.action, r.Name)
				return nil
			},
		})
	}
	return cmds
}

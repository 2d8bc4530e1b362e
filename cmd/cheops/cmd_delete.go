package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/cheops-io/cheops/client"
)

func newDeleteCmd(f *clientFlags) *cobra.Command {
	var orphan, wait bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use: "delete ID|NAME", Short: "Delete a resource and its replicas (--orphan leaves the replicas)", Args: cobra.ExactArgs(1),
		ValidArgsFunction: f.completeResourceName,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.api()
			if err != nil {
				return err
			}
			r, err := c.DeleteResource(cmd.Context(), args[0], orphan)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "resource %s is being deleted\n", r.Name)
			if wait {
				_, err := f.wait(cmd, c, r.ID, timeout, func(client.Resource) bool { return false })
				if !errors.Is(err, errGone) {
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

package main

import (
	"github.com/spf13/cobra"
)

func newGetCmd(f *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use: "get ID|NAME", Short: "Show a resource with its per-site replicas", Args: cobra.ExactArgs(1),
		ValidArgsFunction: f.completeResourceName,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.api()
			if err != nil {
				return err
			}
			r, err := c.GetResource(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return f.printResource(cmd, r)
		},
	}
}

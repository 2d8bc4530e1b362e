package main

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/cheops-io/cheops/client"
)

func newGetCmd(f *clientFlags) *cobra.Command {
	var watch bool
	cmd := &cobra.Command{
		Use: "get ID|NAME [-w]", Short: "Show a resource with its per-site replicas, or watch it change (-w)", Args: cobra.ExactArgs(1),
		Long: `Show a resource with its per-site replicas. With -w (--watch), follow it as it changes, from the
API's stream of its changes, until interrupted or the resource is deleted: on a terminal one line per
site, rewritten in place; elsewhere a line per change; with -o json, one JSON document per change.`,
		ValidArgsFunction: f.completeResourceName,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.api()
			if err != nil {
				return err
			}
			if !watch {
				r, err := c.GetResource(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				return f.printResource(cmd, r)
			}
			p := newProgress(cmd.OutOrStdout())
			enc := json.NewEncoder(cmd.OutOrStdout())
			show := func(r client.Resource) bool {
				if f.Output == "json" {
					_ = enc.Encode(r)
				} else {
					p.show(r)
				}
				return true
			}
			err = c.WatchResource(cmd.Context(), args[0], show)
			if errors.Is(err, client.ErrWatchUnsupported) {
				err = poll(cmd.Context(), c, args[0], show)
			}
			if errors.Is(err, client.ErrDeleted) {
				fmt.Fprintf(cmd.OutOrStdout(), "resource %s deleted\n", args[0])
				return nil
			}
			if cmd.Context().Err() != nil {
				return nil // interrupted: the watch is over
			}
			return err
		},
	}
	cmd.Flags().BoolVarP(&watch, "watch", "w", false, "follow the resource as it changes, until interrupted or it is deleted")
	return cmd
}

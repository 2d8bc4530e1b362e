package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/cheops-io/cheops"
	"github.com/cheops-io/cheops/client"
)

// errGone is what wait returns once the resource no longer exists.
var errGone = errors.New("the resource no longer exists")

// wait polls a resource, printing each change of its state and of a replica's (a replica removed
// from its site included), until done says so, the resource is Failed, Degraded or RolledBack, it
// is gone (errGone), or the timeout passes.
func (f *clientFlags) wait(cmd *cobra.Command, c *client.Client, id string, timeout time.Duration, done func(client.Resource) bool) (client.Resource, error) {
	ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
	defer cancel()
	seen := map[string]string{}
	var state cheops.ResourceState
	for {
		r, err := c.GetResource(ctx, id)
		gone := client.IsNotFound(err)
		if err != nil && !gone && ctx.Err() == nil {
			return r, err
		}
		if err == nil && r.State != state {
			state = r.State
			fmt.Fprintf(cmd.ErrOrStderr(), "resource %s: %s\n", r.Name, r.State)
		}
		present := map[string]bool{}
		for _, rep := range r.Replicas {
			present[rep.Site] = true
			line := fmt.Sprintf("%s %s gen=%d %s", rep.State, rep.LocalID, rep.ObservedGeneration, rep.Message)
			if seen[rep.Site] != line {
				seen[rep.Site] = line
				fmt.Fprintf(cmd.ErrOrStderr(), "  %-20s %s\n", rep.Site, line)
			}
		}
		for _, site := range slices.Sorted(maps.Keys(seen)) {
			if !present[site] && err == nil || gone {
				if seen[site] != "" {
					fmt.Fprintf(cmd.ErrOrStderr(), "  %-20s removed\n", site)
				}
				delete(seen, site)
			}
		}
		if gone {
			return r, errGone
		}
		switch {
		case err == nil && done(r):
			return r, nil
		case r.State == cheops.ResourceFailed || r.State == cheops.ResourceDegraded || r.State == cheops.ResourceRolledBack:
			return r, fmt.Errorf("resource %s is %s", r.Name, r.State)
		case ctx.Err() != nil:
			return r, fmt.Errorf("still %s after %s", r.State, timeout)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

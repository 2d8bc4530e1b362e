package main

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/cheops-io/cheops/client"
)

// completionTimeout bounds the API call behind a shell completion: a slow or absent server must
// not freeze the user's shell.
const completionTimeout = 3 * time.Second

// completeResourceName completes the resource argument of a command (get, delete, events, the
// actions) with the names of the resources the API lists for the caller's token.
func (f *clientFlags) completeResourceName(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	return f.complete(cmd, toComplete, func(ctx context.Context, c *client.Client) ([]string, error) {
		rs, err := c.ListAllResources(ctx, client.ListOptions{})
		names := make([]string, len(rs))
		for i, r := range rs {
			names[i] = r.Name
		}
		return names, err
	})
}

// completeSiteName completes the site argument of the site commands.
func (f *clientFlags) completeSiteName(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	return f.complete(cmd, toComplete, f.siteNames)
}

// completeSiteList completes a comma-separated list of sites (apply --sites): the sites not yet
// in the list, after what is already typed.
func (f *clientFlags) completeSiteList(cmd *cobra.Command, _ []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	done, last := "", toComplete
	if i := strings.LastIndex(toComplete, ","); i >= 0 {
		done, last = toComplete[:i+1], toComplete[i+1:]
	}
	typed := strings.Split(strings.TrimSuffix(done, ","), ",")
	names, directive := f.complete(cmd, last, f.siteNames)
	var out []string
	for _, n := range names {
		if !slices.Contains(typed, n) {
			out = append(out, done+n)
		}
	}
	return out, directive | cobra.ShellCompDirectiveNoSpace
}

func (f *clientFlags) siteNames(ctx context.Context, c *client.Client) ([]string, error) {
	sites, err := c.ListSites(ctx)
	names := make([]string, len(sites))
	for i, s := range sites {
		names[i] = s.Name
	}
	return names, err
}

// complete asks the API for names and keeps those that start with prefix. A failure completes
// nothing rather than printing an error into the user's command line.
func (f *clientFlags) complete(cmd *cobra.Command, prefix string, list func(context.Context, *client.Client) ([]string, error)) ([]string, cobra.ShellCompDirective) {
	c, err := f.api()
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveError
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), completionTimeout)
	defer cancel()
	names, err := list(ctx, c)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveError
	}
	var out []string
	for _, n := range names {
		if strings.HasPrefix(n, prefix) {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out, cobra.ShellCompDirectiveNoFileComp
}

package main

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/cheops-io/cheops"
)

func newEventsCmd(f *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use: "events ID|NAME", Short: "Show a resource's event log", Args: cobra.ExactArgs(1),
		ValidArgsFunction: f.completeResourceName,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.api()
			if err != nil {
				return err
			}
			evs, err := c.Events(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return printEvents(f, cmd, evs)
		},
	}
}

func newSiteEventsCmd(f *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use: "events NAME", Short: "Show a site's event log: who registered, changed and removed it, its health changes", Args: cobra.ExactArgs(1),
		ValidArgsFunction: f.completeSiteName,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.api()
			if err != nil {
				return err
			}
			evs, err := c.SiteEvents(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return printEvents(f, cmd, evs)
		},
	}
}

func printEvents(f *clientFlags, cmd *cobra.Command, evs []cheops.Event) error {
	return f.print(cmd, map[string]any{"items": evs}, func(w *tabwriter.Writer) {
		fmt.Fprintln(w, "TIME\tTYPE\tSITE\tGENERATION\tACTOR\tMESSAGE")
		for _, e := range evs {
			fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%s\t%s\n", e.Time.Format(time.RFC3339), e.Type, e.Site, e.Generation, e.Actor, e.Message)
		}
	})
}

package main

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

func newEventsCmd(f *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use: "events ID|NAME", Short: "Show a resource's event log", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.api()
			if err != nil {
				return err
			}
			evs, err := c.Events(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return f.print(cmd, map[string]any{"items": evs}, func(w *tabwriter.Writer) {
				fmt.Fprintln(w, "TIME\tTYPE\tSITE\tGENERATION\tACTOR\tMESSAGE")
				for _, e := range evs {
					fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%s\t%s\n", e.Time.Format(time.RFC3339), e.Type, e.Site, e.Generation, e.Actor, e.Message)
				}
			})
		},
	}
}

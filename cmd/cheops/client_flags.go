package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/cheops-io/cheops/client"
)

// clientFlags are the flags every client command shares.
type clientFlags struct {
	Server string
	Output string
}

func (f *clientFlags) register(cmd *cobra.Command) {
	cmd.PersistentFlags().StringVar(&f.Server, "server", envOr("CHEOPS_SERVER", "http://127.0.0.1:8080"), "API address (CHEOPS_SERVER)")
	cmd.PersistentFlags().StringVarP(&f.Output, "output", "o", envOr("CHEOPS_OUTPUT", "table"), "output format: table, json or yaml (CHEOPS_OUTPUT)")
}

// api returns a client of the API at --server.
func (f *clientFlags) api() (*client.Client, error) {
	c, err := client.New(f.Server, client.WithUserAgent("cheops-cli"))
	if err != nil {
		return nil, usageError{fmt.Errorf("--server (CHEOPS_SERVER): %w", err)}
	}
	return c, nil
}

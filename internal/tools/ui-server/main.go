// Command ui-server is Temporal's Web UI server for scripts/cluster.sh: upstream's cmd/server at the
// github.com/temporalio/ui-server/v2 version go.mod requires, built from this module (cheops dev
// embeds the same UI). It takes the part of upstream's command line that cluster.sh uses:
//
//	ui-server [--root <dir>] [--config <dir>] [--env <name>] start
//
// which reads <root>/<config>/<env>.yaml. Test infrastructure, not the product.
package main

import (
	"flag"
	"fmt"
	"os"
	"path"

	"github.com/temporalio/ui-server/v2/plugins/fs_config_provider"
	"github.com/temporalio/ui-server/v2/server"
	"github.com/temporalio/ui-server/v2/server/api"
	"github.com/temporalio/ui-server/v2/server/headers"
	"github.com/temporalio/ui-server/v2/server/server_options"
)

func main() {
	root := flag.String("root", ".", "root folder")
	configDir := flag.String("config", "config", "config folder, relative to --root")
	env := flag.String("env", "development", "environment: the config file's name without .yaml")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: %s [--root <dir>] [--config <dir>] [--env <name>] start\n", os.Args[0])
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 || flag.Arg(0) != "start" {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(path.Join(*root, *configDir), *env); err != nil {
		fmt.Fprintf(os.Stderr, "ui-server: %v\n", err)
		os.Exit(1)
	}
}

// run serves the UI until the server stops, as upstream's `start` does.
func run(configDir, env string) error {
	provider := fs_config_provider.NewFSConfigProvider(configDir, env)
	cfg, err := provider.GetConfig()
	if err != nil {
		return err
	}
	s := server.NewServer(
		server_options.WithConfigProvider(provider),
		server_options.WithAPIMiddleware([]api.Middleware{headers.WithForwardHeaders(cfg.ForwardHeaders)}),
	)
	defer s.Stop()
	return s.Start()
}

// Command temporal-server is the Temporal server for scripts/cluster.sh: the server of the
// go.temporal.io/server version go.mod requires, started as its own cmd/server starts it, but built
// from this module, so that it reuses the packages the cheops binary (which embeds the same server
// for `cheops dev`) has already compiled instead of a separate build of minutes.
//
// It takes the part of upstream's command line that cluster.sh uses:
//
//	temporal-server --config-file <file> [--allow-no-auth] start
//
// and only the PostgreSQL persistence plugin. It is test infrastructure, not part of the product.
package main

import (
	"flag"
	"fmt"
	"os"
	_ "time/tzdata" // as upstream: time zones without the system's database

	"go.temporal.io/server/common/authorization"
	"go.temporal.io/server/common/config"
	"go.temporal.io/server/common/headers"
	"go.temporal.io/server/common/log"
	"go.temporal.io/server/common/log/tag"
	_ "go.temporal.io/server/common/persistence/sql/sqlplugin/postgresql" // registers postgres12
	"go.temporal.io/server/temporal"
)

func main() {
	configFile := flag.String("config-file", "", "the server's config file (required)")
	allowNoAuth := flag.Bool("allow-no-auth", false, "run without an authorizer, without the warning")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: %s --config-file <file> [--allow-no-auth] start\n", os.Args[0])
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 || flag.Arg(0) != "start" || *configFile == "" {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(*configFile, *allowNoAuth); err != nil {
		fmt.Fprintf(os.Stderr, "temporal-server: %v\n", err)
		os.Exit(1)
	}
}

// run starts every Temporal service in this process and returns once a SIGINT or SIGTERM has
// stopped them, as upstream's `start` does.
func run(configFile string, allowNoAuth bool) error {
	cfg, err := config.Load(config.WithConfigFile(configFile))
	if err != nil {
		return fmt.Errorf("load %s: %w", configFile, err)
	}
	logger := log.NewZapLogger(log.BuildZapLogger(cfg.Log))
	logger.Info("Build info.", tag.String("server-version", headers.ServerVersion))
	authorizer, err := authorization.GetAuthorizerFromConfig(&cfg.Global.Authorization)
	if err != nil {
		return fmt.Errorf("authorizer: %w", err)
	}
	if authorization.IsNoopAuthorizer(authorizer) && !allowNoAuth {
		logger.Warn("Not using any authorizer and flag `--allow-no-auth` not detected.")
	}
	claimMapper, err := authorization.GetClaimMapperFromConfig(&cfg.Global.Authorization, logger)
	if err != nil {
		return fmt.Errorf("claim mapper: %w", err)
	}
	audienceMapper, err := authorization.GetAudienceMapperFromConfig(&cfg.Global.Authorization)
	if err != nil {
		return fmt.Errorf("audience mapper: %w", err)
	}
	s, err := temporal.NewServer(
		temporal.ForServices(temporal.DefaultServices),
		temporal.WithConfig(cfg),
		temporal.WithLogger(logger),
		temporal.InterruptOn(temporal.InterruptCh()),
		temporal.WithAuthorizer(authorizer),
		temporal.WithClaimMapper(func(*config.Config) authorization.ClaimMapper { return claimMapper }),
		temporal.WithAudienceGetter(func(*config.Config) authorization.JWTAudienceMapper { return audienceMapper }),
	)
	if err != nil {
		return fmt.Errorf("create server: %w", err)
	}
	// With InterruptOn, Start blocks until the signal and then stops the services.
	if err := s.Start(); err != nil {
		return fmt.Errorf("start: %w", err)
	}
	return nil
}

package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/cheops-io/cheops/auth"
	"github.com/cheops-io/cheops/seal"
	"github.com/cheops-io/cheops/store"
)

// newAdminCmd is the operator's commands that act on the store directly, not through the API.
func newAdminCmd() *cobra.Command {
	admin := &cobra.Command{
		Use:   "admin",
		Short: "Operator commands: API tokens, encryption keys and sealed credentials",
	}
	admin.AddCommand(&cobra.Command{
		Use:   "new-key",
		Short: "Print a new encryption key line; append it to the key file to make it the sealing key",
		Long: `Print a new encryption key line, '<id>:<base64 of 32 random bytes>'. Append it to the key file
of every server and worker (the last key of the file seals, every key opens), restart them, then
run 'cheops admin rotate-credentials' to re-seal what older keys sealed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			line, err := seal.NewKeyLine(time.Now())
			if err != nil {
				return err
			}
			_, err = fmt.Fprint(cmd.OutOrStdout(), line)
			return err
		},
	})
	var name, role, sites string
	newToken := &cobra.Command{
		Use:   "new-token --name NAME --role viewer|operator|admin [--sites SELECTOR]",
		Short: "Make an API token: print it once, and the tokens-file entry that holds only its SHA-256",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			entry := fmt.Sprintf("tokens: [{name: %q, role: %q, sha256: %q, sites: %q}]", name, role, auth.Hash("x"), sites)
			if _, err := auth.ParseTokens([]byte(entry)); err != nil {
				return usageError{err}
			}
			token, err := auth.NewToken()
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "# the token, shown this once: give it to %s\n%s\n# append this entry to the tokens file (under tokens:)\n- {name: %q, role: %q, sha256: %q, sites: %q}\n",
				name, token, name, role, auth.Hash(token), sites)
			return err
		},
	}
	newToken.Flags().StringVar(&name, "name", "", "who the token is for; recorded as the actor of what it changes")
	newToken.Flags().StringVar(&role, "role", "viewer", "viewer, operator or admin")
	newToken.Flags().StringVar(&sites, "sites", "", "a label selector: the token may only place resources on, and see, the sites it matches")
	admin.AddCommand(newToken)
	var ecfg etcdConfig
	var sc sealConfig
	rotate := &cobra.Command{
		Use:   "rotate-credentials",
		Short: "Re-seal every site's credentials under the newest key of the key file",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := ecfg.validate(); err != nil {
				return err
			}
			keys, err := sc.load()
			if err != nil {
				return err
			}
			ec, err := ecfg.dial()
			if err != nil {
				return err
			}
			defer ec.Close()
			s := store.New(ec, strings.TrimSuffix(ecfg.Prefix, "/"))
			s.SealWith(keys)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			n, err := s.RotateCredentials(ctx)
			if err != nil {
				return fmt.Errorf("after re-sealing %d site(s): %w", n, err)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "re-sealed the credentials of %d site(s) under key %s\n", n, keys.Current())
			return err
		},
	}
	ecfg.register(rotate.Flags())
	sc.register(rotate.Flags(), "")
	admin.AddCommand(rotate)
	return admin
}

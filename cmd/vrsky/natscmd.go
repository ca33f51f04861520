package main

import (
	"errors"
	"fmt"
	"io/fs"

	"github.com/spf13/cobra"

	"github.com/vrsky/vrsky/platform/natsx"
)

// newNATSCmd is `vrsky nats`: the operator keys an external NATS cluster
// runs with for VRSky (operator mode, an account per tenant).
func newNATSCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "nats",
		Short: "Set up an external NATS cluster for VRSky (operator mode, an account per tenant)",
		Args:  cobra.NoArgs,
	}
	keys := &cobra.Command{
		Use:   "keys FILE",
		Short: "Write new operator keys to FILE (mode 0600): what every vrsky serve --nats-keys takes",
		Long: "Writes a new operator, system account and platform account as nkey seeds to FILE, which must not exist.\n" +
			"Give a copy to every vrsky node (--nats-keys FILE) and run `vrsky nats server-config --keys FILE` for the servers' configuration.\n" +
			"Keep it secret: it signs every tenant's account.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			k, err := natsx.GenerateKeys()
			if err != nil {
				return err
			}
			if err := k.Save(args[0]); err != nil {
				if errors.Is(err, fs.ErrExist) {
					return fmt.Errorf("%s exists: refusing to overwrite operator keys", args[0])
				}
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "operator keys written to %s (operator %s)\n", args[0], k.OperatorPublicKey())
			return nil
		},
	}
	var keysFile, resolverDir string
	config := &cobra.Command{
		Use:   "server-config",
		Short: "Print the nats-server configuration block that trusts the operator in --keys",
		Long: "Prints the operator, system_account, resolver and resolver_preload settings every server of the cluster needs:\n" +
			"add them to each server's configuration (with JetStream and the cluster settings) and restart it.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if keysFile == "" {
				return errors.New("--keys is required: the file `vrsky nats keys` wrote")
			}
			k, err := natsx.LoadKeys(keysFile)
			if err != nil {
				return err
			}
			out, err := k.ServerConfig(resolverDir)
			if err != nil {
				return err
			}
			_, err = fmt.Fprint(cmd.OutOrStdout(), out)
			return err
		},
	}
	config.Flags().StringVar(&keysFile, "keys", "", "the operator keys file")
	config.Flags().StringVar(&resolverDir, "resolver-dir", "/data/nats/accounts", "where each server keeps the account claims VRSky pushes")
	cmd.AddCommand(keys, config)
	return cmd
}

package main

import (
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "vrsky",
		Short:         "VRSky: a durable, sandboxed integration platform",
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version,
	}
	root.AddCommand(newServeCmd(), newIntegrationCmd(), newTenantCmd(), newMigrateCmd(), newConnectorCmd(), newNATSCmd())
	root.AddCommand(newDevSinkCmd())
	return root
}

// envDefaults lets every flag of cmd be set as VRSKY_<FLAG> (dashes become
// underscores); an explicit flag wins.
func envDefaults(cmd *cobra.Command) {
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if f.Changed {
			return
		}
		if v, ok := os.LookupEnv("VRSKY_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))); ok {
			_ = f.Value.Set(v)
		}
	})
}

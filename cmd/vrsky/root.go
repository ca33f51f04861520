package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

func newRootCmd() *cobra.Command {
	b := currentBuild()
	root := &cobra.Command{
		Use:           "vrsky",
		Short:         "VRSky: a durable, sandboxed integration platform",
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       b.Version,
	}
	root.SetVersionTemplate(b.String() + "\n")
	root.AddCommand(newServeCmd(), newMigrateCmd(), newVersionCmd(), newContextCmd(),
		newIntegrationCmd(), newTenantCmd(), newKeyCmd(), newDLQCmd(), newMessageCmd(), newConnectorCmd(),
		newNATSCmd(), newDevSinkCmd(), newDemoCmd(), newHealthcheckCmd())
	// Cobra adds its completion command when it runs; added now, it is a
	// group like the others (vrsky completion bsh fails).
	root.InitDefaultCompletionCmd()
	root.SetHelpCommand(newHelpCmd())
	groupAll(root)
	return root
}

// newHelpCmd is cobra's help command, except that a topic that is no
// command fails (cobra's prints the usage and succeeds).
func newHelpCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "help [command]",
		Short: "Help about any command",
		RunE: func(c *cobra.Command, args []string) error {
			cmd, rest, err := c.Root().Find(args)
			if err != nil || cmd == nil || len(rest) > 0 {
				return fmt.Errorf("unknown help topic %q: run 'vrsky --help' for the commands", strings.Join(args, " "))
			}
			cmd.InitDefaultHelpFlag()
			cmd.InitDefaultVersionFlag()
			return cmd.Help()
		},
		ValidArgsFunction: func(c *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
			cmd, _, err := c.Root().Find(args)
			if err != nil || cmd == nil {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			var out []string
			for _, sub := range cmd.Commands() {
				if sub.IsAvailableCommand() && strings.HasPrefix(sub.Name(), toComplete) {
					out = append(out, sub.Name()+"\t"+sub.Short)
				}
			}
			return out, cobra.ShellCompDirectiveNoFileComp
		},
	}
}

// groupAll makes every command under root that holds subcommands and runs
// nothing a group. (The root itself fails on an unknown command already.)
func groupAll(root *cobra.Command) {
	for _, c := range root.Commands() {
		if c.HasSubCommands() && !c.Runnable() {
			group(c)
		}
		groupAll(c)
	}
}

// group makes cmd a command that only holds subcommands. Cobra prints the
// help and succeeds when such a command is given an argument that is none
// of its subcommands; a group fails instead, naming the argument (and
// what it may have meant), so that a typo in a script is not a success.
func group(cmd *cobra.Command) *cobra.Command {
	cmd.Args = cobra.ArbitraryArgs
	if cmd.SuggestionsMinimumDistance <= 0 {
		cmd.SuggestionsMinimumDistance = 2 // cobra's default, which it sets only for the root
	}
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if len(args) == 0 {
			return cmd.Help()
		}
		msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
		if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
			msg += "; did you mean " + strings.Join(s, " or ") + "?"
		}
		return fmt.Errorf("%s\nRun '%s --help' for usage", msg, cmd.CommandPath())
	}
	return cmd
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

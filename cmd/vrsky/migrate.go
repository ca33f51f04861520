package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/vrsky/vrsky/platform/store/pgstore"
)

func newMigrateCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "migrate", Short: "PostgreSQL control-plane schema migrations"}
	var dsn string
	status := &cobra.Command{
		Use:   "status",
		Short: "List the schema migrations this binary ships and whether the database has applied them",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			envDefaults(cmd)
			if dsn == "" {
				return fmt.Errorf("--database-url (VRSKY_DATABASE_URL) is required")
			}
			st, err := pgstore.Open(cmd.Context(), dsn, pgstore.WithoutMigrations())
			if err != nil {
				return err
			}
			defer st.Close()
			ms, err := st.MigrationStatus(cmd.Context())
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "VERSION\tNAME\tSTATE\tAPPLIED AT")
			for _, m := range ms {
				state, at := "pending", ""
				switch {
				case m.Unknown:
					state, at = "applied (unknown to this binary)", m.AppliedAt.Format("2006-01-02 15:04:05Z07:00")
				case m.Applied:
					state, at = "applied", m.AppliedAt.Format("2006-01-02 15:04:05Z07:00")
				}
				fmt.Fprintf(w, "%04d\t%s\t%s\t%s\n", m.Version, m.Name, state, at)
			}
			return w.Flush()
		},
	}
	status.Flags().StringVar(&dsn, "database-url", "", "PostgreSQL URL (VRSKY_DATABASE_URL)")
	cmd.AddCommand(status)
	return cmd
}

package main

import (
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/vrsky/vrsky/platform/store/pgstore"
)

// migrationView is one migration as `migrate status -o json|yaml` prints it.
type migrationView struct {
	Version   int        `json:"version"`
	Name      string     `json:"name"`
	State     string     `json:"state"`
	AppliedAt *time.Time `json:"applied_at,omitempty"`
	Checksum  string     `json:"checksum,omitempty"`
}

func newMigrateCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "migrate", Short: "PostgreSQL control-plane schema migrations"}
	var dsn string
	var out *outputFormat
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
			views := make([]migrationView, 0, len(ms))
			for _, m := range ms {
				v := migrationView{Version: m.Version, Name: m.Name, State: "pending", Checksum: m.Checksum}
				switch {
				case m.Unknown:
					v.State = "applied (unknown to this binary)"
				case m.Applied:
					v.State = "applied"
				}
				if m.Applied || m.Unknown {
					at := m.AppliedAt
					v.AppliedAt = &at
				}
				views = append(views, v)
			}
			return out.printValue(cmd.OutOrStdout(), map[string]any{"migrations": views}, func(w io.Writer) error {
				t := newTable(w)
				t.row("VERSION", "NAME", "STATE", "APPLIED AT")
				for _, v := range views {
					at := ""
					if v.AppliedAt != nil {
						at = v.AppliedAt.Format("2006-01-02 15:04:05Z07:00")
					}
					t.row(fmt.Sprintf("%04d", v.Version), v.Name, v.State, at)
				}
				return t.flush()
			})
		},
	}
	status.Flags().StringVar(&dsn, "database-url", "", "PostgreSQL URL (VRSKY_DATABASE_URL)")
	out = addOutputFlag(status)
	cmd.AddCommand(status)
	return cmd
}

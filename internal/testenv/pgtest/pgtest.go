// Package pgtest runs throwaway PostgreSQL clusters for tests, from the
// system's binaries (initdb, postgres): one cluster per test binary, started
// on first use, and one fresh database per test.
//
//	func TestMain(m *testing.M) { pgtest.Main(m) } // stops the shared cluster at the end
//
//	func TestSomething(t *testing.T) {
//		dsn := pgtest.New(t) // a new, empty database; dropped by t.Cleanup
//		...
//	}
//
// The cluster lives in a temp dir, listens on a free loopback port and on a
// unix socket in that dir, and runs with wal_level=logical and replication
// slots, so CDC tests can use it too. fsync is off: it is for tests only.
// As root (CI), initdb and postgres run as the "postgres" system user, since
// both refuse to run as root; as any other user they run as that user.
//
// A test that needs to stop and start the server (outage tests) starts a
// private cluster with Start and calls its Stop and Start methods.
//
// Missing binaries fail the test (never skip) with a message that says how
// to install them: `make test` (scripts/test-deps.sh) or
// `apt-get install postgresql`.
package pgtest

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/vrsky/vrsky/internal/testenv/pgcluster"
)

// InstallHint tells a developer how to get the PostgreSQL binaries.
const InstallHint = pgcluster.InstallHint

// Cluster is one running (or stopped) throwaway PostgreSQL cluster.
type Cluster = pgcluster.Cluster

// ClusterOptions are StartClusterWith's settings.
type ClusterOptions = pgcluster.ClusterOptions

// StartCluster starts a cluster in a new temp dir; the caller must Close it.
func StartCluster() (*Cluster, error) { return pgcluster.StartCluster() }

// StartClusterWith starts a cluster as o says; the caller must Close it.
func StartClusterWith(o ClusterOptions) (*Cluster, error) { return pgcluster.StartClusterWith(o) }

// Start initialises and starts a private cluster for t, closed by t.Cleanup.
// Most tests want New instead, which shares one cluster per test binary.
func Start(t testing.TB) *Cluster {
	t.Helper()
	c, err := StartCluster()
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("pgtest: %v", err)
		}
	})
	return c
}

// NewDatabase creates a fresh database on c for t, dropped by t.Cleanup, and
// returns its DSN.
func NewDatabase(t testing.TB, c *Cluster) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	name, dsn, err := c.CreateDatabase(ctx)
	if err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(func() {
		if !c.Running() {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := c.DropDatabase(ctx, name); err != nil {
			t.Logf("%v", err)
		}
	})
	return dsn
}

// ---- the shared cluster ----

var shared struct {
	once sync.Once
	c    *Cluster
	err  error
}

// Shared returns the test binary's cluster, starting it on first use.
func Shared() (*Cluster, error) {
	shared.once.Do(func() {
		start := time.Now()
		shared.c, shared.err = StartCluster()
		if shared.err == nil {
			slog.Debug("pgtest: cluster started", "dir", shared.c.Dir(), "port", shared.c.Port(), "took", time.Since(start))
		}
	})
	return shared.c, shared.err
}

// New returns the DSN of a fresh, empty database on the shared cluster,
// dropped when t ends.
func New(t testing.TB) string {
	t.Helper()
	c, err := Shared()
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	return NewDatabase(t, c)
}

// Main runs the tests and then stops the shared cluster, if one was started.
// Use it as the package's TestMain:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
//
// Without it the postmaster still dies with the test binary (it gets
// SIGQUIT when its parent goes), but its temp dir is left behind.
func Main(m *testing.M) {
	code := m.Run()
	if err := Cleanup(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

// Cleanup stops and removes the shared cluster, if one was started. Main
// calls it; call it yourself from a TestMain that does more.
func Cleanup() error {
	if shared.c == nil {
		return nil
	}
	return shared.c.Close()
}

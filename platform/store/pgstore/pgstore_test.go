package pgstore_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/goleak"

	"github.com/vrsky/vrsky/internal/testenv/pgtest"
	"github.com/vrsky/vrsky/platform/store"
	"github.com/vrsky/vrsky/platform/store/pgstore"
	"github.com/vrsky/vrsky/platform/store/storetest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if err := pgtest.Cleanup(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		code = max(code, 1)
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goroutine leak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

func open(t *testing.T, dsn string, opts ...pgstore.Option) *pgstore.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	opts = append([]pgstore.Option{pgstore.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))}, opts...)
	s, err := pgstore.Open(ctx, dsn, opts...)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// TestContract runs the contract on one database, emptied before each
// subtest (a database per subtest would cost half a second each).
func TestContract(t *testing.T) {
	s := open(t, pgtest.New(t))
	storetest.Run(t, func(t *testing.T) store.Store {
		if _, err := s.Pool().Exec(context.Background(),
			"TRUNCATE tenants, api_keys, integrations, tenant_endpoints, connectors, connector_versions, connector_names"); err != nil {
			t.Fatalf("empty the database: %v", err)
		}
		return s
	})
}

// TestConcurrentOpen starts several stores on one fresh database at once:
// the advisory lock lets all succeed, and each migration runs once.
func TestConcurrentOpen(t *testing.T) {
	dsn := pgtest.New(t)
	const n = 4
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			s, err := pgstore.Open(ctx, dsn)
			if err == nil {
				s.Close()
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Open %d: %v", i, err)
		}
	}
	s := open(t, dsn)
	ctx := context.Background()
	status, err := s.MigrationStatus(ctx)
	if err != nil {
		t.Fatalf("MigrationStatus: %v", err)
	}
	if len(status) == 0 {
		t.Fatalf("no migrations")
	}
	for _, m := range status {
		if !m.Applied || m.Unknown || m.AppliedAt.IsZero() || m.Checksum == "" {
			t.Errorf("migration %+v: want applied", m)
		}
	}
	var rows int
	if err := s.Pool().QueryRow(ctx, "SELECT count(*) FROM schema_migrations").Scan(&rows); err != nil {
		t.Fatalf("count: %v", err)
	}
	if rows != len(status) {
		t.Errorf("schema_migrations has %d rows, want %d", rows, len(status))
	}
}

func TestMigrationStatusBeforeMigrating(t *testing.T) {
	dsn := pgtest.New(t)
	s := open(t, dsn, pgstore.WithoutMigrations())
	status, err := s.MigrationStatus(context.Background())
	if err != nil {
		t.Fatalf("MigrationStatus on an empty database: %v", err)
	}
	for _, m := range status {
		if m.Applied {
			t.Errorf("migration %d reported applied on an empty database", m.Version)
		}
	}
	if err := s.Migrate(context.Background()); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	status, err = s.MigrationStatus(context.Background())
	if err != nil {
		t.Fatalf("MigrationStatus: %v", err)
	}
	for _, m := range status {
		if !m.Applied {
			t.Errorf("migration %d not applied after Migrate", m.Version)
		}
	}
}

func TestEditedMigrationRefused(t *testing.T) {
	dsn := pgtest.New(t)
	s := open(t, dsn)
	if _, err := s.Pool().Exec(context.Background(), "UPDATE schema_migrations SET checksum = 'feedbeef' WHERE version = 1"); err != nil {
		t.Fatalf("tamper: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if s2, err := pgstore.Open(ctx, dsn); err == nil {
		s2.Close()
		t.Fatalf("Open accepted a migration whose checksum changed")
	}
}

func TestSchema(t *testing.T) {
	s := open(t, pgtest.New(t))
	ctx := context.Background()
	for _, table := range []string{"tenants", "api_keys", "integrations", "tenant_endpoints", "connectors", "connector_versions", "connector_names"} {
		t.Run(table, func(t *testing.T) {
			var ok bool
			if err := s.Pool().QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", table).Scan(&ok); err != nil || !ok {
				t.Errorf("table %s missing (%v)", table, err)
			}
		})
	}
}

func TestOpenErrors(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, tc := range []struct {
		name, dsn   string
		unavailable bool
	}{
		{"Unreachable", "postgres://postgres@127.0.0.1:1/x?sslmode=disable&connect_timeout=2", true},
		{"BadSyntax", "postgres://user:secret@host:notaport/db", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := pgstore.Open(ctx, tc.dsn)
			if err == nil {
				s.Close()
				t.Fatalf("Open(%q) succeeded", tc.dsn)
			}
			if got := errors.Is(err, store.ErrUnavailable); got != tc.unavailable {
				t.Errorf("Open: %v; ErrUnavailable = %v, want %v", err, got, tc.unavailable)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("error leaks the password: %v", err)
			}
		})
	}
}

// TestServerRestart stops PostgreSQL under an open Store: calls fail with
// ErrUnavailable, and once the server is back the same Store works again.
func TestServerRestart(t *testing.T) {
	cluster := pgtest.Start(t)
	s := open(t, pgtest.NewDatabase(t, cluster), pgstore.WithQueryTimeout(3*time.Second))
	ctx := context.Background()
	if _, err := s.CreateTenant(ctx, store.Tenant{Name: "acme"}); err != nil {
		t.Fatalf("CreateTenant: %v", err)
	}
	if err := cluster.Stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	calls := []struct {
		name string
		call func() error
	}{
		{"Ping", func() error { return s.Ping(ctx) }},
		{"GetTenant", func() error { _, err := s.GetTenant(ctx, "acme"); return err }},
		{"CreateTenant", func() error { _, err := s.CreateTenant(ctx, store.Tenant{Name: "b"}); return err }},
		{"ListIntegrations", func() error { _, err := s.ListIntegrations(ctx, ""); return err }},
		{"DeleteKey", func() error { return s.DeleteKey(ctx, "acme", "k") }},
		{"ListEndpoints", func() error { _, err := s.ListEndpoints(ctx); return err }},
	}
	for _, c := range calls {
		t.Run("down/"+c.name, func(t *testing.T) {
			if err := c.call(); !errors.Is(err, store.ErrUnavailable) {
				t.Errorf("%s with the server down: %v, want ErrUnavailable", c.name, err)
			}
		})
	}
	if err := cluster.Start(); err != nil {
		t.Fatalf("start: %v", err)
	}
	// The pool reconnects by itself; poll, since the first call may still
	// meet a connection that died with the old server.
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := s.Ping(ctx)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("store did not recover: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, c := range calls {
		t.Run("up/"+c.name, func(t *testing.T) {
			if err := c.call(); errors.Is(err, store.ErrUnavailable) {
				t.Errorf("%s after restart: %v", c.name, err)
			}
		})
	}
	if got, err := s.GetTenant(ctx, "acme"); err != nil || got.Name != "acme" {
		t.Errorf("GetTenant after restart = %+v, %v", got, err)
	}
}

func TestQueryDeadline(t *testing.T) {
	s := open(t, pgtest.New(t), pgstore.WithQueryTimeout(300*time.Millisecond))
	ctx := context.Background()
	if _, err := s.CreateTenant(ctx, store.Tenant{Name: "acme"}); err != nil {
		t.Fatalf("CreateTenant: %v", err)
	}
	// Hold the row lock in another transaction: the update must give up
	// at the store's deadline instead of waiting.
	tx, err := s.Pool().BeginTx(ctx, pgx.TxOptions{})
	if err != nil {
		t.Fatalf("begin: %v", err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, "SELECT 1 FROM tenants WHERE name = 'acme' FOR UPDATE"); err != nil {
		t.Fatalf("lock: %v", err)
	}
	cur, err := s.GetTenant(ctx, "acme")
	if err != nil {
		t.Fatalf("GetTenant: %v", err)
	}
	start := time.Now()
	_, err = s.UpdateTenant(ctx, cur)
	if err == nil {
		t.Fatalf("UpdateTenant succeeded through a held lock")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("UpdateTenant took %v with a 300ms deadline", d)
	}
}

// TestRestartUnderLoad keeps readers and writers busy while PostgreSQL
// stops and starts: every failure must be ErrUnavailable (what the API turns
// into 503), and once the server is back every call succeeds again.
func TestRestartUnderLoad(t *testing.T) {
	cluster := pgtest.Start(t)
	s := open(t, pgtest.NewDatabase(t, cluster), pgstore.WithQueryTimeout(2*time.Second))
	ctx := context.Background()
	if _, err := s.CreateTenant(ctx, store.Tenant{Name: "acme"}); err != nil {
		t.Fatalf("CreateTenant: %v", err)
	}
	var (
		stop     = make(chan struct{})
		wg       sync.WaitGroup
		mu       sync.Mutex
		failures = map[string]int{}
		other    []error
		ok       atomic.Int64
	)
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	for w := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				var err error
				if w%2 == 0 {
					_, err = s.GetTenant(ctx, "acme")
				} else {
					_, err = s.CreateIntegration(ctx, store.Integration{Tenant: "acme", Name: fmt.Sprintf("w%d-%d", w, i),
						Spec: []byte(`{}`), Desired: store.StateStopped})
				}
				if err == nil {
					ok.Add(1)
				} else {
					mu.Lock()
					if errors.Is(err, store.ErrUnavailable) {
						failures["unavailable"]++
					} else {
						other = append(other, err)
					}
					mu.Unlock()
					time.Sleep(10 * time.Millisecond)
				}
			}
		}()
	}
	waitFor("calls before the outage", func() bool { return ok.Load() >= 50 })
	if err := cluster.Stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	unavailable := func() int { mu.Lock(); defer mu.Unlock(); return failures["unavailable"] }
	waitFor("calls to fail during the outage", func() bool { return unavailable() >= 12 })
	if err := cluster.Start(); err != nil {
		t.Fatalf("start: %v", err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for s.Ping(ctx) != nil {
		if time.Now().After(deadline) {
			t.Fatalf("store did not recover")
		}
		time.Sleep(20 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	t.Logf("failures during the outage: %v", failures)
	if failures["unavailable"] == 0 {
		t.Errorf("no call failed while the server was down")
	}
	for _, err := range other {
		t.Errorf("failure that is not ErrUnavailable: %v", err)
	}
	for i := range 20 {
		if _, err := s.GetTenant(ctx, "acme"); err != nil {
			t.Fatalf("call %d after recovery: %v", i, err)
		}
	}
}

package store_test

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/vrsky/vrsky/platform/natsx"
	"github.com/vrsky/vrsky/platform/store"
)

// TestNATSServerRestart stops an external NATS server under an open store:
// calls fail with ErrUnavailable, and after the server comes back on the
// same port and files the same store works again, data intact.
func TestNATSServerRestart(t *testing.T) {
	dir := t.TempDir()
	keys, err := natsx.GenerateKeys()
	if err != nil {
		t.Fatal(err)
	}
	keysFile := filepath.Join(dir, natsx.KeysFile)
	if err := keys.Save(keysFile); err != nil {
		t.Fatal(err)
	}
	opts := &server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: filepath.Join(dir, "js"), NoSigs: true}
	srv := startNATS(t, opts, keys, dir)
	opts.Port = srv.Addr().(*net.TCPAddr).Port // keep the port for the restart
	ctx := context.Background()
	conn, err := natsx.Connect(ctx, natsx.Options{URL: srv.ClientURL(), KeysFile: keysFile, Name: t.Name()})
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(conn.Close)
	s, err := store.NewNATS(ctx, conn.JS, 1)
	if err != nil {
		t.Fatalf("NewNATS: %v", err)
	}
	if _, err := s.CreateTenant(ctx, store.Tenant{Name: "acme"}); err != nil {
		t.Fatalf("CreateTenant: %v", err)
	}
	srv.Shutdown()
	srv.WaitForShutdown()

	short := func() (context.Context, context.CancelFunc) { return context.WithTimeout(ctx, 500*time.Millisecond) }
	for _, c := range []struct {
		name string
		call func(context.Context) error
	}{
		{"GetTenant", func(ctx context.Context) error { _, err := s.GetTenant(ctx, "acme"); return err }},
		{"ListTenants", func(ctx context.Context) error { _, err := s.ListTenants(ctx); return err }},
		{"CreateTenant", func(ctx context.Context) error { _, err := s.CreateTenant(ctx, store.Tenant{Name: "b"}); return err }},
		{"Ping", func(ctx context.Context) error { return s.Ping(ctx) }},
	} {
		t.Run("down/"+c.name, func(t *testing.T) {
			cctx, cancel := short()
			defer cancel()
			if err := c.call(cctx); !errors.Is(err, store.ErrUnavailable) {
				t.Errorf("%s with NATS down: %v, want ErrUnavailable", c.name, err)
			}
		})
	}

	startNATS(t, opts, keys, dir)
	deadline := time.Now().Add(30 * time.Second)
	for {
		cctx, cancel := short()
		err := s.Ping(cctx)
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("store did not recover: %v", err)
		}
	}
	if got, err := s.GetTenant(ctx, "acme"); err != nil || got.Name != "acme" {
		t.Fatalf("GetTenant after restart = %+v, %v", got, err)
	}
	if _, err := s.CreateTenant(ctx, store.Tenant{Name: "globex"}); err != nil {
		t.Fatalf("CreateTenant after restart: %v", err)
	}
}

// startNATS starts a server with opts in operator mode with keys, its
// account claims under dir.
func startNATS(t *testing.T, opts *server.Options, keys *natsx.Keys, dir string) *server.Server {
	t.Helper()
	o := *opts
	if err := natsx.TrustOptions(&o, keys, filepath.Join(dir, "accounts")); err != nil {
		t.Fatal(err)
	}
	srv, err := server.NewServer(&o)
	if err != nil {
		t.Fatalf("nats-server: %v", err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(30 * time.Second) {
		t.Fatalf("nats-server not ready")
	}
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	return srv
}

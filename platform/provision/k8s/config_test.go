// The config is checked with the real nats-server: its own parser, and a
// server started from it. The Kubernetes side goes through client-go's fake
// clientset: see helpers_test.go for why.
package k8s

import (
	"context"
	"fmt"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/conf"
	"github.com/nats-io/nats-server/v2/server"

	"github.com/vrsky/vrsky/platform/provision"
)

// checkConfig parses text, the config of a ConfigMap, with nats-server's
// parser and checks that it is the config spec calls for. The parser
// creates the resolver's directory, so the data directory's path is moved
// into a temp dir first; nothing else is changed.
func checkConfig(t *testing.T, text string, spec provision.Spec, wantSync bool) *server.Options {
	t.Helper()
	dir := t.TempDir()
	if !strings.Contains(text, `"`+dataDir) {
		t.Fatalf("config does not use the data volume %s:\n%s", dataDir, text)
	}
	file := filepath.Join(dir, "nats.conf")
	if err := os.WriteFile(file, []byte(strings.ReplaceAll(text, `"`+dataDir, `"`+dir)), 0o600); err != nil {
		t.Fatal(err)
	}
	opts, err := server.ProcessConfigFile(file)
	if err != nil {
		t.Fatalf("nats-server refuses the config: %v\n%s", err, text)
	}

	op, err := jwt.DecodeOperatorClaims(spec.OperatorJWT)
	if err != nil {
		t.Fatal(err)
	}
	if len(opts.TrustedOperators) != 1 || opts.TrustedOperators[0].Subject != op.Subject {
		t.Errorf("trusted operators %v, want the spec's %s", opts.TrustedOperators, op.Subject)
	}
	if opts.SystemAccount != spec.SystemAccount {
		t.Errorf("system account %q, want %q", opts.SystemAccount, spec.SystemAccount)
	}
	if _, ok := opts.AccountResolver.(*server.DirAccResolver); !ok {
		t.Errorf("account resolver %T, want the full (directory) resolver", opts.AccountResolver)
	}
	if !opts.JetStream || opts.StoreDir != dir {
		t.Errorf("JetStream %v in %q, want on in the data dir %q", opts.JetStream, opts.StoreDir, dir)
	}
	if opts.SyncAlways != wantSync {
		t.Errorf("sync always %v, want %v", opts.SyncAlways, wantSync)
	}
	if opts.Host != "0.0.0.0" || opts.Port != ClientPort || opts.HTTPHost != "0.0.0.0" || opts.HTTPPort != MonitorPort {
		t.Errorf("listens on %s:%d, monitor %s:%d; want 0.0.0.0:%d and 0.0.0.0:%d", opts.Host, opts.Port, opts.HTTPHost, opts.HTTPPort, ClientPort, MonitorPort)
	}

	// The preloads, which Options keeps to itself: read them with the
	// server's config reader.
	m, err := conf.ParseFile(file)
	if err != nil {
		t.Fatal(err)
	}
	pre, _ := m["resolver_preload"].(map[string]any)
	want := map[string]any{spec.SystemAccount: spec.SystemAccountJWT, spec.Account: spec.AccountJWT}
	if !maps.Equal(pre, want) {
		t.Errorf("resolver_preload has %d accounts, want the system and tenant accounts with their JWTs", len(pre))
	}
	return opts
}

func TestSyncAlways(t *testing.T) {
	op := newTestOperator(t)
	tests := []struct {
		name             string
		spec, cfg, wants bool
	}{
		{"neither", false, false, false},
		{"the spec", true, false, true},
		{"the config", false, true, true},
		{"both", true, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := op.spec(t, "acme", 1)
			spec.SyncAlways = tt.spec
			cfg := testConfig()
			cfg.SyncAlways = tt.cfg
			p, cs := newTestProvisioner(t, cfg)
			if _, err := p.Ensure(context.Background(), spec); err != nil {
				t.Fatal(err)
			}
			checkConfig(t, readBack(t, cs, "acme").configMap.Data[configKey], spec, tt.wants)
		})
	}
}

// TestConfigServes starts a real nats-server from the rendered config (on
// loopback, in a temp dir) and checks what the pod's probes and vrsky's
// nodes rely on: the probe's health check answers 200 and the tenant's
// preloaded account exists with JetStream.
func TestConfigServes(t *testing.T) {
	op := newTestOperator(t)
	spec := op.spec(t, "acme", 10)
	dir := t.TempDir()
	text, err := renderConfig(spec, freeAddr(t), freeAddr(t), dir)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "nats.conf")
	if err := os.WriteFile(file, text, 0o600); err != nil {
		t.Fatal(err)
	}
	opts, err := server.ProcessConfigFile(file)
	if err != nil {
		t.Fatal(err)
	}
	opts.NoLog, opts.NoSigs = true, true
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready after 10s")
	}

	url := fmt.Sprintf("http://%s%s", s.MonitorAddr(), healthPath)
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET %s: %s, want 200", url, resp.Status)
	}

	acc, err := s.LookupAccount(spec.Account)
	if err != nil {
		t.Fatalf("tenant account: %v", err)
	}
	if !acc.JetStreamEnabled() {
		t.Error("tenant account has no JetStream")
	}
	if s.SystemAccount() == nil || s.SystemAccount().Name != spec.SystemAccount {
		t.Errorf("system account %v, want %s", s.SystemAccount(), spec.SystemAccount)
	}
}

func TestRenderConfigRefusesUnsafeValues(t *testing.T) {
	spec := newTestOperator(t).spec(t, "acme", 1)
	spec.AccountJWT = `x" } include "/etc/passwd`
	if _, err := renderConfig(spec, "0.0.0.0:4222", "0.0.0.0:8222", "/data"); err == nil || !strings.Contains(err.Error(), "AccountJWT") {
		t.Fatalf("renderConfig of a quote-breaking JWT: %v, want an error naming AccountJWT", err)
	}
}

// freeAddr is a loopback address on a port free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

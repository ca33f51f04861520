package provision_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/conf"
	"github.com/nats-io/nats-server/v2/server"

	"github.com/vrsky/vrsky/platform/provision"
)

// parse renders spec's configuration into a file and has nats-server read
// it, as the child does.
func parse(t *testing.T, spec provision.Spec, storeDir string) *server.Options {
	t.Helper()
	b, err := provision.Config(spec, "127.0.0.1:14222", "127.0.0.1:18222", storeDir)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "nats.conf")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	opts, err := server.ProcessConfigFile(path)
	if err != nil {
		t.Fatalf("nats-server refuses the configuration: %v\n%s", err, b)
	}
	if opts.AccountResolver != nil {
		t.Cleanup(opts.AccountResolver.Close) // its expiry goroutine
	}
	return opts
}

func TestConfigParses(t *testing.T) {
	tr := newTrust(t)
	for _, tc := range []struct {
		name       string
		syncAlways bool
	}{
		{name: "interval sync"},
		{name: "sync always", syncAlways: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := tr.spec("acme")
			spec.SyncAlways = tc.syncAlways
			dir := t.TempDir()
			opts := parse(t, spec, dir)

			if len(opts.TrustedOperators) != 1 {
				t.Fatalf("TrustedOperators = %d, want 1", len(opts.TrustedOperators))
			}
			opPub, _ := tr.op.PublicKey()
			if got := opts.TrustedOperators[0].Subject; got != opPub {
				t.Errorf("trusted operator %s, want %s", got, opPub)
			}
			if opts.SystemAccount != tr.sysPub {
				t.Errorf("SystemAccount = %s, want %s", opts.SystemAccount, tr.sysPub)
			}
			if opts.ServerName != "vrsky-tenant-acme" {
				t.Errorf("ServerName = %q", opts.ServerName)
			}
			if opts.Host != "127.0.0.1" || opts.Port != 14222 || opts.HTTPHost != "127.0.0.1" || opts.HTTPPort != 18222 {
				t.Errorf("listen %s:%d, monitor %s:%d", opts.Host, opts.Port, opts.HTTPHost, opts.HTTPPort)
			}
			if opts.MaxPayload != provision.MaxPayload {
				t.Errorf("MaxPayload = %d, want %d", opts.MaxPayload, provision.MaxPayload)
			}
			if !opts.JetStream || opts.StoreDir != dir || opts.SyncAlways != tc.syncAlways {
				t.Errorf("JetStream %v, StoreDir %q, SyncAlways %v; want true, %q, %v", opts.JetStream, opts.StoreDir, opts.SyncAlways, dir, tc.syncAlways)
			}
			dr, ok := opts.AccountResolver.(*server.DirAccResolver)
			if !ok {
				t.Fatalf("resolver is a %T, want the full (directory) resolver", opts.AccountResolver)
			}
			// The preloads reach the resolver when a server is built on
			// the options; the resolver then has both accounts on disk.
			srv, err := server.NewServer(opts)
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Shutdown()
			for pub, want := range map[string]string{tr.sysPub: tr.sysJWT, tr.accPub: tr.accJWT} {
				got, err := dr.Fetch(pub)
				if err != nil || got != want {
					t.Errorf("resolver has account %s: %v (same JWT: %v)", pub, err, got == want)
				}
			}
			if _, err := os.Stat(filepath.Join(dir, provision.ResolverDir, tr.accPub+".jwt")); err != nil {
				t.Errorf("the resolver does not keep the account in %s: %v", provision.ResolverDir, err)
			}
		})
	}
}

// TestConfigQuotesPaths: a store folder whose name holds the config
// language's quotes, escapes, braces, a variable reference and a newline
// reaches nats-server unchanged, and adds no key.
func TestConfigQuotesPaths(t *testing.T) {
	tr := newTrust(t)
	dir := filepath.Join(t.TempDir(), "a \"b\" \\c ${X} }\n{ include x; #d")
	opts := parse(t, tr.spec("acme"), dir)
	if opts.StoreDir != dir {
		t.Errorf("StoreDir = %q, want %q", opts.StoreDir, dir)
	}
}

func FuzzQuote(f *testing.F) {
	for _, s := range []string{"", "plain", `"`, `\`, `\x41`, "$VAR", "a\nb: c", "}", "é", "\xff\x00", "eyJ0eXAiOiJKV1QifQ.e30.sig"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := conf.Parse("k: " + provision.QuoteForTest(s) + "\n")
		if err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		if len(m) != 1 || m["k"] != s {
			t.Fatalf("%q parsed as %#v", s, m)
		}
	})
}

func TestConfigErrors(t *testing.T) {
	tr := newTrust(t)
	other := newTrust(t) // another operator
	good := tr.spec("acme")
	for _, tc := range []struct {
		name   string
		edit   func(s *provision.Spec)
		listen string
		store  string
		field  string
		reason string
	}{
		{name: "no tenant", edit: func(s *provision.Spec) { s.Tenant = "" }, field: "Tenant", reason: "required"},
		{name: "upper-case tenant", edit: func(s *provision.Spec) { s.Tenant = "Acme" }, field: "Tenant", reason: "DNS label"},
		{name: "tenant with a slash", edit: func(s *provision.Spec) { s.Tenant = "../etc" }, field: "Tenant", reason: "DNS label"},
		{name: "tenant ending in a dash", edit: func(s *provision.Spec) { s.Tenant = "acme-" }, field: "Tenant", reason: "DNS label"},
		{name: "tenant too long", edit: func(s *provision.Spec) { s.Tenant = strings.Repeat("a", 64) }, field: "Tenant", reason: "DNS label"},
		{name: "no operator JWT", edit: func(s *provision.Spec) { s.OperatorJWT = "" }, field: "OperatorJWT", reason: "required"},
		{name: "operator JWT a file name", edit: func(s *provision.Spec) { s.OperatorJWT = "/etc/passwd" }, field: "OperatorJWT", reason: "not a JWT"},
		{name: "operator JWT is an account's", edit: func(s *provision.Spec) { s.OperatorJWT = tr.accJWT }, field: "OperatorJWT"},
		{name: "no system account", edit: func(s *provision.Spec) { s.SystemAccount = "" }, field: "SystemAccount", reason: "required"},
		{name: "system account not a key", edit: func(s *provision.Spec) { s.SystemAccount = "SYS" }, field: "SystemAccount", reason: "not an account public key"},
		{name: "no system account JWT", edit: func(s *provision.Spec) { s.SystemAccountJWT = "" }, field: "SystemAccountJWT", reason: "required"},
		{name: "no account", edit: func(s *provision.Spec) { s.Account = "" }, field: "Account", reason: "required"},
		{name: "no account JWT", edit: func(s *provision.Spec) { s.AccountJWT = "" }, field: "AccountJWT", reason: "required"},
		{name: "account JWT garbled", edit: func(s *provision.Spec) { s.AccountJWT = "eyJhbGciOi.x.y" }, field: "AccountJWT"},
		{name: "account JWT of another account", edit: func(s *provision.Spec) { s.AccountJWT = tr.sysJWT }, field: "AccountJWT", reason: "claims are for account"},
		{name: "account of another operator", edit: func(s *provision.Spec) { s.Account, s.AccountJWT = other.accPub, other.accJWT }, field: "AccountJWT", reason: "neither the operator"},
		{name: "tenant account is the system account", edit: func(s *provision.Spec) { s.Account, s.AccountJWT = s.SystemAccount, s.SystemAccountJWT }, field: "Account", reason: "system account"},
		{name: "listen without port", listen: "127.0.0.1", field: "listen"},
		{name: "listen on port 0", listen: "127.0.0.1:0", field: "listen", reason: "1-65535"},
		{name: "no store dir", store: "-", field: "storeDir", reason: "required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := good
			if tc.edit != nil {
				tc.edit(&spec)
			}
			listen := "127.0.0.1:4222"
			if tc.listen != "" {
				listen = tc.listen
			}
			store := t.TempDir()
			if tc.store == "-" {
				store = ""
			}
			_, err := provision.Config(spec, listen, "127.0.0.1:8222", store)
			var se *provision.SpecError
			if !errors.As(err, &se) {
				t.Fatalf("err = %v, want a *SpecError", err)
			}
			if se.Field != tc.field || !strings.Contains(se.Reason, tc.reason) {
				t.Errorf("err = %v; want field %s, reason with %q", err, tc.field, tc.reason)
			}
			if !strings.Contains(err.Error(), tc.field) {
				t.Errorf("%q does not name the field %s", err, tc.field)
			}
		})
	}
}

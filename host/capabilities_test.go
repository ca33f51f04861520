package host_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vrsky/vrsky/host"
	"github.com/vrsky/vrsky/host/hosttest"
	"github.com/vrsky/vrsky/platform/blob"
	"github.com/vrsky/vrsky/platform/natsx/natsxtest"
)

func TestNATSCapability(t *testing.T) {
	nc := natsxtest.Start(t)
	sub, err := nc.NC.SubscribeSync("vrsky.>")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := nc.NC.Subscribe("vrsky.acme._app.svc.echo", func(m *nats.Msg) { m.Respond(append([]byte("pong:"), m.Data...)) }); err != nil {
		t.Fatal(err)
	}
	nc.NC.Flush()
	rt := hosttest.Runtime(t, host.Config{})
	p := hosttest.Pool(t, rt, probeSpec(t, false, host.Capabilities{NATS: true}),
		host.PoolConfig{Env: host.Env{Messaging: host.NATSMessaging{NC: nc.NC}}})

	tests := []struct {
		name   string
		in     string
		status host.Status
		errHas string
		out    string
	}{
		{name: "own subject", in: "publish:vrsky.acme._app.orders.audit", status: host.StatusOK},
		{name: "own integration's stream", in: "publish:vrsky.acme.orders.audit", status: host.StatusPermanent, errHas: "denied"},
		{name: "other tenant", in: "publish:vrsky.globex.orders.audit", status: host.StatusPermanent, errHas: "denied"},
		{name: "wildcard", in: "publish:vrsky.acme.>", status: host.StatusPermanent, errHas: "denied"},
		{name: "outside vrsky", in: "publish:$JS.API.STREAM.LIST", status: host.StatusPermanent, errHas: "denied"},
		{name: "tenant prefix trick", in: "publish:vrsky.acmeevil.x", status: host.StatusPermanent, errHas: "denied"},
		{name: "request", in: "request:vrsky.acme._app.svc.echo", status: host.StatusOK, out: "pong:ping"},
		{name: "request other tenant", in: "request:vrsky.globex.svc.echo", status: host.StatusPermanent, errHas: "denied"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := process1(t, p, tc.in, nil)
			if r.Status != tc.status || !strings.Contains(r.Error, tc.errHas) {
				t.Fatalf("got %v %q", r.Status, r.Error)
			}
			if tc.out != "" && outs(r)[0] != tc.out {
				t.Fatalf("out %q", outs(r))
			}
		})
	}
	m, err := sub.NextMsg(5 * time.Second)
	if err != nil || m.Subject != "vrsky.acme._app.orders.audit" || string(m.Data) != "hi" {
		t.Fatalf("published message: %v %+v", err, m)
	}
	for {
		m, err := sub.NextMsg(100 * time.Millisecond)
		if err != nil {
			break
		}
		if strings.HasPrefix(m.Subject, "vrsky.globex") || strings.HasPrefix(m.Subject, "vrsky.acmeevil") {
			t.Fatalf("denied publish reached NATS: %s", m.Subject)
		}
	}
}

func TestKVAndObjectCapabilities(t *testing.T) {
	nc := natsxtest.Start(t)
	ctx := context.Background()
	kv, err := nc.JS.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "state"})
	if err != nil {
		t.Fatal(err)
	}
	store, err := blob.NewNATS(ctx, nc.JS, "objects", 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Put(ctx, "payloads/acme/p1", strings.NewReader(strings.Repeat("z", 300_000))); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Put(ctx, "payloads/globex/p1", strings.NewReader("secret")); err != nil {
		t.Fatal(err)
	}
	rt := hosttest.Runtime(t, host.Config{})
	p := hosttest.Pool(t, rt, probeSpec(t, false, host.Capabilities{KV: true, Objects: true}),
		host.PoolConfig{Env: host.Env{KV: host.NATSKV{KV: kv}, Objects: store}})

	r := process1(t, p, "kv:cursor", nil)
	if r.Status != host.StatusOK || outs(r)[0] != "v-cursor" {
		t.Fatalf("kv: %v %q %q", r.Status, r.Error, outs(r))
	}
	if r := process1(t, p, "kv:..bad", nil); r.Status != host.StatusPermanent || !strings.Contains(r.Error, "invalid") {
		t.Fatalf("bad key: %v %q", r.Status, r.Error)
	}
	r = process1(t, p, "objget:payloads/acme/p1", nil)
	if r.Status != host.StatusOK || len(r.Out[0].Data) != 300_000 {
		t.Fatalf("objget: %v %q", r.Status, r.Error)
	}
	if r := process1(t, p, "objget:payloads/globex/p1", nil); r.Status != host.StatusPermanent || !strings.Contains(r.Error, "denied") {
		t.Fatalf("other tenant's object: %v %q", r.Status, r.Error)
	}
	if r := process1(t, p, "objget:payloads/acme/missing", nil); !strings.Contains(r.Error, "not found") {
		t.Fatalf("missing object: %v %q", r.Status, r.Error)
	}
	if r := process1(t, p, "objput:payloads/acme/o1=abc", nil); r.Status != host.StatusOK {
		t.Fatalf("objput: %v %q", r.Status, r.Error)
	}
	rc, info, err := store.Get(ctx, "payloads/acme/o1")
	if err != nil || info.Size != 9 {
		t.Fatalf("stored object: %v %+v", err, info)
	}
	rc.Close()
}

func TestHTTPCapability(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "probe=%s", r.Header.Get("X-Probe"))
	}))
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	// Loopback is refused by default, even when the manifest names it.
	strict := hosttest.Runtime(t, host.Config{})
	sp := hosttest.Pool(t, strict, probeSpec(t, false, host.Capabilities{HTTPHosts: []string{u.Host}}), host.PoolConfig{})
	if r := process1(t, sp, "http:"+srv.URL+"/x", nil); r.Status != host.StatusPermanent || !strings.Contains(r.Error, "denied") {
		t.Fatalf("loopback without AllowPrivateNetworks: %v %q", r.Status, r.Error)
	}
	rt := hosttest.Runtime(t, host.Config{AllowPrivateNetworks: true})
	p := hosttest.Pool(t, rt, probeSpec(t, false, host.Capabilities{HTTPHosts: []string{u.Host}}), host.PoolConfig{})
	r := process1(t, p, "http:"+srv.URL+"/x", nil)
	if r.Status != host.StatusOK || outs(r)[0] != "200 probe=1" {
		t.Fatalf("allowed host: %v %q %q", r.Status, r.Error, outs(r))
	}
	other := "http://localhost:" + u.Port() + "/x" // same server, undeclared name
	if r := process1(t, p, "http:"+other, nil); r.Status != host.StatusPermanent || !strings.Contains(r.Error, "denied") {
		t.Fatalf("undeclared host: %v %q", r.Status, r.Error)
	}
	if r := process1(t, p, "http:file:///etc/passwd", nil); r.Status != host.StatusPermanent || !strings.Contains(r.Error, "invalid") {
		t.Fatalf("file scheme: %v %q", r.Status, r.Error)
	}
}

func TestHostAllowed(t *testing.T) {
	tests := []struct {
		allowed []string
		url     string
		want    bool
	}{
		{[]string{"api.example.com"}, "https://api.example.com/x", true},
		{[]string{"api.example.com"}, "https://API.example.com:8443/x", true},
		{[]string{"api.example.com:443"}, "https://api.example.com:8443/x", false},
		{[]string{"*.example.com"}, "https://a.b.example.com/", true},
		{[]string{"*.example.com"}, "https://example.com/", false},
		{[]string{"*.example.com"}, "https://evilexample.com/", false},
		{[]string{"api.example.com"}, "https://api.example.com.evil.io/", false},
		{nil, "https://api.example.com/", false},
	}
	for _, tc := range tests {
		u, _ := url.Parse(tc.url)
		if got := host.HostAllowed(tc.allowed, u); got != tc.want {
			t.Errorf("HostAllowed(%v, %s) = %v", tc.allowed, tc.url, got)
		}
	}
}

func TestSubjectAndKeyRules(t *testing.T) {
	subjects := map[string]bool{
		"vrsky.acme.x":        true,
		"vrsky.acme._app.a.b": true,
		"vrsky.acme.a.b.c":    false,
		"vrsky.acme.":         false,
		"vrsky.acme":          false,
		"vrsky.acme..x":       false,
		"vrsky.acme.*":        false,
		"vrsky.acme.a b":      false,
		"vrsky.globex.x":      false,
		"vrsky.acmecorp.x":    false,
		"_INBOX.acme":         false,
	}
	for s, want := range subjects {
		if got := host.SubjectAllowed("acme", s); got != want {
			t.Errorf("SubjectAllowed(acme, %q) = %v", s, got)
		}
	}
	keys := map[string]bool{
		"payloads/acme/1":        true,
		"payloads/acme/a/b.json": true,
		"out/acme/a/b.json":      false,
		"modules/acme/x":         false,
		"modules/sha256/abc":     false,
		"payloads/globex/1":      false,
		"payloads/acme":          false,
		"payloads/acme/../x":     false,
		"payloads/acme//x":       false,
		"/payloads/acme/x":       false,
		"payloads/acme/x y":      false,
	}
	for k, want := range keys {
		if got := host.ObjectKeyAllowed("acme", k); got != want {
			t.Errorf("ObjectKeyAllowed(acme, %q) = %v", k, got)
		}
	}
	// A tenant named like the second segment of a platform prefix does
	// not reach the platform's objects (uploaded modules).
	if host.ObjectKeyAllowed("sha256", "modules/sha256/0123abcd") {
		t.Error("tenant sha256 may use the module store")
	}
}

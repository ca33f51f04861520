package host_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vrsky/vrsky/host"
	"github.com/vrsky/vrsky/host/hosttest"
	"github.com/vrsky/vrsky/platform/natsx/natsxtest"
	vrt "github.com/vrsky/vrsky/runtime"
)

// TestNATSGuestNamespace: a guest of integration acme/orders with
// "nats: true" reaches its tenant's guest namespace, and none of the
// subjects the platform's streams capture (its own integration's, the
// tenant's other integrations', the dead letters), on a real embedded
// server with the platform's streams in place.
func TestNATSGuestNamespace(t *testing.T) {
	nc := natsxtest.Start(t)
	ctx := context.Background()
	// The streams the runtime makes for acme's integrations orders and
	// billing, and acme's dead letters (runtime/pipeline.go).
	streams := map[string]string{
		"VRSKY_acme_orders":  "vrsky.acme.orders.>",
		"VRSKY_acme_billing": "vrsky.acme.billing.>",
		"VRSKY_acme_app":     "vrsky.acme.app.>", // an integration may be named "app"
		"VRSKY_DLQ_acme":     "vrsky.acme.dlq.>",
	}
	for name, subj := range streams {
		if _, err := nc.JS.CreateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: []string{subj}}); err != nil {
			t.Fatalf("stream %s: %v", name, err)
		}
	}
	sub, err := nc.NC.SubscribeSync("vrsky.>")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := nc.NC.Subscribe("vrsky.acme._app.svc.echo", func(m *nats.Msg) { m.Respond(append([]byte("pong:"), m.Data...)) }); err != nil {
		t.Fatal(err)
	}
	if err := nc.NC.Flush(); err != nil {
		t.Fatal(err)
	}
	rt := hosttest.Runtime(t, host.Config{})
	p := hosttest.Pool(t, rt, probeSpec(t, false, host.Capabilities{NATS: true}),
		host.PoolConfig{Tenant: "acme", Integration: "orders", Env: host.Env{Messaging: host.NATSMessaging{NC: nc.NC}}})

	refused := []struct{ name, subject string }{
		{"own integration's input", vrt.SubjectIn("acme", "orders")},
		{"own integration's sink", vrt.SubjectOut("acme", "orders", "http")},
		{"own integration, any subject its stream captures", "vrsky.acme.orders.audit"},
		{"other integration's input", vrt.SubjectIn("acme", "billing")},
		{"other integration's sink", vrt.SubjectOut("acme", "billing", "http")},
		{"own dead letters", vrt.SubjectDLQ("acme", "orders")},
		{"other integration's dead letters", vrt.SubjectDLQ("acme", "billing")},
		{"an integration named app", "vrsky.acme.app.x"},
		{"other tenant's namespace", "vrsky.globex._app.x"},
		{"other tenant", "vrsky.globex.x"},
		{"tenant prefix trick", "vrsky.acmeevil._app.x"},
		{"wildcard", "vrsky.acme._app.>"},
		{"wildcard token", "vrsky.acme._app.*"},
		{"empty token", "vrsky.acme._app..x"},
		{"namespace without a token", "vrsky.acme._app."},
		{"JetStream API", "$JS.API.STREAM.PURGE.VRSKY_acme_orders"},
		{"KV bucket", "$KV.vrsky_step_kv.acme.billing.cursor"},
		{"inbox", "_INBOX.x"},
	}
	for _, tc := range refused {
		for _, verb := range []string{"publish", "request"} {
			t.Run(verb+"/"+tc.name, func(t *testing.T) {
				r := process1(t, p, verb+":"+tc.subject, nil)
				if r.Status != host.StatusPermanent || !strings.Contains(r.Error, "denied") {
					t.Fatalf("%s %s: %v %q, want denied", verb, tc.subject, r.Status, r.Error)
				}
			})
		}
	}
	accepted := []string{
		"vrsky.acme._app.audit",
		"vrsky.acme._app.orders.in", // anything under the namespace
		"vrsky.acme.audit",          // one token after the tenant, as v1 allowed
	}
	for _, s := range accepted {
		t.Run("publish/"+s, func(t *testing.T) {
			if r := process1(t, p, "publish:"+s, nil); r.Status != host.StatusOK {
				t.Fatalf("publish %s: %v %q", s, r.Status, r.Error)
			}
		})
	}
	t.Run("request in the namespace", func(t *testing.T) {
		if r := process1(t, p, "request:vrsky.acme._app.svc.echo", nil); r.Status != host.StatusOK || outs(r)[0] != "pong:ping" {
			t.Fatalf("request: %v %q %q", r.Status, r.Error, outs(r))
		}
	})

	// What reached the server: the accepted publishes and the request,
	// in order, and nothing else (the host publishes on nc's connection,
	// so after a flush every message it sent is in sub's queue).
	if err := nc.NC.Flush(); err != nil {
		t.Fatal(err)
	}
	want := append(append([]string{}, accepted...), "vrsky.acme._app.svc.echo")
	for _, w := range want {
		m, err := sub.NextMsg(5 * time.Second)
		if err != nil || m.Subject != w {
			t.Fatalf("next message on vrsky.>: %v %v, want %s", err, m, w)
		}
	}
	if n, _, _ := sub.Pending(); n != 0 {
		m, _ := sub.NextMsg(time.Second)
		t.Fatalf("%d more messages reached the server, the first on %s", n, m.Subject)
	}
	// No stream stored anything from the guest: one message of our own,
	// acknowledged, is the only one in each (a stream stores in order).
	for name, subj := range streams {
		sentinel := strings.TrimSuffix(subj, ">") + "sentinel"
		if _, err := nc.JS.Publish(ctx, sentinel, nil); err != nil {
			t.Fatal(err)
		}
		s, err := nc.JS.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if info, err := s.Info(ctx); err != nil || info.State.Msgs != 1 {
			t.Errorf("stream %s: %v, %+v: the guest's messages reached it", name, err, info.State)
		}
	}
}

// TestSubjectAllowedNamespace is SubjectAllowed's rules as a table.
func TestSubjectAllowedNamespace(t *testing.T) {
	tests := []struct {
		subject string
		want    bool
	}{
		{"vrsky.acme._app.x", true},
		{"vrsky.acme._app.a.b.c", true},
		{"vrsky.acme.x", true},
		{"vrsky.acme._app", true},
		{"vrsky.acme.orders.in", false},
		{"vrsky.acme.orders.out.http", false},
		{"vrsky.acme.dlq.orders", false},
		{"vrsky.acme.a.b.c", false},
		{"vrsky.acme._app.", false},
		{"vrsky.acme._app..x", false},
		{"vrsky.acme._app.a b", false},
		{"vrsky.acme._app.x>", false},
		{"vrsky.acme.", false},
		{"vrsky.acme", false},
		{"vrsky.globex._app.x", false},
		{"vrsky.acmecorp._app.x", false},
		{"_INBOX.acme", false},
	}
	for _, tc := range tests {
		t.Run(tc.subject, func(t *testing.T) {
			if got := host.SubjectAllowed("acme", tc.subject); got != tc.want {
				t.Fatalf("SubjectAllowed(acme, %q) = %v, want %v", tc.subject, got, tc.want)
			}
		})
	}
	if host.SubjectAllowed("", "vrsky.._app.x") {
		t.Fatal("an empty tenant allowed a subject")
	}
}

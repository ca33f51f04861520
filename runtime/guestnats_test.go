package runtime_test

// Wasm isolation (issue 13): the NATS host functions of a tenant's Wasm
// steps run as a user of the tenant's own account (tenancy's guest
// connection), so what a module publishes reaches its tenant's
// subscribers and nobody else's, and a subject of another tenant is
// refused before anything leaves the host.

import (
	"context"
	"encoding/binary"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/vrsky/vrsky/abi"
	"github.com/vrsky/vrsky/host"
	"github.com/vrsky/vrsky/host/wasmcheck/wasmchecktest"
	"github.com/vrsky/vrsky/runtime"
	"github.com/vrsky/vrsky/runtime/runtimetest"
)

// guestPayload is what the publisher modules publish.
const guestPayload = "hello from a wasm step"

// publisher is a step that, for message 0 of each batch, calls
// nats_publish(subject, guestPayload) and emits the 4 bytes of the code
// it got back (little-endian), so the sink sees what the guest saw.
func publisher(t *testing.T, name, subject string) runtime.Connector {
	t.Helper()
	const codeAt, subjAt, dataAt = 0, 1024, 2048
	var b []byte
	// input(0, 0, 0): select message 0 (its payload is not copied).
	b = wasmchecktest.I32Const(b, 0)
	b = wasmchecktest.I32Const(b, 0)
	b = wasmchecktest.I32Const(b, 0)
	b = append(call(b, 0), opDrop)
	// mem[codeAt] = nats_publish(subject, payload)
	b = wasmchecktest.I32Const(b, codeAt)
	b = wasmchecktest.I32Const(b, subjAt)
	b = wasmchecktest.I32Const(b, int32(len(subject)))
	b = wasmchecktest.I32Const(b, dataAt)
	b = wasmchecktest.I32Const(b, int32(len(guestPayload)))
	b = call(b, 1)
	b = append(b, 0x36, 2, 0) // i32.store align 2 offset 0
	// emit(codeAt, 4)
	b = wasmchecktest.I32Const(b, codeAt)
	b = wasmchecktest.I32Const(b, 4)
	b = append(call(b, 2), opDrop)
	b = wasmchecktest.I32Const(b, 0)
	return rawStep(t, name, rawWasm{
		imports: []rawImport{{"input", 3}, {"nats_publish", 4}, {"emit", 2}},
		pages:   1,
		data:    []rawData{{subjAt, []byte(subject)}, {dataAt, []byte(guestPayload)}},
		process: b,
	}, host.Capabilities{NATS: true}, host.Env{}, host.Limits{}, nil)
}

func codeName(code int32) string {
	if code == 0 {
		return "OK"
	}
	return abi.ErrorName(code)
}

// TestGuestNATSStaysInTheTenantsAccount: acme's Wasm steps publish with
// nats_publish. On globex's subject the guest gets ERR_DENIED and no
// subscriber of globex's account hears anything; on acme's own _app
// subject, a subscriber of acme's account gets the message and neither the
// platform account nor globex's does.
//
// Checked against the feature: with runtime/pipeline.go handing Wasm
// steps the platform connection instead of the tenant's guest one
// (GuestNATS returning e.conn.NC), the "own subject" case fails (acme's
// subscriber hears nothing, the platform's hears the message); with
// host.SubjectAllowed accepting any "vrsky." subject, the "another
// tenant's subject" case fails (the guest sees 0, not ERR_DENIED).
func TestGuestNATSStaysInTheTenantsAccount(t *testing.T) {
	tests := []struct {
		name    string
		subject string
		code    int32 // what nats_publish returns to the guest
		heardBy string
	}{
		{"another tenant's subject", "vrsky.globex._app.x", abi.ErrDenied, ""},
		{"its own subject", "vrsky.acme._app.x", 0, "acme"},
	}
	var conns []runtime.Connector
	for i, tc := range tests {
		conns = append(conns, publisher(t, fmt.Sprintf("pub-%d", i), tc.subject))
	}
	h := runtimetest.Start(t, conns, manual)
	g := h.As(t, "globex")
	ctx := context.Background()

	// Subscribers on every subject the modules use, in every account: the
	// platform's (h.Conn), acme's and globex's own.
	accounts := map[string]*nats.Conn{"platform": h.Conn.NC}
	for _, tenant := range []string{"acme", "globex"} {
		c, err := h.Engine.Tenants().Conn(ctx, tenant)
		if err != nil {
			t.Fatalf("%s's NATS: %v", tenant, err)
		}
		accounts[tenant] = c.NC
	}
	type listener struct {
		nc  *nats.Conn
		sub *nats.Subscription
	}
	heard := map[string]map[string]listener{} // subject → account → listener
	for _, tc := range tests {
		heard[tc.subject] = map[string]listener{}
		for acct, nc := range accounts {
			sub, err := nc.SubscribeSync(tc.subject)
			if err != nil {
				t.Fatalf("subscribe %s as %s: %v", tc.subject, acct, err)
			}
			t.Cleanup(func() { _ = sub.Unsubscribe() })
			if err := nc.Flush(); err != nil {
				t.Fatal(err)
			}
			heard[tc.subject][acct] = listener{nc, sub}
		}
	}

	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := h.Sinks.New(nil)
			name := fmt.Sprintf("pub-%d", i)
			h.Create(t, fmt.Sprintf(`name: %s
source: {connector: test-source}
steps: [{connector: %s}]
sinks: [{name: api, connector: test-sink, config: %s}]
`, name, name, rec.Config()))
			id := h.Emit(t, name, `{}`)
			runtimetest.WaitFor(t, 15*time.Second, "the step's report delivered", func() bool { _, ok := rec.Delivered()[id]; return ok })
			got := []byte(rec.Delivered()[id])
			if len(got) != 4 {
				t.Fatalf("the step emitted %q, want the 4 bytes of nats_publish's result", got)
			}
			if code := int32(binary.LittleEndian.Uint32(got)); code != tc.code {
				t.Fatalf("nats_publish(%q) returned %d to acme's guest, want %d (%s)", tc.subject, code, tc.code, codeName(tc.code))
			}

			if tc.heardBy != "" {
				switch m, err := heard[tc.subject][tc.heardBy].sub.NextMsg(10 * time.Second); {
				case err != nil:
					t.Errorf("%s's subscriber on %s heard nothing: %v", tc.heardBy, tc.subject, err)
				case string(m.Data) != guestPayload:
					t.Errorf("%s's subscriber got %q", tc.heardBy, m.Data)
				}
			}
			// The publish is behind us (the step reported after it, and
			// the expected subscriber has it): a round trip to the server
			// on every other connection delivers anything it queued for
			// them before.
			for acct, l := range heard[tc.subject] {
				if acct == tc.heardBy {
					continue
				}
				if err := l.nc.Flush(); err != nil {
					t.Fatal(err)
				}
				if m, err := l.sub.NextMsg(100 * time.Millisecond); err == nil {
					t.Errorf("a subscriber of the %s account on %s got %q from acme's guest", acct, tc.subject, m.Data)
				}
			}
		})
	}
	// globex's own integrations are untouched meanwhile.
	rec := h.Sinks.New(nil)
	g.Create(t, specYAML("vault", "vault", sinkYAML("api", rec, "")))
	id := g.Emit(t, "vault", `{"order":1}`)
	runtimetest.WaitFor(t, 15*time.Second, "globex's message delivered", func() bool { return rec.Delivered()[id] == `{"order":1}` })
}

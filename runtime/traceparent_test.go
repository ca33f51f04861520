package runtime_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/vrsky/vrsky/runtime"
	"github.com/vrsky/vrsky/runtime/runtimetest"
)

// TestTraceparentOnTheWire: in the pipeline's streams a message's trace
// context travels as Vrsky-Traceparent, so that nats-server does not read
// every message's headers into a map for its own message tracing; sinks
// (and steps) see Traceparent, as it came. A message stored with a plain
// Traceparent (by an older version, or replayed from a dead letter) is
// delivered with it too.
func TestTraceparentOnTheWire(t *testing.T) {
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	for _, tc := range []struct{ name, steps string }{
		{"without steps", ""},
		{"through a step", "steps: [{name: gate, connector: gate}]\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := runtimetest.Start(t, []runtime.Connector{gate}, manual)
			hold := make(chan struct{})
			sink := h.Sinks.New(func(_ string, attempt int) error {
				if attempt == 1 {
					<-hold // the copy stays in the stream, unacknowledged
				}
				return nil
			})
			h.Create(t, specYAML("wire", "wire", sinkYAML("api", sink, ""))+tc.steps)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			msg := &runtime.Message{ID: "m1", Header: runtime.Header{runtime.HeaderTraceparent: {tp}}, Data: []byte(`{"a":1}`)}
			if err := h.Emitter(t, "wire").Emit(ctx, msg); err != nil {
				t.Fatal(err)
			}
			if got := msg.Header.Get(runtime.HeaderTraceparent); got != tp {
				t.Errorf("the emitted message's own Traceparent became %q", got)
			}

			js := h.TenantConn(t).JS
			stream, err := js.Stream(ctx, "VRSKY_acme_wire")
			if err != nil {
				t.Fatal(err)
			}
			var stored *nats.Header
			runtimetest.WaitFor(t, 10*time.Second, "the sink's copy stored", func() bool {
				m, err := stream.GetLastMsgForSubject(ctx, runtime.SubjectOut("acme", "wire", "api"))
				if err == nil {
					stored = &m.Header
				}
				return err == nil
			})
			if got := stored.Get("Vrsky-Traceparent"); got != tp {
				t.Errorf("stored Vrsky-Traceparent = %q, want %q", got, tp)
			}
			if got := stored.Values("Traceparent"); len(got) != 0 {
				t.Errorf("stored copy also carries Traceparent %q", got)
			}
			close(hold)
			runtimetest.WaitFor(t, 10*time.Second, "delivery", func() bool { _, ok := sink.Delivery("m1"); return ok })
			d, _ := sink.Delivery("m1")
			if got := d.Header.Get(runtime.HeaderTraceparent); got != tp {
				t.Errorf("the sink saw Traceparent %q, want %q", got, tp)
			}
			if got, ok := d.Header["Vrsky-Traceparent"]; ok {
				t.Errorf("the sink saw the wire name too: %q", got)
			}

			// The plain form, as an older version stored it.
			old := nats.NewMsg(runtime.SubjectOut("acme", "wire", "api"))
			old.Header.Set(runtime.HeaderMsgID, "m2")
			old.Header.Set(runtime.HeaderNatsMsgID, "m2:api")
			old.Header.Set(runtime.HeaderTraceparent, tp)
			old.Data = []byte(`{"a":2}`)
			if _, err := js.PublishMsg(ctx, old); err != nil {
				t.Fatal(err)
			}
			runtimetest.WaitFor(t, 10*time.Second, "the old form's delivery", func() bool { _, ok := sink.Delivery("m2"); return ok })
			if d, _ := sink.Delivery("m2"); d.Header.Get(runtime.HeaderTraceparent) != tp {
				t.Errorf("the old form was delivered with Traceparent %q, want %q", d.Header.Get(runtime.HeaderTraceparent), tp)
			}
		})
	}
}

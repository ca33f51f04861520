package runtime_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/vrsky/vrsky/runtime"
	"github.com/vrsky/vrsky/runtime/runtimetest"
)

func TestBackpressureRefusesAndLosesNothing(t *testing.T) {
	h := runtimetest.Start(t, nil, manual, func(c *runtime.Config) { c.StreamMaxMsgs = 20 })
	rec, turnOn := switchable(h)
	h.Create(t, withAttempts(specYAML("bp", "bp", sinkYAML("api", rec, "")), 100))
	emit := h.Emitter(t, "bp")

	var accepted []string
	refused := false
	deadline := time.Now().Add(10 * time.Second)
	for !refused && time.Now().Before(deadline) {
		msg := &runtime.Message{Data: []byte(`{"n":1}`)}
		switch err := emit.Emit(context.Background(), msg); {
		case err == nil:
			accepted = append(accepted, msg.ID)
		case errors.Is(err, runtime.ErrBackpressure):
			refused = true // the webhook answers 429 (builtin/http)
		default:
			t.Fatalf("emit failed other than with ErrBackpressure: %v", err)
		}
	}
	if !refused {
		t.Fatal("the source was never pushed back on a full stream")
	}
	if len(accepted) > 20 {
		t.Fatalf("accepted %d messages into a stream bounded at 20", len(accepted))
	}
	turnOn()
	runtimetest.WaitFor(t, 20*time.Second, "every accepted message delivered", func() bool { return len(rec.Delivered()) == len(accepted) })
	for _, id := range accepted {
		if _, ok := rec.Delivered()[id]; !ok {
			t.Fatalf("accepted message %s not delivered", id)
		}
	}
	// Drained: the source is accepted again.
	runtimetest.WaitFor(t, 5*time.Second, "emits accepted again", func() bool {
		return emit.Emit(context.Background(), &runtime.Message{Data: []byte(`{}`)}) == nil
	})
}

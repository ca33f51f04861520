package runtime_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vrsky/vrsky/platform/natsx/natsxtest"
	"github.com/vrsky/vrsky/runtime"
)

func TestBackpressureAnswers429AndLosesNothing(t *testing.T) {
	h := newHarness(t, natsxtest.Start(t), func(c *runtime.Config) { c.StreamMaxMsgs = 20 })
	rec, turnOn := switchable(t)
	h.create(t, strings.Replace(specYAML("bp", "bp", sinkYAML("api", rec.srv.URL, "")), "max_attempts: 3", "max_attempts: 100", 1))

	var accepted []string
	var refused *runtime.HookResponse
	deadline := time.Now().Add(10 * time.Second)
	for refused == nil && time.Now().Before(deadline) {
		resp, err := h.eng.Hooks().Serve(context.Background(), "acme", "bp", &runtime.HookRequest{
			Method: "POST", Header: runtime.Header{}, Body: []byte(`{"n":1}`),
		})
		if err != nil {
			t.Fatalf("hook error instead of 429: %v", err)
		}
		switch resp.Status {
		case http.StatusAccepted:
			accepted = append(accepted, resp.Header.Get(runtime.HeaderMsgID))
		case http.StatusTooManyRequests:
			refused = resp
		default:
			t.Fatalf("hook answered %d: %s", resp.Status, resp.Body)
		}
	}
	if refused == nil {
		t.Fatal("the webhook never pushed back on a full stream")
	}
	if refused.Header.Get("Retry-After") == "" {
		t.Fatal("429 without Retry-After")
	}
	if len(accepted) > 20 {
		t.Fatalf("accepted %d messages into a stream bounded at 20", len(accepted))
	}
	turnOn()
	waitFor(t, 20*time.Second, "every accepted message delivered", func() bool { return len(rec.delivered()) == len(accepted) })
	for _, id := range accepted {
		if _, ok := rec.delivered()[id]; !ok {
			t.Fatalf("accepted message %s not delivered", id)
		}
	}
	// Drained: the webhook accepts again.
	waitFor(t, 5*time.Second, "the webhook to accept again", func() bool {
		resp, err := h.eng.Hooks().Serve(context.Background(), "acme", "bp", &runtime.HookRequest{Method: "POST", Header: runtime.Header{}, Body: []byte(`{}`)})
		return err == nil && resp.Status == http.StatusAccepted
	})
}

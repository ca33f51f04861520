package runtime_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vrsky/vrsky/platform/natsx/natsxtest"
	"github.com/vrsky/vrsky/platform/store"
	"github.com/vrsky/vrsky/runtime"
	"github.com/vrsky/vrsky/runtime/runtimetest"
)

func TestEndToEndDelivery(t *testing.T) {
	h := runtimetest.Start(t, nil, manual)
	rec := h.Sinks.New(nil)
	h.Create(t, specYAML("orders", "orders", sinkYAML("api", rec, "")))

	want := map[string]string{}
	for i := range 50 {
		body := fmt.Sprintf(`{"order_id":%d}`, i)
		want[h.Emit(t, "orders", body)] = body
	}
	runtimetest.WaitFor(t, 10*time.Second, "50 deliveries", func() bool { return len(rec.Delivered()) == 50 })
	got := rec.Delivered()
	for id, body := range want {
		if got[id] != body {
			t.Errorf("message %s: sink got %q, want %q", id, got[id], body)
		}
	}
}

func TestSinksAreIndependent(t *testing.T) {
	h := runtimetest.Start(t, nil, manual)
	up := h.Sinks.New(nil)
	down := h.Sinks.New(failWith(http.StatusServiceUnavailable))
	h.Create(t, specYAML("fanout", "fanout", sinkYAML("up", up, ""), sinkYAML("down", down, "")))

	ids := make([]string, 20)
	for i := range ids {
		ids[i] = h.Emit(t, "fanout", `{"n":1}`)
	}
	runtimetest.WaitFor(t, 10*time.Second, "the healthy sink to get all 20", func() bool { return len(up.Delivered()) == 20 })
	if n := len(down.Delivered()); n != 0 {
		t.Fatalf("failing sink recorded %d successes", n)
	}
	if down.Attempts(ids[0]) == 0 {
		t.Fatal("the failing sink was never tried")
	}
}

func TestWhenRouting(t *testing.T) {
	h := runtimetest.Start(t, nil, manual)
	all := h.Sinks.New(nil)
	big := h.Sinks.New(nil)
	h.Create(t, specYAML("route", "route", sinkYAML("all", all, ""), sinkYAML("big", big, "total > 1000")))

	small := h.Emit(t, "route", `{"total": 5}`)
	large := h.Emit(t, "route", `{"total": 5000}`)
	runtimetest.WaitFor(t, 10*time.Second, "both messages at the unconditional sink", func() bool { return len(all.Delivered()) == 2 })
	runtimetest.WaitFor(t, 10*time.Second, "the large order at the routed sink", func() bool { return len(big.Delivered()) == 1 })
	got := big.Delivered()
	if _, ok := got[large]; !ok {
		t.Fatalf("routed sink got %v, want only %s", got, large)
	}
	if _, ok := got[small]; ok {
		t.Fatalf("routed sink got the small order %s", small)
	}
}

func TestRetryThenSuccess(t *testing.T) {
	h := runtimetest.Start(t, nil, manual)
	rec := h.Sinks.New(func(_ string, attempt int) error {
		if attempt <= 2 {
			return httpStatus(http.StatusBadGateway)
		}
		return nil
	})
	h.Create(t, specYAML("flaky", "flaky", sinkYAML("api", rec, "")))
	id := h.Emit(t, "flaky", `{"x":1}`)
	runtimetest.WaitFor(t, 10*time.Second, "delivery after two failures", func() bool { return len(rec.Delivered()) == 1 })
	if n := rec.Attempts(id); n != 3 {
		t.Fatalf("attempts = %d, want 3", n)
	}
	ts := rec.Times(id)
	first, second := ts[1].Sub(ts[0]), ts[2].Sub(ts[1])
	if first < 40*time.Millisecond || second < 80*time.Millisecond {
		t.Fatalf("backoff delays %v, %v; want ≥ 50ms then ≥ 100ms (exponential)", first, second)
	}
	tr := h.WaitTrace(t, "flaky", id, runtime.StatusDelivered)
	var failed []int
	for _, s := range tr.Stages {
		if s.Stage == "sink:api" && s.Status == runtime.StatusFailed {
			failed = append(failed, s.Attempt)
		}
	}
	if fmt.Sprint(failed) != "[1 2]" {
		t.Fatalf("tracked failed attempts %v, want [1 2]; trace %+v", failed, tr)
	}
}

func TestTraceUnknownAndFiltered(t *testing.T) {
	h := runtimetest.Start(t, nil, manual)
	rec := h.Sinks.New(nil)
	h.Create(t, specYAML("tr", "tr", sinkYAML("big", rec, "total > 10")))
	if _, err := h.Engine.Trace(context.Background(), "acme", "tr", "no-such-id"); !errors.Is(err, runtime.ErrUnknownMessage) {
		t.Fatalf("unknown id: err = %v, want ErrUnknownMessage", err)
	}
	small := h.Emit(t, "tr", `{"total": 1}`)
	big := h.Emit(t, "tr", `{"total": 100}`)
	h.WaitTrace(t, "tr", small, runtime.StatusFiltered)
	tr := h.WaitTrace(t, "tr", big, runtime.StatusDelivered)
	// Routed at emit (no steps), one record stands for accepted and
	// route; the trace still shows both, accepted first.
	if len(tr.Stages) < 3 || tr.Stages[0].Stage != "accepted" || tr.Stages[1].Stage != "route" || tr.Stages[0].At.IsZero() {
		t.Fatalf("trace stages %+v, want accepted, route, sink", tr.Stages)
	}
	// Another tenant's view of the same id knows nothing.
	if _, err := h.Engine.Trace(context.Background(), "other", "tr", big); !errors.Is(err, runtime.ErrUnknownMessage) {
		t.Fatalf("other tenant: err = %v, want ErrUnknownMessage", err)
	}
}

func TestDeadLetterAfterLastAttempt(t *testing.T) {
	for _, tc := range []struct {
		name     string
		status   int
		attempts int
	}{
		{"retryable 503 uses all attempts", http.StatusServiceUnavailable, 3},
		{"permanent 400 skips retries", http.StatusBadRequest, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := runtimetest.Start(t, nil, manual)
			rec := h.Sinks.New(failWith(tc.status))
			h.Create(t, specYAML("doomed", "doomed", sinkYAML("api", rec, "")))
			id := h.Emit(t, "doomed", `{"x":1}`)
			dl := h.WaitDeadLetters(t, "doomed", 1)[0]
			if got := rec.Attempts(id); got != tc.attempts {
				t.Fatalf("sink saw %d attempts, want %d", got, tc.attempts)
			}
			if dl.MessageID != id || dl.Stage != "sink:api" || dl.Attempts != tc.attempts || !strings.Contains(dl.Error, strconv.Itoa(tc.status)) {
				t.Fatalf("dead letter = %+v", dl)
			}
			full, err := h.Engine.GetDeadLetter(context.Background(), "acme", "doomed", dl.ID)
			if err != nil || string(full.Payload) != `{"x":1}` {
				t.Fatalf("dead letter payload = %q (%v)", full.Payload, err)
			}
			var log []struct {
				Attempt int
				Error   string
			}
			if err := json.Unmarshal(dl.AttemptLog, &log); err != nil || len(log) != tc.attempts {
				t.Fatalf("attempt log %s (err %v), want %d entries", dl.AttemptLog, err, tc.attempts)
			}
			for i, a := range log {
				if a.Attempt != i+1 || !strings.Contains(a.Error, strconv.Itoa(tc.status)) {
					t.Fatalf("attempt log entry %d = %+v", i, a)
				}
			}
			h.WaitTrace(t, "doomed", id, runtime.StatusDeadLettered)
		})
	}
}

func TestRestartResumesPendingWork(t *testing.T) {
	conn := natsxtest.StartIn(t, t.TempDir())
	h := runtimetest.StartOn(t, conn, nil, manual)
	rec, turnOn := switchable(h)
	spec := h.Create(t, withAttempts(specYAML("resume", "resume", sinkYAML("api", rec, "")), 100))
	ids := []string{h.Emit(t, "resume", `{"a":1}`), h.Emit(t, "resume", `{"a":2}`)}
	runtimetest.WaitFor(t, 5*time.Second, "a first failed attempt", func() bool { return rec.Attempts(ids[1]) > 0 })
	h.Stop()
	if st := h.Engine.Status(context.Background(), "acme", spec); st.State != store.StateStopped {
		t.Fatalf("after stop: state %s", st.State)
	}

	turnOn()
	// A new engine on the same NATS and store restarts what was running.
	h2 := h.AddNode(t, nil, manual)
	runtimetest.WaitFor(t, 10*time.Second, "pending messages delivered after restart", func() bool { return len(rec.Delivered()) == 2 })
	runtimetest.WaitFor(t, 10*time.Second, "state running after restart", func() bool {
		return h2.Engine.Status(context.Background(), "acme", spec).State == store.StateRunning
	})
}

func TestDeadLetterReplay(t *testing.T) {
	h := runtimetest.Start(t, nil, manual)
	rec, turnOn := switchable(h)
	spec := h.Create(t, specYAML("replay", "replay", sinkYAML("api", rec, "")))
	ids := []string{h.Emit(t, "replay", `{"n":1}`), h.Emit(t, "replay", `{"n":2}`), h.Emit(t, "replay", `{"n":3}`)}
	h.WaitDeadLetters(t, "replay", 3)
	ctx := context.Background()

	page, next, err := h.Engine.ListDeadLetters(ctx, "acme", "replay", runtime.DLQFilter{Limit: 2})
	if err != nil || len(page) != 2 || next == "" {
		t.Fatalf("first page: %d entries, next %q, err %v", len(page), next, err)
	}
	if a, b := page[0].ID, page[1].ID; len(a) < len(b) || (len(a) == len(b) && a <= b) {
		t.Fatalf("not newest first: ids %s, %s", a, b)
	}
	rest, next2, err := h.Engine.ListDeadLetters(ctx, "acme", "replay", runtime.DLQFilter{Before: next})
	if err != nil || len(rest) != 1 || next2 != "" {
		t.Fatalf("second page: %+v, next %q, err %v", rest, next2, err)
	}
	listed := map[string]bool{page[0].MessageID: true, page[1].MessageID: true, rest[0].MessageID: true}
	for _, id := range ids {
		if !listed[id] {
			t.Fatalf("message %s missing from the pages", id)
		}
	}
	if other, _, _ := h.Engine.ListDeadLetters(ctx, "acme", "replay", runtime.DLQFilter{Stage: "sink:other"}); len(other) != 0 {
		t.Fatalf("stage filter kept %d entries", len(other))
	}
	if _, err := h.Engine.GetDeadLetter(ctx, "other-tenant", "replay", page[0].ID); !errors.Is(err, runtime.ErrNoDeadLetter) {
		t.Fatalf("another tenant read a dead letter: %v", err)
	}
	bodies := map[string]string{ids[0]: `{"n":1}`, ids[1]: `{"n":2}`, ids[2]: `{"n":3}`}
	full, err := h.Engine.GetDeadLetter(ctx, "acme", "replay", page[0].ID)
	if err != nil || string(full.Payload) != bodies[page[0].MessageID] || full.Attempts != 3 || full.Stage != "sink:api" {
		t.Fatalf("get: %+v, err %v", full, err)
	}

	// Delete one, then the sink recovers and the others are replayed, twice.
	if err := h.Engine.DeleteDeadLetter(ctx, "acme", "replay", rest[0].ID); err != nil {
		t.Fatal(err)
	}
	turnOn()
	if err := h.Engine.ReplayDeadLetter(ctx, "acme", spec, page[0].ID); err != nil {
		t.Fatal(err)
	}
	if err := h.Engine.ReplayDeadLetter(ctx, "acme", spec, page[0].ID); !errors.Is(err, runtime.ErrNoDeadLetter) {
		t.Fatalf("second replay of one entry: err = %v, want ErrNoDeadLetter", err)
	}
	n, err := h.Engine.ReplayDeadLetters(ctx, "acme", spec, "")
	if err != nil || n != 1 {
		t.Fatalf("replay all: %d, %v; want 1", n, err)
	}
	runtimetest.WaitFor(t, 10*time.Second, "two replayed deliveries", func() bool { return len(rec.Delivered()) == 2 })
	got := rec.Delivered()
	if _, ok := got[rest[0].MessageID]; ok {
		t.Fatal("the deleted dead letter was delivered")
	}
	if left, _, _ := h.Engine.ListDeadLetters(ctx, "acme", "replay", runtime.DLQFilter{}); len(left) != 0 {
		t.Fatalf("%d dead letters left after replay", len(left))
	}
	h.WaitTrace(t, "replay", page[0].MessageID, runtime.StatusDelivered)
}

// A source that emits a message again under its id (a client retrying
// with the same idempotency key) stores it once: the id is the dedup key.
func TestSameIDStoresOnce(t *testing.T) {
	h := runtimetest.Start(t, nil, manual)
	rec := h.Sinks.New(nil)
	h.Create(t, specYAML("idem", "idem", sinkYAML("api", rec, "")))
	emit := h.Emitter(t, "idem")
	for _, m := range []struct{ id, body string }{{"order-42", `{"n":1}`}, {"order-42", `{"n":1}`}, {"order-43", `{"n":2}`}} {
		msg := &runtime.Message{ID: m.id, Data: []byte(m.body)}
		if err := emit.Emit(context.Background(), msg); err != nil || msg.ID != m.id {
			t.Fatalf("emit %s: %v (id %q)", m.id, err, msg.ID)
		}
	}
	runtimetest.WaitFor(t, 10*time.Second, "two distinct deliveries", func() bool { return len(rec.Delivered()) == 2 })
	// Without steps each message is stored once, on the sink's subject.
	s, err := h.TenantConn(t).JS.Stream(context.Background(), "VRSKY_acme_idem")
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.State.LastSeq != 2 {
		t.Fatalf("the stream stored %d messages, want 2", info.State.LastSeq)
	}
	if n := rec.Attempts("order-42"); n != 1 {
		t.Fatalf("a message emitted twice was delivered %d times, want once", n)
	}
	if rec.Attempts("order-43") != 1 {
		t.Fatal("the other message was not delivered")
	}
}

// A source is bound (its webhook path claimed) from the moment its
// integration reports running, and a second integration of the tenant on
// the same key fails to start, at once and saying why, while the first
// keeps its key.
func TestSourceBoundBeforeRunning(t *testing.T) {
	h := runtimetest.Start(t, nil, manual)
	rec := h.Sinks.New(nil)
	h.Create(t, specYAML("first", "shared", sinkYAML("api", rec, "")))
	id := h.Emit(t, "shared", `{"n":1}`) // no wait between running and the first emit
	spec, in := h.Put(t, specYAML("second", "shared", sinkYAML("api", rec, "")))
	h.Engine.Apply(in)
	st := h.Engine.Status(context.Background(), "acme", spec)
	if st.State != runtime.StateError || !strings.Contains(st.Error, "already bound") {
		t.Fatalf("second integration on the same key: %+v, want state error naming the conflict", st)
	}
	runtimetest.WaitFor(t, 10*time.Second, "the first message", func() bool { return rec.Delivered()[id] != "" })
	second := h.Emit(t, "shared", `{"n":2}`) // still the first integration's
	h.WaitTrace(t, "first", second, runtime.StatusDelivered)
}

// TestReplayThatFailsAgainIsDeadLetteredAgain: a replayed dead letter
// whose sink still fails goes back to the DLQ, even within the DLQ's
// 2-minute dedup window: it is a new input, not a redelivery (the dead
// letter's dedup id names the failed input's stream sequence).
func TestReplayThatFailsAgainIsDeadLetteredAgain(t *testing.T) {
	h := runtimetest.Start(t, nil, manual)
	rec, _ := switchable(h) // off: every delivery fails
	spec := h.Create(t, withAttempts(specYAML("again", "again", sinkYAML("api", rec, "")), 1))
	id := h.Emit(t, "again", `{"n":1}`)
	h.WaitDeadLetters(t, "again", 1)
	ctx := context.Background()
	for round := 1; round <= 2; round++ {
		first := h.DeadLetters(t, "again")
		if len(first) != 1 || first[0].MessageID != id {
			t.Fatalf("round %d: dead letters %+v, want message %s once", round, first, id)
		}
		if err := h.Engine.ReplayDeadLetter(ctx, "acme", spec, first[0].ID); err != nil {
			t.Fatalf("round %d: replay: %v", round, err)
		}
		runtimetest.WaitFor(t, 10*time.Second, "the replayed message dead-lettered again", func() bool {
			dls := h.DeadLetters(t, "again")
			return len(dls) == 1 && dls[0].ID != first[0].ID
		})
	}
	if got := rec.Attempts(id); got != 3 {
		t.Errorf("the sink saw %d attempts, want 3 (the first and two replays)", got)
	}
}

package schedule_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/vrsky/vrsky/builtin/schedule"
	"github.com/vrsky/vrsky/runtime"
	"github.com/vrsky/vrsky/runtime/runtimetest"
)

// ticks is a sink that records each delivered tick, duplicates included.
type ticks struct {
	mu  sync.Mutex
	got []time.Time
}

func (k *ticks) connector() runtime.Connector {
	return runtime.Connector{
		Name: "ticks", Version: "1.0.0", Kind: runtime.KindSink,
		NewSink: func(json.RawMessage, runtime.Env) (runtime.Sink, error) { return k, nil },
	}
}

func (k *ticks) Deliver(_ context.Context, m *runtime.Message) error {
	var p struct {
		Tick time.Time `json:"tick"`
	}
	if err := json.Unmarshal(m.Data, &p); err != nil {
		return runtime.Permanent(err)
	}
	k.mu.Lock()
	k.got = append(k.got, p.Tick)
	k.mu.Unlock()
	return nil
}

func (k *ticks) Close() error { return nil }

// in returns the deliveries of ticks in [from, to).
func (k *ticks) in(from, to time.Time) []time.Time {
	k.mu.Lock()
	defer k.mu.Unlock()
	var out []time.Time
	for _, t := range k.got {
		if !t.Before(from) && t.Before(to) {
			out = append(out, t)
		}
	}
	return out
}

const everySecond = `name: beat
source: {connector: schedule, config: {cron: "* * * * * *"}}
sinks: [{name: out, connector: ticks}]
`

// assertEachSecondOnce checks that every second in [from, to) was
// delivered exactly once.
func assertEachSecondOnce(t *testing.T, k *ticks, from, to time.Time) {
	t.Helper()
	got := k.in(from, to)
	seen := map[int64]int{}
	for _, tk := range got {
		seen[tk.Unix()]++
	}
	want := int(to.Sub(from) / time.Second)
	if len(got) != want {
		t.Errorf("%d deliveries for the %d ticks in [%s, %s)", len(got), want, from.Format(time.TimeOnly), to.Format(time.TimeOnly))
	}
	for s := from; s.Before(to); s = s.Add(time.Second) {
		if n := seen[s.Unix()]; n != 1 {
			t.Errorf("tick %s delivered %d times, want 1", s.Format(time.TimeOnly), n)
		}
	}
}

func TestTwoNodesEmitEachTickOnce(t *testing.T) {
	k := &ticks{}
	conns := []runtime.Connector{schedule.Source, k.connector()}
	ttl := func(c *runtime.Config) { c.LeaseTTL = 3 * time.Second }
	a := runtimetest.Start(t, conns, ttl)
	b := a.AddNode(t, conns, ttl)
	spec := a.Create(t, everySecond)
	leaderAndStandby(t, spec, a, b)
	from := time.Now().Truncate(time.Second).Add(2 * time.Second)
	to := from.Add(10 * time.Second)
	waitPast(t, k, to, 30*time.Second, "the ticks of 10 seconds")
	assertEachSecondOnce(t, k, from, to)
}

func TestFailoverAndRestartMissNoTick(t *testing.T) {
	k := &ticks{}
	conns := []runtime.Connector{schedule.Source, k.connector()}
	ttl := func(c *runtime.Config) { c.LeaseTTL = 3 * time.Second }
	a := runtimetest.Start(t, conns, ttl)
	b := a.AddNode(t, conns, ttl)
	spec := a.Create(t, everySecond)
	a, b = leaderAndStandby(t, spec, a, b)
	from := time.Now().Truncate(time.Second).Add(2 * time.Second)
	runtimetest.WaitFor(t, 20*time.Second, "a first tick", func() bool { return len(k.in(from, from.Add(time.Hour))) > 0 })

	// The leader shuts down: the standby takes over and catches up on
	// the ticks that fell in between.
	a.Stop()
	runtimetest.WaitFor(t, 20*time.Second, "the standby to take the source over", func() bool {
		return !b.Engine.Status(context.Background(), "acme", spec).SourceStandby
	})
	// The survivor restarts the integration (a new revision or a crash):
	// it resumes from the last tick it recorded.
	b.Engine.Stop("acme", spec.Name)
	// Two ticks fall due while it is stopped: the restart catches up on
	// them.
	due := time.Now().Truncate(time.Second).Add(2 * time.Second)
	runtimetest.WaitFor(t, 10*time.Second, "two ticks to fall due while the integration is stopped", func() bool {
		return !time.Now().Before(due)
	})
	in, err := b.Store.GetIntegration(context.Background(), "acme", spec.Name)
	if err != nil {
		t.Fatal(err)
	}
	b.Engine.Apply(in)
	to := time.Now().Truncate(time.Second).Add(3 * time.Second)
	waitPast(t, k, to, 30*time.Second, "ticks after the restart")
	assertEachSecondOnce(t, k, from, to)
}

// waitPast waits until the ticks before to are in and settled: until the
// tick a second after to is delivered. A duplicate of an earlier tick (the
// other node's, or a second emit of a caught-up one) would be published at
// or near its own tick, a second or more before that one, so the wait is
// tied to the pipeline's progress rather than to a fixed time.
func waitPast(t *testing.T, k *ticks, to time.Time, timeout time.Duration, what string) {
	t.Helper()
	after := to.Add(time.Second)
	runtimetest.WaitFor(t, timeout, what, func() bool { return len(k.in(after, after.Add(time.Hour))) > 0 })
}

// leaderAndStandby waits until both nodes run the integration, one of
// them the source, and returns the leader first.
func leaderAndStandby(t *testing.T, spec *runtime.Spec, a, b *runtimetest.Harness) (leader, standby *runtimetest.Harness) {
	t.Helper()
	runtimetest.WaitFor(t, 20*time.Second, "one node to run the source, the other on standby", func() bool {
		sa, sb := a.Engine.Status(context.Background(), "acme", spec), b.Engine.Status(context.Background(), "acme", spec)
		if sa.State != "running" || sb.State != "running" || sa.SourceStandby == sb.SourceStandby {
			return false
		}
		if sa.SourceStandby {
			leader, standby = b, a
		} else {
			leader, standby = a, b
		}
		return true
	})
	return leader, standby
}

func TestCheckRefusesBadConfig(t *testing.T) {
	for _, tc := range []struct {
		name, cfg, field string
	}{
		{"bad cron", `{"cron":"61 * * * *"}`, "cron"},
		{"too many fields", `{"cron":"* * * * * * *"}`, "cron"},
		{"unknown zone", `{"cron":"@hourly","timezone":"Mars/Olympus"}`, "timezone"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := schedule.Source.Check(context.Background(), json.RawMessage(tc.cfg), runtime.Env{})
			var se *runtime.SpecError
			if !errors.As(err, &se) || se.Field != tc.field {
				t.Fatalf("Check(%s) = %v, want a SpecError on %q", tc.cfg, err, tc.field)
			}
		})
	}
	if err := schedule.Source.Check(context.Background(), json.RawMessage(`{"cron":"0 9 * * MON-FRI","timezone":"Europe/Berlin"}`), runtime.Env{}); err != nil {
		t.Fatalf("a valid config was refused: %v", err)
	}
}

func TestPayloadAndTimeZone(t *testing.T) {
	em := &runtimetest.Emitter{}
	src, err := schedule.New(json.RawMessage(`{"cron":"* * * * * *","timezone":"Asia/Tokyo","payload":{"job":"report"}}`), runtime.Env{Tenant: "acme", Integration: "r"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, em) }()
	runtimetest.WaitFor(t, 10*time.Second, "two ticks", func() bool { return len(em.Messages()) >= 2 })
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	msgs := em.Messages()
	for _, m := range msgs[:2] {
		var p struct {
			Job  string `json:"job"`
			Tick string `json:"tick"`
		}
		if err := json.Unmarshal(m.Data, &p); err != nil {
			t.Fatal(err)
		}
		tick, err := time.Parse(time.RFC3339Nano, p.Tick)
		if err != nil || p.Job != "report" {
			t.Fatalf("payload %s", m.Data)
		}
		if _, off := tick.Zone(); off != 9*3600 {
			t.Fatalf("tick %s is not in Tokyo time", p.Tick)
		}
		if m.ID != schedule.TickID("acme", "r", tick) {
			t.Fatalf("message id %s is not the tick's id", m.ID)
		}
	}
}

// Package connectortest is the acceptance suite every connector runs, as
// Conduit's SDK has: RunSink and RunSource check a connector against what
// the engine relies on (a valid, documented config schema; a bad config
// refused naming the field; start, stop and restart; what it is given
// delivered or emitted; retryable and permanent failures told apart; no
// goroutine left behind), with the real destination the case provides.
// It imports package connector only, not the engine.
package connectortest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/vrsky/vrsky/platform/schema"
	"github.com/vrsky/vrsky/runtime/connector"
)

// BadConfig is a config the connector must refuse, and the field the
// refusal must name (SpecError.Field ends with it, e.g. "url").
type BadConfig struct {
	Config json.RawMessage
	Field  string
}

// SinkCase describes one sink connector under test.
type SinkCase struct {
	Connector connector.Connector
	// Config is a valid config that delivers to the case's destination.
	Config json.RawMessage
	// Env is handed to the constructor; Logger defaults to a discarding one.
	Env connector.Env
	// Bad configs, each refused by the schema or the constructor.
	Bad []BadConfig
	// Messages to deliver; one JSON object when nil.
	Messages []*connector.Message
	// Delivered returns the IDs (or any stable keys, one per message)
	// the destination holds, to compare with Key of each message.
	Delivered func(t *testing.T) []string
	// Key is what Delivered reports for msg; msg.ID when nil.
	Key func(msg *connector.Message) string
	// Fail, when set, makes the destination fail from now on: with an
	// error retrying cannot fix when permanent, with a passing one
	// otherwise. Restore, when set, undoes it.
	Fail    func(t *testing.T, permanent bool)
	Restore func(t *testing.T)
}

// SourceCase describes one source connector under test.
type SourceCase struct {
	Connector connector.Connector
	// Config is a valid config.
	Config json.RawMessage
	// Env is handed to the constructor; State defaults to an in-memory
	// one (kept across the restart), Logger to a discarding one.
	Env connector.Env
	Bad []BadConfig
	// Produce makes the source's origin produce n messages (write files,
	// call the webhook…); it is called while the source runs. Nil when
	// the source produces on its own (a schedule).
	Produce func(t *testing.T, round, n int)
	// N is how many messages each round expects at least; 1 when 0.
	N int
	// Timeout bounds each round; 10s when 0.
	Timeout time.Duration
}

// RunSink runs the acceptance suite on a sink.
func RunSink(t *testing.T, c SinkCase) {
	t.Helper()
	checkMeta(t, c.Connector, connector.KindSink, c.Bad, func(cfg json.RawMessage) error {
		s, err := c.Connector.NewSink(cfg, env(c.Env))
		if err == nil {
			_ = s.Close()
		}
		return err
	})
	if t.Failed() {
		return
	}
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	ctx := t.Context()
	msgs := c.Messages
	if msgs == nil {
		msgs = []*connector.Message{{ID: connector.NewID(), Header: connector.Header{"Content-Type": {"application/json"}}, Data: []byte(`{"n":1}`)}}
	}
	key := c.Key
	if key == nil {
		key = func(m *connector.Message) string { return m.ID }
	}
	t.Run("deliver", func(t *testing.T) {
		for round := range 2 { // start, stop, start again
			s, err := c.Connector.NewSink(c.Config, env(c.Env))
			if err != nil {
				t.Fatalf("round %d: NewSink: %v", round, err)
			}
			for _, m := range msgs {
				if err := s.Deliver(ctx, clone(m, round)); err != nil {
					t.Errorf("round %d: Deliver(%s): %v", round, m.ID, err)
				}
			}
			if err := s.Close(); err != nil {
				t.Errorf("round %d: Close: %v", round, err)
			}
		}
		got := c.Delivered(t)
		for round := range 2 {
			for _, m := range msgs {
				if k := key(clone(m, round)); !slices.Contains(got, k) {
					t.Errorf("the destination lacks %q (round %d); it has %q", k, round, got)
				}
			}
		}
	})
	if bs, ok := any(mustSink(t, c)).(connector.BatchSink); ok {
		t.Run("batch", func(t *testing.T) {
			defer bs.Close()
			batch := make([]*connector.Message, len(msgs))
			for i, m := range msgs {
				batch[i] = clone(m, 7)
			}
			for i, err := range bs.DeliverBatch(ctx, batch) {
				if err != nil {
					t.Errorf("DeliverBatch: message %d: %v", i, err)
				}
			}
			got := c.Delivered(t)
			for _, m := range batch {
				if !slices.Contains(got, key(m)) {
					t.Errorf("the destination lacks %q after DeliverBatch", key(m))
				}
			}
		})
	}
	if c.Fail != nil {
		for _, permanent := range []bool{false, true} {
			t.Run(fmt.Sprintf("fail/permanent=%v", permanent), func(t *testing.T) {
				s := mustSink(t, c)
				defer s.Close()
				c.Fail(t, permanent)
				if c.Restore != nil {
					defer c.Restore(t)
				}
				err := s.Deliver(ctx, clone(msgs[0], 9))
				if err == nil {
					t.Fatal("Deliver to a failing destination returned nil")
				}
				if connector.IsPermanent(err) != permanent {
					t.Errorf("IsPermanent(%v) = %v, want %v", err, !permanent, permanent)
				}
			})
		}
	}
}

func mustSink(t *testing.T, c SinkCase) connector.Sink {
	s, err := c.Connector.NewSink(c.Config, env(c.Env))
	if err != nil {
		t.Fatalf("NewSink: %v", err)
	}
	return s
}

// RunSource runs the acceptance suite on a source: two rounds of run
// and stop, with the same State.
func RunSource(t *testing.T, c SourceCase) {
	t.Helper()
	checkMeta(t, c.Connector, connector.KindSource, c.Bad, func(cfg json.RawMessage) error {
		_, err := c.Connector.NewSource(cfg, env(c.Env))
		return err
	})
	if t.Failed() {
		return
	}
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	e := env(c.Env)
	if e.State == nil {
		e.State = NewState()
	}
	n, timeout := max(c.N, 1), c.Timeout
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	for round := range 2 {
		src, err := c.Connector.NewSource(c.Config, e)
		if err != nil {
			t.Fatalf("round %d: NewSource: %v", round, err)
		}
		em := &Emitter{}
		ctx, cancel := context.WithCancel(t.Context())
		release := func() {}
		if b, ok := src.(connector.Binder); ok {
			if release, err = b.Bind(em); err != nil {
				cancel()
				t.Fatalf("round %d: Bind: %v", round, err)
			}
		}
		done := make(chan error, 1)
		go func() { done <- src.Run(ctx, em) }()
		if c.Produce != nil {
			c.Produce(t, round, n)
		}
		deadline := time.Now().Add(timeout)
		for em.Len() < n && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("round %d: Run returned %v after its context ended, want nil", round, err)
			}
		case <-time.After(timeout):
			t.Fatalf("round %d: Run did not return %v after its context ended", round, timeout)
		}
		release() // once Run has returned, as the pipeline does
		if got := em.Len(); got < n {
			t.Fatalf("round %d: the source emitted %d messages, want at least %d", round, got, n)
		}
		for _, m := range em.Messages() {
			if m.Data == nil && m.Stream == nil {
				t.Errorf("round %d: message %s has neither Data nor Stream", round, m.ID)
			}
		}
	}
}

// checkMeta checks the catalogue entry, the schema and the bad configs.
func checkMeta(t *testing.T, c connector.Connector, kind connector.Kind, bad []BadConfig, build func(json.RawMessage) error) {
	t.Helper()
	t.Run("schema", func(t *testing.T) {
		if c.Name == "" || c.Version == "" || c.Description == "" {
			t.Errorf("name %q, version %q, description %q: none may be empty", c.Name, c.Version, c.Description)
		}
		if c.Kind != kind {
			t.Errorf("kind %q, want %q", c.Kind, kind)
		}
		if _, err := schema.Compile(c.Name, c.ConfigSchema); err != nil {
			t.Fatalf("config schema: %v", err)
		}
		var doc any
		if err := json.Unmarshal(c.ConfigSchema, &doc); err != nil {
			t.Fatal(err)
		}
		var missing []string
		undescribed(doc, "", &missing)
		sort.Strings(missing)
		if len(missing) > 0 {
			t.Errorf("config properties without a description: %s", strings.Join(missing, ", "))
		}
	})
	t.Run("bad-config", func(t *testing.T) {
		s, err := schema.Compile(c.Name, c.ConfigSchema)
		if err != nil {
			t.Skip("no schema")
		}
		for _, b := range bad {
			var doc any
			dec := json.NewDecoder(strings.NewReader(string(b.Config)))
			dec.UseNumber()
			if err := dec.Decode(&doc); err != nil {
				t.Fatalf("%s: not JSON: %v", b.Config, err)
			}
			var fe *connector.SpecError
			if v := s.Validate(doc, "config"); v != nil {
				fe = v
			} else if err := build(b.Config); err == nil {
				t.Errorf("%s: accepted", b.Config)
				continue
			} else if !errors.As(err, &fe) {
				t.Errorf("%s: refused with %v, not a *SpecError naming %q", b.Config, err, b.Field)
				continue
			}
			if f := strings.TrimPrefix(fe.Field, "config."); f != b.Field && !strings.HasPrefix(f, b.Field+".") {
				t.Errorf("%s: refused naming %q (%s), want %q", b.Config, fe.Field, fe.Reason, b.Field)
			}
		}
	})
}

// undescribed appends the path of every property without a description.
func undescribed(s any, path string, out *[]string) {
	m, ok := s.(map[string]any)
	if !ok {
		return
	}
	if props, ok := m["properties"].(map[string]any); ok {
		for k, v := range props {
			p := strings.TrimPrefix(path+"."+k, ".")
			if pm, ok := v.(map[string]any); ok {
				if _, ok := pm["description"]; !ok {
					*out = append(*out, p)
				}
			}
			undescribed(v, p, out)
		}
	}
	for _, k := range []string{"items", "additionalProperties"} {
		undescribed(m[k], path+"[]", out)
	}
	for _, k := range []string{"oneOf", "anyOf", "allOf"} {
		if xs, ok := m[k].([]any); ok {
			for _, x := range xs {
				undescribed(x, path, out)
			}
		}
	}
	if defs, ok := m["$defs"].(map[string]any); ok {
		for k, v := range defs {
			undescribed(v, "#"+k, out)
		}
	}
}

// clone copies m for round r with an ID of its own.
func clone(m *connector.Message, r int) *connector.Message {
	c := *m
	c.ID = fmt.Sprintf("%s-%d", m.ID, r)
	if m.Header != nil {
		c.Header = m.Header.Clone()
	}
	return &c
}

func env(e connector.Env) connector.Env {
	if e.Logger == nil {
		e.Logger = discard
	}
	return e
}

// Emitter records what a source emits; EmitWait answers passed.
type Emitter struct {
	mu   sync.Mutex
	msgs []*connector.Message
}

func (e *Emitter) Emit(_ context.Context, msg *connector.Message) error {
	if msg.ID == "" {
		msg.ID = connector.NewID()
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.msgs = append(e.msgs, msg)
	return nil
}

func (e *Emitter) EmitBatch(ctx context.Context, msgs []*connector.Message) error {
	for _, m := range msgs {
		if err := e.Emit(ctx, m); err != nil {
			return err
		}
	}
	return nil
}

func (e *Emitter) EmitWait(ctx context.Context, msg *connector.Message) (connector.Outcome, error) {
	return connector.Outcome{Status: connector.StatusPassed}, e.Emit(ctx, msg)
}

// Len is how many messages were emitted.
func (e *Emitter) Len() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.msgs)
}

// Messages returns the messages emitted so far.
func (e *Emitter) Messages() []*connector.Message {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.msgs)
}

// State is an in-memory connector.State.
type State struct {
	mu sync.Mutex
	m  map[string][]byte
}

// NewState returns an empty State.
func NewState() *State { return &State{m: map[string][]byte{}} }

func (s *State) Get(_ context.Context, key string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[key]
	if !ok {
		return nil, connector.ErrNoState
	}
	return slices.Clone(v), nil
}

func (s *State) Put(_ context.Context, key string, value []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[key] = slices.Clone(value)
	return nil
}

func (s *State) Delete(_ context.Context, key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, key)
	return nil
}

func (s *State) Keys(context.Context) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ks []string
	for k := range s.m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks, nil
}

var discard = slog.New(slog.DiscardHandler)

package runtimetest

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/vrsky/vrsky/runtime"
)

// Names of the in-memory connectors every Harness's catalogue holds.
const (
	// SourceConnector is the test source: {connector: test-source}, with
	// an optional config {key: <key>} (the integration's name by default).
	SourceConnector = "test-source"
	// SinkConnector is the recording sink: {connector: test-sink, config:
	// {recorder: <id>}}, the id of a Sink made by Sinks.New.
	SinkConnector = "test-sink"
)

// Source is the test source of one engine (one Harness node). Each
// integration whose source it is binds its Emitter before it counts as
// running (runtime.Binder), under its tenant and its key, as a webhook
// binds its path: a key is one integration's at a time, and a second
// integration of the tenant on the same key fails to start. The test
// emits through the bound Emitter (Harness.Emitter, Harness.Emit).
type Source struct {
	mu    sync.Mutex
	bound map[string]runtime.Emitter // by tenant/key
}

func newSource() *Source { return &Source{bound: map[string]runtime.Emitter{}} }

func sourceKey(tenant, key string) string { return tenant + "/" + key }

// Emitter returns the Emitter bound under tenant and key, if one is.
func (s *Source) Emitter(tenant, key string) (runtime.Emitter, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	em, ok := s.bound[sourceKey(tenant, key)]
	return em, ok
}

// Bound reports whether an integration of tenant holds key: it runs its
// source on this node.
func (s *Source) Bound(tenant, key string) bool {
	_, ok := s.Emitter(tenant, key)
	return ok
}

func (s *Source) connector() runtime.Connector {
	return runtime.Connector{
		Name: SourceConnector, Version: "1.0.0", Kind: runtime.KindSource,
		Description:  "In-memory source for tests: the test emits through it.",
		ConfigSchema: json.RawMessage(`{"type":"object","properties":{"key":{"type":"string","minLength":1}},"additionalProperties":false}`),
		NewSource: func(cfg json.RawMessage, env runtime.Env) (runtime.Source, error) {
			var c struct{ Key string }
			if err := json.Unmarshal(cfg, &c); err != nil {
				return nil, err
			}
			if c.Key == "" {
				c.Key = env.Integration
			}
			return &boundSource{s: s, key: sourceKey(env.Tenant, c.Key)}, nil
		},
	}
}

// boundSource is one integration's test source.
type boundSource struct {
	s   *Source
	key string
}

var _ runtime.Binder = (*boundSource)(nil)

// Bind implements runtime.Binder.
func (b *boundSource) Bind(emit runtime.Emitter) (release func(), err error) {
	b.s.mu.Lock()
	defer b.s.mu.Unlock()
	if _, taken := b.s.bound[b.key]; taken {
		return nil, fmt.Errorf("test-source key %s is already bound by another integration", b.key)
	}
	b.s.bound[b.key] = emit
	var once sync.Once
	return func() {
		once.Do(func() {
			b.s.mu.Lock()
			defer b.s.mu.Unlock()
			delete(b.s.bound, b.key)
		})
	}, nil
}

// Run implements runtime.Source: the test emits, Run only waits.
func (b *boundSource) Run(ctx context.Context, _ runtime.Emitter) error {
	<-ctx.Done()
	return nil
}

// Sinks makes recording sinks. One Sinks serves every node of a Harness,
// so a Sink records what any node delivered to it.
type Sinks struct {
	mu   sync.Mutex
	byID map[string]*Sink
}

func newSinks() *Sinks { return &Sinks{byID: map[string]*Sink{}} }

// New returns a Sink that records what it is given. fail, when not nil,
// decides each attempt (counting from 1 per message id): a non-nil error
// fails it, and Permanent errors are not retried. The payload is read
// first, as a real sink reads it (a claim-checked one from the object
// store, its digest checked): an error reading it fails the attempt.
func (s *Sinks) New(fail func(id string, attempt int) error) *Sink {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := &Sink{
		id: fmt.Sprintf("s%d", len(s.byID)+1), fail: fail,
		got: map[string]Delivery{}, times: map[string][]time.Time{},
	}
	s.byID[r.id] = r
	return r
}

func (s *Sinks) connector() runtime.Connector {
	return runtime.Connector{
		Name: SinkConnector, Version: "1.0.0", Kind: runtime.KindSink,
		Description:  "In-memory sink for tests: records what it delivers.",
		ConfigSchema: json.RawMessage(`{"type":"object","properties":{"recorder":{"type":"string"}},"required":["recorder"],"additionalProperties":false}`),
		NewSink: func(cfg json.RawMessage, _ runtime.Env) (runtime.Sink, error) {
			var c struct{ Recorder string }
			if err := json.Unmarshal(cfg, &c); err != nil {
				return nil, err
			}
			s.mu.Lock()
			defer s.mu.Unlock()
			r, ok := s.byID[c.Recorder]
			if !ok {
				return nil, &runtime.SpecError{Field: "recorder", Reason: fmt.Sprintf("no recorder %q", c.Recorder)}
			}
			return r, nil
		},
	}
}

// Sink is a recording sink (see Sinks.New). Name it in a spec with
// Config.
type Sink struct {
	id   string
	fail func(id string, attempt int) error

	mu    sync.Mutex
	got   map[string]Delivery    // by message id, the last delivery
	times map[string][]time.Time // every attempt, by message id
}

// Delivery is what a Sink was given for one message.
type Delivery struct {
	Body   []byte
	Header runtime.Header
	// Claimed: the payload came by reference (claim-checked) and was
	// read from the object store.
	Claimed bool
}

var _ runtime.Sink = (*Sink)(nil)

// Config is the sink's config in a spec (a JSON object, so YAML too).
func (r *Sink) Config() string { return fmt.Sprintf(`{"recorder":%q}`, r.id) }

// Deliver implements runtime.Sink.
func (r *Sink) Deliver(ctx context.Context, m *runtime.Message) error {
	r.mu.Lock()
	r.times[m.ID] = append(r.times[m.ID], time.Now())
	attempt := len(r.times[m.ID])
	r.mu.Unlock()
	body, err := m.Bytes(ctx)
	if err != nil {
		return err
	}
	if r.fail != nil {
		if err := r.fail(m.ID, attempt); err != nil {
			return err
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got[m.ID] = Delivery{Body: body, Header: m.Header.Clone(), Claimed: m.Claimed()}
	return nil
}

// Close implements runtime.Sink.
func (r *Sink) Close() error { return nil }

// Delivered returns the payload of every message delivered, by message id.
func (r *Sink) Delivered() map[string]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]string, len(r.got))
	for id, d := range r.got {
		out[id] = string(d.Body)
	}
	return out
}

// Delivery returns what was delivered of message id.
func (r *Sink) Delivery(id string) (Delivery, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	d, ok := r.got[id]
	return d, ok
}

// Attempts counts the attempts to deliver message id, failed ones too.
func (r *Sink) Attempts(id string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.times[id])
}

// Times returns when each attempt to deliver message id began.
func (r *Sink) Times(id string) []time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]time.Time(nil), r.times[id]...)
}

package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vrsky/vrsky/internal/jsonenc"
	"github.com/vrsky/vrsky/platform/natsx"

	"github.com/vrsky/vrsky/runtime/connector"
)

// Message tracking: where each message of the last 7 days is. Each stage
// a message passes makes one small record; the records of one message are
// written together to the KV bucket vrsky_msgs as a JSON array, keyed
// <tenant>.<integration>.<id>.g<writer><seq>, so a lookup lists
// <tenant>.<integration>.<id>.> and merges what it finds.
//
// The hot path only does a non-blocking channel send; if the buffer is
// full the record is dropped and counted, never the message. One
// goroutine holds a message's records for up to trackHold, waiting for
// its delivery, and writes them as one entry: a message that is accepted,
// routed and delivered within that time costs one KV write, not three. A
// failure, a dead letter, a filter or a replay is written at once (with
// whatever is held for that message), so retries and the DLQ never wait
// for tracking; what comes for that message within trackHold after it is
// written at once too. A crash loses the held records of messages in flight;
// JetStream redelivers those messages, and their delivery is recorded
// then.

const (
	trackBucket = "vrsky_msgs"
	trackBuffer = 1 << 16
	// trackHold is how long accepted and passed records wait for their
	// message's delivery before they are written alone.
	trackHold = 500 * time.Millisecond
)

// Stage record statuses.
const (
	StatusAccepted     = "accepted"
	StatusPassed       = connector.StatusPassed
	StatusFiltered     = connector.StatusFiltered
	StatusDelivered    = "delivered"
	StatusFailed       = connector.StatusFailed
	StatusDeadLettered = "dead_lettered"
	StatusReplayed     = "replayed"
	// StatusPartial is a MessageTrace state only: some sinks have the
	// message, and it is dead-lettered for others.
	StatusPartial = "partial"
)

// track records rec, at stage, for message id.
func (p *pipeline) track(id string, stage Stage, rec StageRecord) {
	p.trackAt(id, stage.String(), rec)
}

// trackAt is track with the stage's wire form made once by the caller.
func (p *pipeline) trackAt(id, stage string, rec StageRecord) {
	rec.Stage = stage
	p.e.tracker.record(p.tenant, p.spec.Name, id, rec)
}

// StageRecord is one stage's outcome for one message.
type StageRecord struct {
	Stage   string    `json:"stage"`
	Status  string    `json:"status"`
	At      time.Time `json:"at"`
	Attempt int       `json:"attempt,omitempty"`
	Error   string    `json:"error,omitempty"`
	Outputs []string  `json:"outputs,omitempty"`
	// TraceID is the message's trace id, on the records that start a
	// message's life (accepted, route, replayed); Trace lifts it into
	// MessageTrace.TraceID.
	TraceID string `json:"trace_id,omitempty"`
}

type tracker struct {
	js      jetstream.JetStream
	kv      jetstream.KeyValue
	ch      chan trackEvent
	done    chan struct{}
	dropped atomic.Uint64
	// writer tells this tracker's keys from other nodes' (and from an
	// earlier run's), so that no two entries share a key.
	writer string
}

type trackEvent struct {
	key string // trackKey of the message
	rec StageRecord
}

func newTracker(ctx context.Context, js jetstream.JetStream, replicas int) (*tracker, error) {
	kv, err := natsx.Ensure(ctx, func(ctx context.Context) (jetstream.KeyValue, error) {
		return js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket:      trackBucket,
			Description: "VRSky message tracking",
			TTL:         DLQRetention,
			History:     1,
			Storage:     jetstream.FileStorage,
			Replicas:    replicas,
		})
	})
	if err != nil {
		return nil, fmt.Errorf("tracking bucket: %w", err)
	}
	t := &tracker{
		js: js, kv: kv,
		ch:     make(chan trackEvent, trackBuffer),
		done:   make(chan struct{}),
		writer: strconv.FormatUint(rand.Uint64()&(1<<40-1), 36),
	}
	go t.run()
	return t, nil
}

// trackKey escapes a message id for use as KV key tokens.
func trackKey(tenant, integration, id string) string {
	return tenant + "." + integration + "." + strings.ReplaceAll(id, ".", "_")
}

// record queues rec for message id; it never blocks.
func (t *tracker) record(tenant, integration, id string, rec StageRecord) {
	if t == nil {
		return
	}
	if rec.At.IsZero() {
		rec.At = time.Now().UTC()
	}
	select {
	case t.ch <- trackEvent{key: trackKey(tenant, integration, id), rec: rec}:
	default:
		t.dropped.Add(1)
	}
}

// heldRecords are the records of one message not written yet.
type heldRecords struct {
	recs  []StageRecord
	since time.Time
	// outputs are the sinks the route record sent the message to;
	// delivered counts those that reported delivery.
	outputs   []string
	delivered int
}

// complete reports whether nothing more is expected for the message: it
// was routed and every sink has it.
func (h *heldRecords) complete() bool {
	return h.outputs != nil && h.delivered >= len(h.outputs)
}

// run writes records with plain core publishes to the bucket's subjects:
// JetStream stores them all the same, and the writer spends nothing on
// acknowledgements. A record the server refuses is lost unnoticed, which
// tracking (best effort, never the message) accepts for its cost.
func (t *tracker) run() {
	defer close(t.done)
	w := trackWriter{nc: t.js.Conn(), writer: t.writer, dropped: &t.dropped, held: map[string]*heldRecords{}}
	tick := time.NewTicker(trackHold / 4)
	defer tick.Stop()
	for {
		select {
		case ev, ok := <-t.ch:
			if !ok {
				w.flushOlder(time.Time{}) // everything
				return
			}
			w.add(ev)
		case now := <-tick.C:
			w.flushOlder(now.Add(-trackHold))
		}
	}
}

// trackWriter is run's state: the held records, oldest first in order.
type trackWriter struct {
	nc interface {
		Publish(subj string, data []byte) error
	}
	writer  string
	seq     uint64
	dropped *atomic.Uint64
	held    map[string]*heldRecords
	order   []heldKey // oldest first
	// early are the messages written before they were complete (a
	// failure, a dead letter), with when: a record of theirs that comes
	// within trackHold is written at once too. Their route record can
	// come after the sink's failure (it is made once the publish is
	// acknowledged, the sink may fail first), and a trace read then must
	// not lack it for the hold.
	early map[string]time.Time
	subj  []byte
	buf   []byte
}

type heldKey struct {
	key  string
	held *heldRecords
}

func (w *trackWriter) add(ev trackEvent) {
	h := w.held[ev.key]
	if h == nil {
		h = &heldRecords{since: time.Now()}
		w.held[ev.key] = h
		w.order = append(w.order, heldKey{ev.key, h})
	}
	h.recs = append(h.recs, ev.rec)
	if _, ok := w.early[ev.key]; ok {
		w.write(ev.key, h)
		return
	}
	switch ev.rec.Status {
	case StatusDelivered:
		h.delivered++
		if !h.complete() {
			return
		}
	case StatusAccepted, StatusPassed:
		if ev.rec.Stage != stageRoute.String() {
			return
		}
		h.outputs = ev.rec.Outputs
		if len(h.outputs) == 0 || !h.complete() {
			return
		}
	}
	if !h.complete() { // a failure, a dead letter, a filter, a replay
		if w.early == nil {
			w.early = map[string]time.Time{}
		}
		w.early[ev.key] = time.Now()
	}
	w.write(ev.key, h)
}

// flushOlder writes the records held since before cutoff (all of them for
// a zero cutoff).
func (w *trackWriter) flushOlder(cutoff time.Time) {
	for k, at := range w.early {
		if cutoff.IsZero() || at.Before(cutoff) {
			delete(w.early, k)
		}
	}
	n := 0
	for _, o := range w.order {
		if w.held[o.key] != o.held {
			n++ // written already
			continue
		}
		if !cutoff.IsZero() && !o.held.since.Before(cutoff) {
			break
		}
		w.write(o.key, o.held)
		n++
	}
	w.order = w.order[:copy(w.order, w.order[n:])]
}

func (w *trackWriter) write(key string, h *heldRecords) {
	delete(w.held, key)
	w.seq++
	w.subj = append(w.subj[:0], "$KV."+trackBucket+"."...)
	w.subj = append(w.subj, key...)
	w.subj = append(w.subj, ".g"...)
	w.subj = append(w.subj, w.writer...)
	w.subj = append(w.subj, '-')
	w.subj = strconv.AppendUint(w.subj, w.seq, 36)
	w.buf = append(w.buf[:0], '[')
	for i := range h.recs {
		if i > 0 {
			w.buf = append(w.buf, ',')
		}
		w.buf = h.recs[i].appendJSON(w.buf)
	}
	w.buf = append(w.buf, ']')
	if err := w.nc.Publish(string(w.subj), w.buf); err != nil {
		w.dropped.Add(uint64(len(h.recs)))
	}
}

// appendJSON encodes r as json.Marshal would, without reflection: it runs
// for every stage of every message.
func (r *StageRecord) appendJSON(b []byte) []byte {
	b = append(b, `{"stage":`...)
	b = jsonenc.AppendString(b, r.Stage)
	b = append(b, `,"status":`...)
	b = jsonenc.AppendString(b, r.Status)
	b = append(b, `,"at":"`...)
	b = r.At.AppendFormat(b, time.RFC3339Nano)
	b = append(b, '"')
	if r.Attempt != 0 {
		b = append(b, `,"attempt":`...)
		b = strconv.AppendInt(b, int64(r.Attempt), 10)
	}
	if r.Error != "" {
		b = append(b, `,"error":`...)
		b = jsonenc.AppendString(b, r.Error)
	}
	if len(r.Outputs) > 0 {
		b = append(b, `,"outputs":[`...)
		for i, o := range r.Outputs {
			if i > 0 {
				b = append(b, ',')
			}
			b = jsonenc.AppendString(b, o)
		}
		b = append(b, ']')
	}
	if r.TraceID != "" {
		b = append(b, `,"trace_id":`...)
		b = jsonenc.AppendString(b, r.TraceID)
	}
	return append(b, '}')
}

// close flushes queued records (bounded) and stops the writer.
func (t *tracker) close() {
	if t == nil {
		return
	}
	close(t.ch)
	<-t.done
	_ = t.js.Conn().FlushTimeout(5 * time.Second)
}

// MessageTrace is everything known about one message.
type MessageTrace struct {
	ID          string `json:"id"`
	Integration string `json:"integration"`
	// State sums it up: accepted (in flight), delivered (every sink that
	// took it has it), filtered, dead_lettered, or partial.
	State string `json:"state"`
	// TraceID is the W3C trace id the message carries in its traceparent
	// header (32 hex digits): the trace its spans are in, and the one
	// its HTTP sinks' requests join.
	TraceID string        `json:"trace_id,omitempty"`
	Stages  []StageRecord `json:"stages"`
}

var (
	// ErrUnknownMessage: no record of that message in the last 7 days.
	ErrUnknownMessage = errors.New("no record of this message in the last 7 days")
	// ErrTrackingOff: the engine runs without message tracking.
	ErrTrackingOff = errors.New("message tracking is off (--tracking=false)")
)

// validID reports whether id can name tracking records: the KV key
// alphabet, so that "*" or ">" never act as wildcards in a lookup.
func validID(id string) bool {
	if id == "" || len(id) > 256 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if !kvKeyChar(id[i]) {
			return false
		}
	}
	return true
}

// kvKeyChar reports whether c may appear in a KV key token.
func kvKeyChar(c byte) bool {
	return c == '-' || c == '_' || c == '.' || c == '=' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

// attempts returns the failed attempts recorded for a stage, oldest first.
// Failures are written at once, so every earlier attempt is there.
func (t *tracker) attempts(ctx context.Context, tenant, integration, id string, stage Stage) []StageRecord {
	if t == nil {
		return nil
	}
	recs, _ := t.read(ctx, trackKey(tenant, integration, id)+".>")
	var failed []StageRecord
	for _, r := range recs {
		if r.Stage == stage.String() && r.Status == StatusFailed {
			failed = append(failed, r)
		}
	}
	return failed
}

// read returns the records under filter, oldest first.
func (t *tracker) read(ctx context.Context, filter string) ([]StageRecord, error) {
	lister, err := t.kv.ListKeysFiltered(ctx, filter)
	if err != nil {
		return nil, err
	}
	var recs []StageRecord
	for k := range lister.Keys() {
		e, err := t.kv.Get(ctx, k)
		if err != nil {
			continue // expired or deleted meanwhile
		}
		var entry []StageRecord
		if json.Unmarshal(e.Value(), &entry) == nil {
			recs = append(recs, entry...)
		}
	}
	// By time, except that a message's acceptance comes first: it is
	// recorded once its publish is acknowledged, and a stage on another
	// goroutine (or node, with its own clock) may record its turn before.
	accepted := stageAccepted.String()
	sort.SliceStable(recs, func(i, j int) bool {
		ai, aj := recs[i].Stage == accepted, recs[j].Stage == accepted
		if ai != aj {
			return ai
		}
		return recs[i].At.Before(recs[j].At)
	})
	return recs, nil
}

// Trace reports where a message is. A multi-output step gives its outputs
// ids of their own (listed in the step's record); trace those separately.
func (e *Engine) Trace(ctx context.Context, tenant, integration, id string) (*MessageTrace, error) {
	if e.tracker == nil {
		return nil, ErrTrackingOff
	}
	if !validID(id) {
		return nil, ErrUnknownMessage
	}
	recs, err := e.tracker.read(ctx, trackKey(tenant, integration, id)+".>")
	if err != nil {
		return nil, fmt.Errorf("read tracking: %w", err)
	}
	if len(recs) == 0 {
		return nil, ErrUnknownMessage
	}
	recs = withAccepted(recs)
	tr := &MessageTrace{ID: id, Integration: integration, Stages: recs}
	tr.State = summarize(recs)
	for i := range recs {
		if tr.TraceID == "" {
			tr.TraceID = recs[i].TraceID
		}
		recs[i].TraceID = ""
	}
	return tr, nil
}

// withAccepted adds the accepted stage that a message routed at emit
// (an integration without steps) does not write: its route record, made
// at the same moment, stands for both.
func withAccepted(recs []StageRecord) []StageRecord {
	var route *StageRecord
	for i := range recs {
		switch recs[i].Stage {
		case stageAccepted.String():
			return recs
		case stageRoute.String():
			if route == nil {
				route = &recs[i]
			}
		}
	}
	if route == nil {
		return recs
	}
	acc := StageRecord{Stage: stageAccepted.String(), Status: StatusAccepted, At: route.At}
	return append([]StageRecord{acc}, recs...)
}

// summarize derives a message's state from its stage records. The route
// record lists the sinks the message was sent to; it is delivered when
// each of them reports delivery.
func summarize(recs []StageRecord) string {
	last := map[string]StageRecord{} // stage → latest outcome (failed attempts aside)
	for _, r := range recs {
		if r.Status != StatusFailed {
			last[r.Stage] = r
		}
	}
	dead, delivered := 0, 0
	for _, r := range last {
		switch r.Status {
		case StatusDeadLettered:
			dead++
		case StatusDelivered:
			delivered++
		}
	}
	route, routed := last[stageRoute.String()]
	switch {
	case dead > 0 && delivered > 0:
		return StatusPartial
	case dead > 0:
		return StatusDeadLettered
	case routed && route.Status == StatusFiltered:
		return StatusFiltered
	case !routed && delivered > 0:
		// The route record was lost (held when the node stopped); the
		// redelivered message reached its sinks.
		return StatusDelivered
	case routed && delivered > 0:
		for _, sink := range route.Outputs {
			if last[sinkStage(sink).String()].Status != StatusDelivered {
				return StatusAccepted
			}
		}
		return StatusDelivered
	default:
		return StatusAccepted
	}
}

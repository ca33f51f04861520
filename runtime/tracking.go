package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vrsky/vrsky/internal/jsonenc"
)

// Message tracking: where each message of the last 7 days is. Each stage
// a message passes writes one small record to the KV bucket vrsky_msgs,
// keyed <tenant>.<integration>.<id>.<stage>[.a<attempt>]. Records are
// published asynchronously by one goroutine, straight to the bucket's
// subjects, so the hot path only does a non-blocking channel send; if the
// buffer is full the record is dropped and counted, never the message.

const (
	trackBucket = "vrsky_msgs"
	trackBuffer = 1 << 16
)

// Stage record statuses.
const (
	StatusAccepted     = "accepted"
	StatusPassed       = "passed"
	StatusFiltered     = "filtered"
	StatusDelivered    = "delivered"
	StatusFailed       = "failed"
	StatusDeadLettered = "dead_lettered"
	StatusReplayed     = "replayed"
)

// StageRecord is one stage's outcome for one message.
type StageRecord struct {
	Stage   string    `json:"stage"`
	Status  string    `json:"status"`
	At      time.Time `json:"at"`
	Attempt int       `json:"attempt,omitempty"`
	Error   string    `json:"error,omitempty"`
	Outputs []string  `json:"outputs,omitempty"`
}

type tracker struct {
	js      jetstream.JetStream
	kv      jetstream.KeyValue
	ch      chan trackEvent
	done    chan struct{}
	dropped atomic.Uint64
	log     *slog.Logger
}

type trackEvent struct {
	key  string
	data []byte
}

func newTracker(ctx context.Context, js jetstream.JetStream, replicas int, log *slog.Logger) (*tracker, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      trackBucket,
		Description: "VRSky message tracking",
		TTL:         DLQRetention,
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("tracking bucket: %w", err)
	}
	t := &tracker{js: js, kv: kv, ch: make(chan trackEvent, trackBuffer), done: make(chan struct{}), log: log}
	go t.run()
	return t, nil
}

// trackKey escapes a message id for use as KV key tokens.
func trackKey(tenant, integration, id string) string {
	return tenant + "." + integration + "." + strings.ReplaceAll(id, ".", "_")
}

// stageKey turns "sink:api" into "sink.api".
func stageKey(stage string) string { return strings.Replace(stage, ":", ".", 1) }

// record queues rec for message id; it never blocks.
func (t *tracker) record(tenant, integration, id string, rec StageRecord) {
	if t == nil {
		return
	}
	key := trackKey(tenant, integration, id) + "." + stageKey(rec.Stage)
	if rec.Status == StatusFailed {
		key += ".a" + strconv.Itoa(rec.Attempt)
	}
	if rec.At.IsZero() {
		rec.At = time.Now().UTC()
	}
	data := rec.appendJSON(make([]byte, 0, 96+len(rec.Error)))
	select {
	case t.ch <- trackEvent{key: key, data: data}:
	default:
		t.dropped.Add(1)
	}
}

// run writes records with plain core publishes to the bucket's subjects:
// JetStream stores them all the same, and the writer spends nothing on
// acknowledgements. A record the server refuses is lost unnoticed, which
// tracking (best effort, never the message) accepts for its cost.
func (t *tracker) run() {
	defer close(t.done)
	nc := t.js.Conn()
	subj := make([]byte, 0, 128)
	for ev := range t.ch {
		subj = append(append(subj[:0], "$KV."+trackBucket+"."...), ev.key...)
		if err := nc.Publish(string(subj), ev.data); err != nil {
			t.dropped.Add(1)
		}
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
	State  string        `json:"state"`
	Stages []StageRecord `json:"stages"`
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
func (t *tracker) attempts(ctx context.Context, tenant, integration, id, stage string) []StageRecord {
	if t == nil {
		return nil
	}
	recs, _ := t.read(ctx, trackKey(tenant, integration, id)+"."+stageKey(stage)+".>")
	return recs
}

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
		var r StageRecord
		if json.Unmarshal(e.Value(), &r) == nil {
			recs = append(recs, r)
		}
	}
	sort.SliceStable(recs, func(i, j int) bool { return recs[i].At.Before(recs[j].At) })
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
	return tr, nil
}

// summarize derives a message's state from its stage records. The route
// record lists the sinks the message was sent to; it is delivered when
// each of them reports delivery.
// withAccepted adds the accepted stage that a message routed at emit
// (an integration without steps) does not write: its route record, made
// at the same moment, stands for both.
func withAccepted(recs []StageRecord) []StageRecord {
	var route *StageRecord
	for i := range recs {
		switch recs[i].Stage {
		case stageAccepted:
			return recs
		case stageRoute:
			if route == nil {
				route = &recs[i]
			}
		}
	}
	if route == nil {
		return recs
	}
	acc := StageRecord{Stage: stageAccepted, Status: StatusAccepted, At: route.At}
	return append([]StageRecord{acc}, recs...)
}

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
	route, routed := last[stageRoute]
	switch {
	case dead > 0 && delivered > 0:
		return "partial"
	case dead > 0:
		return StatusDeadLettered
	case routed && route.Status == StatusFiltered:
		return StatusFiltered
	case routed && delivered > 0:
		for _, sink := range route.Outputs {
			if last["sink:"+sink].Status != StatusDelivered {
				return StatusAccepted
			}
		}
		return StatusDelivered
	default:
		return StatusAccepted
	}
}

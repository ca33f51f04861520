package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/vrsky/vrsky/platform/tenancy"
	"go.opentelemetry.io/otel/trace"
)

// The dead-letter queue of a tenant is the stream VRSKY_DLQ_<tenant>, one
// subject per integration. An entry's id is its stream sequence. Replay
// publishes the message back into the stage that failed, as a new message
// with a fresh attempt count, and then removes the entry, so replaying an
// entry twice delivers it once.

var (
	// ErrNoDeadLetter: no such entry in this integration's dead-letter queue.
	ErrNoDeadLetter = errors.New("no such dead letter")
	// ErrStageGone: the stage an entry failed at is no longer in the
	// integration, so it cannot be replayed there.
	ErrStageGone = errors.New("the stage is no longer in the integration")
	// ErrBadCursor: a paging cursor that is not a dead-letter id.
	ErrBadCursor = errors.New("not a dead-letter id")
)

// retryOrDeadLetter naks m with backoff or, after the last attempt or a
// permanent error, copies msg (m as received) to the DLQ and terminates m.
// r is the sink that failed, or nil for a step.
func (p *pipeline) retryOrDeadLetter(m jetstream.Msg, msg *Message, stage Stage, err error, r *sinkRunner) {
	attempt := attemptOf(m)
	p.e.metrics.stageFailed(p.tenant, p.spec.Name, stage)
	if r != nil {
		r.failures.Add(1)
	}
	p.track(msg.ID, stage, StageRecord{Status: StatusFailed, Attempt: attempt, Error: clip(err.Error())})
	if !IsPermanent(err) && attempt < p.spec.Retry.MaxAttempts {
		wait := p.spec.Retry.Backoff(attempt)
		// One line per failed attempt: this one, or the dead letter's.
		p.log.Warn("attempt failed; retrying", "stage", stage.String(), "msg_id", msg.ID, "trace_id", traceIDOf(msg.Header),
			"attempt", attempt, "of", p.spec.Retry.MaxAttempts, "in", wait, "err", err)
		_ = m.NakWithDelay(wait)
		return
	}
	// The dead letter's dedup id names the input's stream sequence: a
	// crash between the DLQ write and the Term redelivers the same input
	// (same sequence: stored once), while a replayed message that fails
	// again is a new input (new sequence) and must be stored again.
	var seq uint64
	if md, mdErr := m.Metadata(); mdErr == nil {
		seq = md.Sequence.Stream
	}
	if dlErr := p.publishDeadLetter(msg, attempt, err, stage, seq); dlErr != nil {
		// Not in the DLQ: keep it in the stream and try again later.
		p.log.Error("dead-letter write failed; redelivering", "stage", stage.String(), "msg_id", msg.ID, "trace_id", traceIDOf(msg.Header),
			"attempt", attempt, "err", fmt.Errorf("%w (after the attempt failed with: %s)", dlErr, clip(err.Error())))
		_ = m.NakWithDelay(p.spec.Retry.Backoff(attempt))
		return
	}
	if r != nil {
		r.deadLettered.Add(1)
	}
	_ = m.Term()
}

// publishDeadLetter copies msg to the tenant's DLQ with the stage, the
// attempt count and every attempt's time and error. seq, when not zero,
// is the stream sequence of the input that failed, part of the dedup id.
func (p *pipeline) publishDeadLetter(msg *Message, attempts int, cause error, stage Stage, seq uint64) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	log := attemptLog(p.e.tracker.attempts(ctx, p.tenant, p.spec.Name, msg.ID, stage), attempts, cause)
	h := msg.Header.Clone()
	dedup := "dlq:" + stage.String() + ":" + msg.ID
	if seq != 0 {
		dedup += ":" + strconv.FormatUint(seq, 10)
	}
	h.Set(HeaderNatsMsgID, dedup)
	h.Set(HeaderStage, stage.String())
	h.Set(HeaderError, clip(cause.Error()))
	h.Set(HeaderAttempts, strconv.Itoa(attempts))
	h.Set(HeaderAttemptLog, log)
	_, err := p.conn.JS.PublishMsg(ctx, &nats.Msg{Subject: subjectDLQStage(p.tenant, p.spec.Name, stage), Header: nats.Header(h), Data: msg.Data})
	if err != nil {
		return err
	}
	p.e.metrics.stageDeadLettered(p.tenant, p.spec.Name, stage)
	p.track(msg.ID, stage, StageRecord{Status: StatusDeadLettered, Attempt: attempts, Error: clip(cause.Error())})
	p.log.Warn("message dead-lettered", "msg_id", msg.ID, "trace_id", traceIDOf(msg.Header), "stage", stage.String(), "attempts", attempts, "err", cause)
	return nil
}

// deadLetter copies m to the DLQ for this sink without it ever reaching
// the sink's subject (a permanent routing failure): a claim-checked
// payload is held for the dead letter first. An error means m is not in
// the DLQ, and the caller must keep its input (redelivered) rather than
// let it go.
func (r *sinkRunner) deadLetter(m *Message, attempts int, err error, stage Stage) error {
	if m.Claimed() && r.p.e.claims != nil {
		if hErr := r.p.e.claims.hold(r.p.ctx, m.Header.Get(HeaderPayloadRef), []string{r.spec.Name}); hErr != nil {
			return fmt.Errorf("%s: hold the payload for its dead letter: %w: %w", stage, ErrPayloadStore, hErr)
		}
	}
	if dlErr := r.p.publishDeadLetter(m, attempts, err, stage, 0); dlErr != nil {
		return fmt.Errorf("%s: dead-letter write: %w", stage, dlErr)
	}
	r.deadLettered.Add(1)
	return nil
}

// attemptLog renders the failed attempts of a stage as JSON, completing
// the record with the attempt that just failed (its write may still be
// queued).
func attemptLog(recs []StageRecord, attempt int, cause error) string {
	type entry struct {
		Attempt int       `json:"attempt"`
		At      time.Time `json:"at"`
		Error   string    `json:"error"`
	}
	var out []entry
	seen := map[int]bool{}
	for _, r := range recs {
		if r.Status == StatusFailed && !seen[r.Attempt] {
			seen[r.Attempt] = true
			out = append(out, entry{r.Attempt, r.At, clip(r.Error)})
		}
	}
	if !seen[attempt] {
		out = append(out, entry{attempt, time.Now().UTC(), clip(cause.Error())})
	}
	b, _ := json.Marshal(out)
	return string(b)
}

// maxErrorText bounds an error text kept in headers and tracking records:
// a guest may quote its whole input in an error, and NATS headers are small.
const maxErrorText = 1024

// clip shortens s to maxErrorText bytes, on a UTF-8 boundary.
func clip(s string) string {
	if len(s) <= maxErrorText {
		return s
	}
	cut := maxErrorText
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// DeadLetter is one entry of the dead-letter queue.
type DeadLetter struct {
	// ID identifies the entry (its DLQ stream sequence).
	ID string `json:"id"`
	// MessageID is the id the message had in the pipeline.
	MessageID string `json:"message_id"`
	// Stage is where it failed: "step:<name>", "sink:<name>", "route:<sink>"
	// (its when condition could not be evaluated) or "route" (the input
	// stage could not route or publish the steps' outputs; a replay runs
	// the steps again).
	Stage string `json:"stage"`
	// Error is the last attempt's error.
	Error string `json:"error"`
	// Attempts is how many attempts were made.
	Attempts int `json:"attempts"`
	// AttemptLog lists every failed attempt: number, time, error.
	AttemptLog json.RawMessage `json:"attempt_log,omitempty"`
	// At is when it was dead-lettered.
	At time.Time `json:"at"`
	// Size is the payload's size in bytes.
	Size int `json:"size"`
	// Headers are the message's headers (transport headers included).
	Headers map[string]string `json:"headers,omitempty"`
	// Payload is the message body; only Get fills it.
	Payload []byte `json:"payload,omitempty"`
}

// DLQFilter narrows a listing.
type DLQFilter struct {
	// Stage keeps only entries of that stage ("sink:api").
	Stage string
	// Before lists entries older than this id (paging); empty starts at the newest.
	Before string
	// Limit caps the page; zero means 50, at most 1000.
	Limit int
}

func (e *Engine) dlqStream(ctx context.Context, tenant string) (jetstream.Stream, error) {
	conn, err := e.tenants.Conn(ctx, tenant)
	if errors.Is(err, tenancy.ErrNoTenant) {
		return nil, nil // no tenant, no dead letters
	}
	if err != nil {
		return nil, err
	}
	s, err := conn.JS.Stream(ctx, dlqStreamName(tenant))
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, nil
	}
	return s, err
}

// ListDeadLetters returns an integration's dead letters, newest first, and
// the id to pass as Before for the next page ("" when there is none).
func (e *Engine) ListDeadLetters(ctx context.Context, tenant, integration string, f DLQFilter) ([]DeadLetter, string, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = 50
	}
	limit = min(limit, 1000)
	s, err := e.dlqStream(ctx, tenant)
	if err != nil || s == nil {
		return nil, "", err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return nil, "", fmt.Errorf("dead-letter stream: %w", err)
	}
	seq := info.State.LastSeq
	if f.Before != "" {
		b, err := strconv.ParseUint(f.Before, 10, 64)
		if err != nil || b == 0 {
			return nil, "", fmt.Errorf("before %q: %w", f.Before, ErrBadCursor)
		}
		seq = min(seq, b-1)
	}
	var out []DeadLetter
	for ; seq >= info.State.FirstSeq && seq > 0; seq-- {
		if len(out) == limit {
			return out, strconv.FormatUint(seq+1, 10), nil
		}
		m, err := s.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return nil, "", fmt.Errorf("read dead letter %d: %w", seq, err)
		}
		if !isDLQSubject(m.Subject, tenant, integration) {
			continue
		}
		dl := deadLetterOf(m, false)
		if f.Stage != "" && dl.Stage != f.Stage {
			continue
		}
		out = append(out, dl)
	}
	return out, "", nil
}

// GetDeadLetter returns one entry with its payload.
func (e *Engine) GetDeadLetter(ctx context.Context, tenant, integration, id string) (*DeadLetter, error) {
	m, err := e.getDeadLetter(ctx, tenant, integration, id)
	if err != nil {
		return nil, err
	}
	dl := deadLetterOf(m, true)
	return &dl, nil
}

func (e *Engine) getDeadLetter(ctx context.Context, tenant, integration, id string) (*jetstream.RawStreamMsg, error) {
	seq, err := strconv.ParseUint(id, 10, 64)
	if err != nil || seq == 0 {
		return nil, ErrNoDeadLetter
	}
	s, err := e.dlqStream(ctx, tenant)
	if err != nil {
		return nil, err
	}
	if s == nil {
		return nil, ErrNoDeadLetter
	}
	m, err := s.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, ErrNoDeadLetter
	}
	if err != nil {
		return nil, fmt.Errorf("read dead letter %s: %w", id, err)
	}
	if !isDLQSubject(m.Subject, tenant, integration) {
		return nil, ErrNoDeadLetter
	}
	return m, nil
}

func deadLetterOf(m *jetstream.RawStreamMsg, withPayload bool) DeadLetter {
	h := Header(m.Header)
	attempts, _ := strconv.Atoi(h.Get(HeaderAttempts))
	dl := DeadLetter{
		ID:        strconv.FormatUint(m.Sequence, 10),
		MessageID: h.Get(HeaderMsgID),
		Stage:     h.Get(HeaderStage),
		Error:     h.Get(HeaderError),
		Attempts:  attempts,
		At:        m.Time.UTC(),
		Size:      len(m.Data),
		Headers:   map[string]string{},
	}
	if log := h.Get(HeaderAttemptLog); json.Valid([]byte(log)) {
		dl.AttemptLog = json.RawMessage(log)
	}
	for k, v := range h {
		switch k {
		case HeaderAttemptLog, HeaderNatsMsgID:
		default:
			if len(v) > 0 {
				dl.Headers[k] = v[0]
			}
		}
	}
	if withPayload {
		dl.Payload = m.Data
	}
	return dl
}

// removeEntry deletes a DLQ entry (the message itself lives on elsewhere,
// e.g. replayed).
func (e *Engine) removeEntry(ctx context.Context, tenant string, m *jetstream.RawStreamMsg) error {
	id := strconv.FormatUint(m.Sequence, 10)
	s, err := e.dlqStream(ctx, tenant)
	if err != nil {
		return err
	}
	if err := s.DeleteMsg(ctx, m.Sequence); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
		return fmt.Errorf("delete dead letter %s: %w", id, err)
	}
	return nil
}

// DeleteDeadLetter removes one entry without replaying it, and lets go of
// its claim-checked payload: the message has left the pipeline for good.
func (e *Engine) DeleteDeadLetter(ctx context.Context, tenant, integration, id string) error {
	m, err := e.getDeadLetter(ctx, tenant, integration, id)
	if err != nil {
		return err
	}
	if err := e.removeEntry(ctx, tenant, m); err != nil {
		return err
	}
	h := Header(m.Header)
	if ref := h.Get(HeaderPayloadRef); ref != "" && e.claims != nil {
		stage, err := ParseStage(h.Get(HeaderStage))
		switch {
		case err != nil:
			// Not an entry the pipeline wrote: nothing says who holds the
			// object, which the payload sweep deletes in its time.
			return nil
		case stage.Kind == StageStep || stage == stageRoute: // the input's own object: no sink holds it
			return e.claims.blobs.Delete(ctx, ref)
		default: // sink:<name> or route:<sink>: that sink's hold
			return e.claims.release(ctx, ref, stage.Name)
		}
	}
	return nil
}

// ReplayDeadLetter sends the entry back into the stage that failed and
// removes it from the DLQ. The message starts a new attempt count.
func (e *Engine) ReplayDeadLetter(ctx context.Context, tenant string, spec *Spec, id string) error {
	m, err := e.getDeadLetter(ctx, tenant, spec.Name, id)
	if err != nil {
		return err
	}
	h := Header(m.Header).Clone()
	stage, err := ParseStage(h.Get(HeaderStage))
	var subject string
	switch {
	case err != nil, stage.Kind == StageAccepted:
		return fmt.Errorf("dead letter %s: stage %q: %w", id, h.Get(HeaderStage), ErrStageGone)
	case stage == stageRoute:
		// The input stage failed to route or publish the steps' outputs:
		// the input goes back through the steps.
		subject = SubjectIn(tenant, spec.Name)
	case stage.Kind == StageSink || stage.Kind == StageRoute:
		found := false
		for _, sk := range spec.Sinks {
			found = found || sk.Name == stage.Name
		}
		if !found {
			return fmt.Errorf("dead letter %s: sink %q: %w", id, stage.Name, ErrStageGone)
		}
		subject = SubjectOut(tenant, spec.Name, stage.Name)
	default: // a step
		subject = SubjectIn(tenant, spec.Name)
	}
	for _, k := range []string{HeaderStage, HeaderError, HeaderAttempts, HeaderAttemptLog} {
		delete(h, k)
	}
	// A fixed dedup id: two replays racing within the dedup window store one message.
	h.Set(HeaderNatsMsgID, "replay:"+tenant+":"+strconv.FormatUint(m.Sequence, 10))
	// The message keeps its traceparent: a replay is one more span in its
	// trace, and the stages it runs again add theirs.
	sp := span{}
	if e.tracer != nil {
		sp = startStageSpan(e.tracer, h, tenant, spec.Name, h.Get(HeaderMsgID), "replay", 0, trace.SpanKindProducer)
	}
	conn, err := e.tenants.Conn(ctx, tenant)
	if err != nil {
		sp.end(err)
		return fmt.Errorf("replay dead letter %s: %w", id, err)
	}
	// The replay's record takes the publish's time: the stage it goes back
	// to may record its delivery before PublishMsg returns, and Trace orders
	// records by time.
	replayedAt := time.Now().UTC()
	if _, err := conn.JS.PublishMsg(ctx, &nats.Msg{Subject: subject, Header: nats.Header(h), Data: m.Data}); err != nil {
		sp.end(err)
		return fmt.Errorf("replay dead letter %s: %w", id, err)
	}
	sp.end(nil)
	e.tracker.record(tenant, spec.Name, h.Get(HeaderMsgID), StageRecord{Stage: stage.String(), Status: StatusReplayed, At: replayedAt, TraceID: traceIDOf(h)})
	return e.removeEntry(ctx, tenant, m)
}

// ReplayDeadLetters replays every entry of the integration (of one stage
// when stage is not empty) and returns how many it replayed.
func (e *Engine) ReplayDeadLetters(ctx context.Context, tenant string, spec *Spec, stage string) (int, error) {
	n := 0
	before := ""
	for {
		page, next, err := e.ListDeadLetters(ctx, tenant, spec.Name, DLQFilter{Stage: stage, Before: before, Limit: 1000})
		if err != nil {
			return n, err
		}
		for _, dl := range page {
			if err := e.ReplayDeadLetter(ctx, tenant, spec, dl.ID); err != nil && !errors.Is(err, ErrNoDeadLetter) {
				return n, err
			}
			n++
		}
		if next == "" {
			return n, nil
		}
		before = next
	}
}

package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"

	"github.com/vrsky/vrsky/platform/tenancy"
)

// The pipeline is its source's Emitter: a message is accepted once
// JetStream has stored it on the input subject or, without steps, on the
// subject of every sink it is routed to (emitDirect).

// Emit implements Emitter for the pipeline's source.
func (p *pipeline) Emit(ctx context.Context, msg *Message) error {
	if p.direct() {
		_, err := p.emitDirect(ctx, []*Message{msg})
		return err
	}
	if err := p.admitted(ctx, 1); err != nil {
		return err
	}
	nm, sp, err := p.prepare(ctx, msg)
	if err != nil {
		return err
	}
	_, err = p.conn.JS.PublishMsg(ctx, nm)
	err = p.accepted(msg, err)
	sp.end(err)
	return err
}

// EmitBatch implements Emitter: every publish is in flight at once and
// the batch returns when JetStream has acknowledged them all.
func (p *pipeline) EmitBatch(ctx context.Context, msgs []*Message) error {
	if p.direct() {
		_, err := p.emitDirect(ctx, msgs)
		return err
	}
	if err := p.admitted(ctx, len(msgs)); err != nil {
		return err
	}
	futs := make([]jetstream.PubAckFuture, 0, len(msgs)) // futs[i] is msgs[i]'s
	var spans []span                                     // spans[i] is msgs[i]'s ingest span; nil when tracing is off
	var first error
	for i, msg := range msgs {
		nm, sp, err := p.prepare(ctx, msg)
		if sp.s != nil {
			if spans == nil {
				spans = make([]span, len(msgs))
			}
			spans[i] = sp
		}
		var f jetstream.PubAckFuture
		if err == nil {
			f, err = publishAsync(ctx, p.conn.JS, nm)
		}
		if err != nil {
			first = p.accepted(msg, err)
			sp.end(first)
			break
		}
		futs = append(futs, f)
	}
	err := awaitAcks(ctx, futs, func(i int, err error) bool {
		if err = p.accepted(msgs[i], err); err != nil && first == nil {
			first = err
		}
		if spans != nil {
			spans[i].end(err)
		}
		return true
	})
	for _, sp := range spans {
		sp.end(err) // those whose acknowledgement was not awaited
	}
	if err != nil {
		return err
	}
	return first
}

// EmitWait implements Emitter: it emits msg asking the input stage to
// report on a reply subject what the steps made of it.
func (p *pipeline) EmitWait(ctx context.Context, msg *Message) (Outcome, error) {
	if p.direct() { // routed at once: the outcome is known
		statuses, err := p.emitDirect(ctx, []*Message{msg})
		if err != nil {
			return Outcome{}, err
		}
		return Outcome{Status: statuses[0]}, nil
	}
	inbox := p.conn.NC.NewRespInbox()
	sub, err := p.conn.NC.SubscribeSync(inbox)
	if err != nil {
		return Outcome{}, fmt.Errorf("reply subscription: %w", err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if msg.Header == nil {
		msg.Header = Header{}
	}
	msg.Header.Set(headerReply, inbox)
	if err := p.Emit(ctx, msg); err != nil {
		return Outcome{}, err
	}
	reply, err := sub.NextMsgWithContext(ctx)
	if err != nil {
		return Outcome{Status: OutcomePending}, nil
	}
	var out Outcome
	if err := json.Unmarshal(reply.Data, &out); err != nil {
		return Outcome{Status: OutcomePending}, nil
	}
	return out, nil
}

// direct reports whether sources publish straight to the sinks'
// subjects. Without steps the input stage has nothing to do but route, and
// routing at emit saves a stream write, a delivery and an acknowledgement
// per message. Messages already on the input subject (from before an
// update that removed the steps, or replayed to a step) are still handled
// by the input stage.
func (p *pipeline) direct() bool { return len(p.spec.Steps) == 0 }

// emitDirect routes msgs at once: each goes to the subject of every sink
// whose `when` holds, under the same ids the input stage would give it, so
// an emit retried after a partial failure stores each copy once. It
// returns each message's routing status (passed or filtered) once
// JetStream has acknowledged every copy.
func (p *pipeline) emitDirect(ctx context.Context, msgs []*Message) (_ []string, err error) {
	var futs []jetstream.PubAckFuture
	var owner []int // futs[k] is a copy of msgs[owner[k]]
	routes := make([][]string, len(msgs))
	// The route record's time is the publish's, not the acknowledgement's:
	// a sink may deliver a copy before every acknowledgement is awaited, and
	// Trace orders stages by time.
	routedAt := time.Now().UTC()
	var spans []span // per message its ingest and route spans; nil when tracing is off
	defer func() {
		for _, sp := range spans {
			sp.end(err)
		}
	}()
	if err := p.admitted(ctx, len(msgs)); err != nil {
		return nil, err
	}
	for i, msg := range msgs {
		_, sp, err := p.prepare(ctx, msg)
		if err != nil {
			return nil, p.accepted(msg, err)
		}
		if sp.s != nil {
			spans = append(spans, sp, p.stageSpan(msg.Header, msg.ID, stageRoute, 0, trace.SpanKindProducer))
		}
		targets, err := p.route(msg)
		if err != nil {
			return nil, err
		}
		if ref := msg.Header.Get(HeaderPayloadRef); ref != "" {
			if len(targets) == 0 { // filtered, or dead-lettered by a `when` (which holds it)
				if err := p.e.claims.dropUnheld(ctx, ref); err != nil {
					p.log.Warn("delete claim-checked payload no sink takes", "ref", ref, "err", err)
				}
			} else if err := p.claimOutput(msg, targets); err != nil {
				return nil, fmt.Errorf("%w: %w", ErrPayloadStore, err)
			}
		}
		for _, r := range targets {
			f, err := publishAsync(ctx, p.conn.JS, r.outMsg(msg))
			if err != nil {
				return nil, p.accepted(msg, err)
			}
			futs = append(futs, f)
			owner = append(owner, i)
			routes[i] = append(routes[i], r.spec.Name)
		}
	}
	var failed error
	if err := awaitAcks(ctx, futs, func(k int, err error) bool {
		if err != nil {
			failed = p.accepted(msgs[owner[k]], err)
			return false
		}
		return true
	}); err != nil {
		return nil, err
	}
	if failed != nil {
		return nil, failed
	}
	statuses := make([]string, len(msgs))
	for i, msg := range msgs {
		// One tracking record says both: accepted and routed, at once
		// (Trace shows the accepted stage from it).
		p.countIngested()
		statuses[i] = StatusPassed
		if len(routes[i]) == 0 {
			statuses[i] = StatusFiltered
		}
		p.track(msg.ID, stageRoute, StageRecord{Status: statuses[i], At: routedAt, Outputs: routes[i], TraceID: traceIDOf(msg.Header)})
	}
	return statuses, nil
}

// admitted checks what an emit of n messages must pass before any is
// published: the integration's room (backpressure), the tenant not
// moving, and its rate quota. A batch passes or is refused whole, so a
// refused request has stored nothing.
func (p *pipeline) admitted(ctx context.Context, n int) error {
	if err := p.backpressure(); err != nil {
		return err
	}
	if p.e.isPaused(p.tenant) {
		return ErrMoving
	}
	return p.admit(ctx, n)
}

// headerReply carries EmitWait's reply subject to the input stage; it is
// not passed on to sinks.
const headerReply = "Vrsky-Reply"

// prepare stamps msg's headers (its trace context too: trace.go) and
// claim-checks a large payload. The ingest span it returns, zero when
// tracing is off, is the caller's to end once msg is durable or refused.
func (p *pipeline) prepare(ctx context.Context, msg *Message) (*nats.Msg, span, error) {
	if msg.ID == "" {
		msg.ID = NewID()
	}
	if msg.Header == nil {
		msg.Header = Header{}
	}
	// The four stamps share one allocation (the keys are canonical).
	v := []string{msg.ID, p.tenant, p.spec.Name}
	msg.Header[HeaderNatsMsgID], msg.Header[HeaderMsgID] = v[0:1:1], v[0:1:1]
	msg.Header[HeaderTenant], msg.Header[HeaderIntegration] = v[1:2:2], v[2:3:3]
	sp := p.ingest(ctx, msg)
	if err := p.e.claims.checkIn(ctx, p.tenant, p.spec.Name, msg); err != nil {
		sp.end(err)
		return nil, span{}, err
	}
	p.m.countClaim(msg)
	if p.direct() {
		return nil, sp, nil // emitDirect publishes outMsg copies instead
	}
	return &nats.Msg{Subject: SubjectIn(p.tenant, p.spec.Name), Header: wireHeader(msg.Header, 0), Data: msg.Data}, sp, nil
}

// accepted counts and tracks msg once its publish succeeded, and turns a
// full stream into ErrBackpressure and a full account into a QuotaError;
// either way the sources that come next are refused at once (prepare)
// until watchUsage sees room.
func (p *pipeline) accepted(msg *Message, err error) error {
	if isStreamFull(err) {
		p.full.Store(streamFull)
		return fmt.Errorf("%w: %w", ErrBackpressure, err)
	}
	if tenancy.IsStorageQuotaExceeded(err) {
		p.full.Store(quotaUsedUp)
		return p.usedUp(err)
	}
	var qe *QuotaError
	if errors.Is(err, ErrBackpressure) || errors.As(err, &qe) || errors.Is(err, ErrPayloadStore) || errors.Is(err, ErrPayloadRead) {
		return err
	}
	if err != nil {
		return fmt.Errorf("make message durable: %w", err)
	}
	p.countIngested()
	p.track(msg.ID, stageAccepted, StageRecord{Status: StatusAccepted, TraceID: traceIDOf(msg.Header)})
	return nil
}

func (p *pipeline) countIngested() {
	p.ingested.Add(1)
	p.m.ingested.Inc()
}

package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

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
	nm, err := p.prepare(ctx, msg)
	if err != nil {
		return err
	}
	_, err = p.conn.JS.PublishMsg(ctx, nm)
	return p.accepted(msg, err)
}

// EmitBatch implements Emitter: every publish is in flight at once and
// the batch returns when JetStream has acknowledged them all.
func (p *pipeline) EmitBatch(ctx context.Context, msgs []*Message) error {
	if p.direct() {
		_, err := p.emitDirect(ctx, msgs)
		return err
	}
	futs := make([]jetstream.PubAckFuture, 0, len(msgs)) // futs[i] is msgs[i]'s
	var first error
	for _, msg := range msgs {
		nm, err := p.prepare(ctx, msg)
		var f jetstream.PubAckFuture
		if err == nil {
			f, err = p.conn.JS.PublishMsgAsync(nm)
		}
		if err != nil {
			first = p.accepted(msg, err)
			break
		}
		futs = append(futs, f)
	}
	if err := awaitAcks(ctx, futs, func(i int, err error) bool {
		if err = p.accepted(msgs[i], err); err != nil && first == nil {
			first = err
		}
		return true
	}); err != nil {
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
func (p *pipeline) emitDirect(ctx context.Context, msgs []*Message) ([]string, error) {
	var futs []jetstream.PubAckFuture
	var owner []int // futs[k] is a copy of msgs[owner[k]]
	routes := make([][]string, len(msgs))
	for i, msg := range msgs {
		if _, err := p.prepare(ctx, msg); err != nil {
			return nil, p.accepted(msg, err)
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
			f, err := p.conn.JS.PublishMsgAsync(r.outMsg(msg))
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
		p.track(msg.ID, stageRoute, StageRecord{Status: statuses[i], Outputs: routes[i]})
	}
	return statuses, nil
}

// headerReply carries EmitWait's reply subject to the input stage; it is
// not passed on to sinks.
const headerReply = "Vrsky-Reply"

// prepare stamps msg's headers and claim-checks a large payload.
func (p *pipeline) prepare(ctx context.Context, msg *Message) (*nats.Msg, error) {
	if err := p.backpressure(); err != nil {
		return nil, err
	}
	if p.e.isPaused(p.tenant) {
		return nil, ErrMoving
	}
	if err := p.admit(ctx, 1); err != nil {
		return nil, err
	}
	if msg.ID == "" {
		msg.ID = NewID()
	}
	if msg.Header == nil {
		msg.Header = Header{}
	}
	msg.Header.Set(HeaderNatsMsgID, msg.ID)
	msg.Header.Set(HeaderMsgID, msg.ID)
	msg.Header.Set(HeaderTenant, p.tenant)
	msg.Header.Set(HeaderIntegration, p.spec.Name)
	if err := p.e.claims.checkIn(ctx, p.tenant, p.spec.Name, msg); err != nil {
		return nil, err
	}
	p.m.countClaim(msg)
	return &nats.Msg{Subject: SubjectIn(p.tenant, p.spec.Name), Header: nats.Header(msg.Header), Data: msg.Data}, nil
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
	p.track(msg.ID, stageAccepted, StageRecord{Status: StatusAccepted})
	return nil
}

func (p *pipeline) countIngested() {
	p.ingested.Add(1)
	p.m.ingested.Inc()
}

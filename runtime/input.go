package runtime

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/expr-lang/expr"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"
)

// The input stage: batches from the input subject run through the steps,
// and every output is published to the subject of each sink whose `when`
// holds. An input is acknowledged only once all its outputs are durable.

// Input stage tuning: batches spread the fixed cost of a step call and of
// waiting for publish acknowledgements.
const (
	stepBatchMax = 128
	inWorkers    = 4
)

// startIn creates the input consumer and its workers.
func (p *pipeline) startIn(ctx context.Context) error {
	cc, err := p.consume(ctx, inConsumerName, SubjectIn(p.tenant, p.spec.Name), inWorkers, &p.inWG, func(ch <-chan jetstream.Msg) {
		// What is buffered, up to stepBatchMax: a step call waits for nothing.
		gatherBatches(ch, stepBatchMax, 0, p.processIn)
	})
	p.inConsume = cc
	return err
}

// item follows one input message through the steps.
type item struct {
	src       jetstream.Msg
	id        string     // the input's message id
	msgs      []*Message // current outputs
	err       error      // set when a step failed
	step      string     // the step that failed
	routes    []string   // where the outputs went: sink, or <output id>@<sink>
	claimRefs []string   // claim-checked payloads the steps took as input
	reply     string     // where EmitWait waits for the outcome
	route     span       // the route stage's span (tracing on)
}

// processIn runs a batch from the input subject through the steps and
// publishes every output to each sink whose route matches. An input is
// acknowledged only after all its outputs are durable.
func (p *pipeline) processIn(batch []jetstream.Msg) {
	items := make([]*item, len(batch))
	for i, m := range batch {
		in := p.toMessage(m)
		items[i] = &item{src: m, id: in.ID, msgs: []*Message{in}, reply: in.Header.Get(headerReply)}
	}
	for si, step := range p.steps {
		p.runStep(si, step, items)
	}
	var futs []jetstream.PubAckFuture
	var owner []*item // futs[k] is an output of owner[k]
	// The route records take the publishes' time, not the acknowledgements':
	// a sink may deliver an output before every acknowledgement is awaited,
	// and Trace orders records by time.
	routedAt := time.Now().UTC()
	for _, it := range items {
		if it.err != nil {
			continue
		}
		if p.e.tracer != nil {
			it.route = p.stageSpan(Header(it.src.Headers()), it.id, stageRoute, attemptOf(it.src), trace.SpanKindProducer)
		}
		for _, out := range it.msgs {
			targets, err := p.route(out)
			if err != nil {
				it.err = err
				break
			}
			if len(targets) == 0 {
				continue
			}
			if err := p.claimOutput(out, targets); err != nil {
				it.err = err
				break
			}
			for _, r := range targets {
				f, err := publishAsync(p.ctx, p.conn.JS, r.outMsg(out))
				if err != nil {
					it.err = err
					break
				}
				futs = append(futs, f)
				owner = append(owner, it)
				route := r.spec.Name
				if out.ID != it.id {
					route = out.ID + "@" + r.spec.Name
				}
				it.routes = append(it.routes, route)
			}
		}
	}
	waited := 0
	if err := awaitAcks(p.ctx, futs, func(k int, err error) bool {
		waited = k + 1
		if err != nil && owner[k].err == nil {
			owner[k].err = err
		}
		return true
	}); err != nil {
		// The work context ends only once the stages are drained (stop),
		// so this does not happen; were it to, an input whose outputs are
		// not known to be durable is not acknowledged.
		for _, it := range owner[waited:] {
			if it.err == nil {
				it.err = err
			}
		}
	}
	for _, it := range items {
		switch {
		case it.err == nil:
			_ = it.src.Ack()
			status := StatusPassed
			if len(it.routes) == 0 {
				status = StatusFiltered
			}
			it.route.end(nil)
			p.track(it.id, stageRoute, StageRecord{Status: status, At: routedAt, Outputs: it.routes, TraceID: traceIDOf(Header(it.src.Headers()))})
			p.dropInputObjects(it)
			p.reply(it, Outcome{Status: status})
		default:
			// A step failed, or routing and publishing its outputs did
			// (stage "route"): either way one more counted attempt, and the
			// DLQ after the last one or at once for a permanent error.
			stage := stageRoute
			if it.step != "" {
				stage = stepStage(it.step)
			}
			it.route.end(it.err)
			p.reply(it, Outcome{Status: StatusFailed, Stage: stage.String(), Error: clip(it.err.Error())})
			p.retryOrDeadLetter(it.src, p.toMessage(it.src), stage, it.err, nil)
		}
	}
}

// reply tells a source waiting in EmitWait what the steps made of it.
// Core NATS, fire and forget: the message is durable either way.
func (p *pipeline) reply(it *item, out Outcome) {
	if it.reply == "" {
		return
	}
	b, _ := json.Marshal(out)
	_ = p.conn.NC.Publish(it.reply, b)
}

// runStep applies one step to every live item.
func (p *pipeline) runStep(si int, step Step, items []*item) {
	name := p.spec.Steps[si].Name
	byRef := readsClaims(step)
	var in []*Message
	var owner []*item
	for _, it := range items {
		if it.err != nil {
			continue
		}
		for _, m := range it.msgs {
			if m.Claimed() {
				if err := p.takeClaimed(it, m, byRef); err != nil {
					it.err, it.step = err, name
					break
				}
			}
			in = append(in, m)
			owner = append(owner, it)
		}
		it.msgs = it.msgs[:0]
	}
	if len(in) == 0 {
		return
	}
	var spans []span // spans[i] is in[i]'s; nil when tracing is off
	if p.e.tracer != nil {
		spans = make([]span, len(in))
		for i, m := range in {
			spans[i] = p.stageSpan(m.Header, m.ID, stepStage(name), attemptOf(owner[i].src), trace.SpanKindInternal)
		}
	}
	sm := &p.m.steps[si]
	sm.in.Add(float64(len(in)))
	start := time.Now()
	res, err := step.Process(p.ctx, in)
	sm.took.Observe(time.Since(start).Seconds())
	if err == nil && len(res) != len(in) {
		err = fmt.Errorf("step returned %d results for %d messages", len(res), len(in))
	}
	for i, sp := range spans {
		switch {
		case err != nil:
			sp.end(err)
		default:
			sp.end(res[i].Err)
		}
	}
	for i, it := range owner {
		if it.err != nil {
			continue
		}
		switch {
		case err != nil:
			it.err, it.step = err, name
		case res[i].Err != nil:
			it.err, it.step = res[i].Err, name
		default:
			outs := res[i].Out
			if len(outs) == 0 {
				sm.dropped.Inc()
			}
			for k, o := range outs {
				if o.ID == "" {
					o.ID = in[i].ID
					if len(outs) > 1 {
						o.ID += "." + strconv.Itoa(k)
					}
				}
				if o.Header == nil {
					o.Header = in[i].Header.Clone()
				}
				if o.Header.Get(HeaderMsgID) != o.ID {
					// The next step sees the output's own id (a module
					// names its objects after it).
					o.Header = o.Header.Clone()
					o.Header.Set(HeaderMsgID, o.ID)
				}
				if err := p.checkOutputRef(in[i], o, byRef); err != nil {
					it.err, it.step = err, name
				}
			}
			if it.err == nil {
				it.msgs = append(it.msgs, outs...)
				sm.out.Add(float64(len(outs)))
			}
		}
	}
}

// route returns the sinks whose `when` holds for out. A condition that
// cannot be evaluated (an expression error, a payload too large to read)
// is permanent: the message is dead-lettered for that sink at once. An
// error means the routing itself failed and out must come back: the
// payload could not be read for a condition (retryable), or a dead letter
// could not be written.
func (p *pipeline) route(out *Message) ([]*sinkRunner, error) {
	var env map[string]any
	var envErr error
	var targets []*sinkRunner
	for i, r := range p.sinks {
		if prog := p.routes[i]; prog != nil {
			if env == nil && envErr == nil {
				env, envErr = p.routeEnv(out)
				if envErr != nil && !IsPermanent(envErr) {
					return nil, fmt.Errorf("sink %s: when %q: %w", r.spec.Name, r.spec.When, envErr)
				}
			}
			ok, err := any(nil), envErr
			if err == nil {
				ok, err = expr.Run(prog, env)
			}
			if err != nil {
				if err := r.deadLetter(out, 1, fmt.Errorf("when %q: %w", r.spec.When, err), whenStage(r.spec.Name)); err != nil {
					return nil, err
				}
				continue
			}
			if ok != true {
				continue
			}
		}
		targets = append(targets, r)
	}
	return targets, nil
}

// maxRouteBytes bounds a claim-checked payload that a when expression
// reads: routing needs it parsed whole.
const maxRouteBytes = 16 << 20

// routeEnv is the payload as a when expression sees it: a JSON object's
// fields, or nothing for anything else. A claim-checked payload is read from the object store
// (verified), up to maxRouteBytes.
func (p *pipeline) routeEnv(m *Message) (map[string]any, error) {
	data := m.Data
	if m.Claimed() {
		if size := m.Size(); size > maxRouteBytes {
			return nil, Permanent(fmt.Errorf("the payload (%d bytes) is over the %d bytes a when expression may read", size, maxRouteBytes))
		}
		var err error
		if data, err = m.Bytes(p.ctx); err != nil {
			return nil, err
		}
	}
	var env map[string]any
	if json.Unmarshal(data, &env) != nil || env == nil {
		env = map[string]any{}
	}
	return env, nil
}

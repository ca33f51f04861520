package runtime

import (
	"context"
	"encoding/hex"
	"math/rand/v2"
	"net/http"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Tracing: every message carries a W3C trace context in its traceparent
// (and tracestate) header from the moment it is emitted, through every
// stage, retry, dead letter and replay, to the sinks. A message that
// arrives without one, or with one that is malformed, starts a new trace
// here; it is never refused for it.
//
// With a TracerProvider (Config.Tracing: vrsky serve --otlp-endpoint),
// each stage also makes an OpenTelemetry span: "ingest" when the source's
// message is made durable (a child of the caller's span when the message
// came with a traceparent), then "step:<name>" for each step, "route" and
// "sink:<name>" for each delivery attempt, all children of the ingest
// span, whose context the message carries from then on. A sink attempt
// sees the message's traceparent with its own span as the parent, so the
// services behind an HTTP sink join the trace under it.
//
// Without one nothing is recorded and the hot path pays only for the
// header: a message that arrived with a valid traceparent keeps it as it
// is (checked without allocating), and one without gets a new one.

// Span names of the stages that are not a Stage.
const spanIngest = "ingest"

// Span attribute keys.
const (
	attrTenant      = attribute.Key("vrsky.tenant")
	attrIntegration = attribute.Key("vrsky.integration")
	attrStage       = attribute.Key("vrsky.stage")
	attrAttempt     = attribute.Key("vrsky.attempt")
	attrMsgID       = attribute.Key("messaging.message.id")
)

// tracerName names the engine's tracer (the instrumentation scope).
const tracerName = "github.com/vrsky/vrsky/runtime"

// span is one stage's span; the zero value (tracing off) does nothing.
type span struct{ s trace.Span }

// end records err (when not nil) on the span and ends it. Ending twice is
// harmless.
func (s span) end(err error) {
	if s.s == nil {
		return
	}
	if err != nil {
		s.s.RecordError(err)
		s.s.SetStatus(codes.Error, clip(err.Error()))
	}
	s.s.End()
}

// inject sets h's traceparent to the span's context, so that the stage's
// connector (an HTTP sink) passes the span on as the parent, and returns
// the previous value for restore. It does nothing on the zero span.
func (s span) inject(h Header) []string {
	if s.s == nil {
		return nil
	}
	prev := h[HeaderTraceparent]
	h[HeaderTraceparent] = []string{formatTraceparent(s.s.SpanContext())}
	return prev
}

// restore undoes inject: the message keeps the ingest span's context for
// its dead letter and its replay.
func (s span) restore(h Header, prev []string) {
	if s.s == nil {
		return
	}
	if prev == nil {
		delete(h, HeaderTraceparent)
		return
	}
	h[HeaderTraceparent] = prev
}

// carrier reads and writes a message's trace headers for the propagator.
func carrier(h Header) propagation.HeaderCarrier { return propagation.HeaderCarrier(http.Header(h)) }

// ingest makes sure msg carries a valid trace context and, when tracing is
// on, starts its ingest span, whose context msg carries from then on.
// msg.ID and msg.Header are set.
func (p *pipeline) ingest(ctx context.Context, msg *Message) span {
	tp := msg.Header[HeaderTraceparent]
	valid := len(tp) == 1 && validTraceparent(tp[0])
	if !valid {
		// A tracestate belongs to the traceparent it came with.
		delete(msg.Header, HeaderTracestate)
	}
	if p.e.tracer == nil {
		if !valid {
			msg.Header[HeaderTraceparent] = []string{newTraceparent()}
		}
		return span{}
	}
	if valid {
		ctx = propagation.TraceContext{}.Extract(ctx, carrier(msg.Header))
	}
	_, s := p.e.tracer.Start(ctx, spanIngest, trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(attrTenant.String(p.tenant), attrIntegration.String(p.spec.Name), attrStage.String(spanIngest), attrMsgID.String(msg.ID)))
	delete(msg.Header, HeaderTracestate) // set again from the span's, when it has one
	propagation.TraceContext{}.Inject(trace.ContextWithSpan(context.Background(), s), carrier(msg.Header))
	return span{s}
}

// stageSpan starts the span of one stage's work on msg (attempt counts
// from 1; 0 leaves it out), a child of the span msg's traceparent names.
// It returns the zero span when tracing is off.
func (p *pipeline) stageSpan(h Header, id string, stage Stage, attempt int, kind trace.SpanKind) span {
	if p.e.tracer == nil {
		return span{}
	}
	return startStageSpan(p.e.tracer, h, p.tenant, p.spec.Name, id, stage.String(), attempt, kind)
}

func startStageSpan(t trace.Tracer, h Header, tenant, integration, id, stage string, attempt int, kind trace.SpanKind) span {
	ctx := propagation.TraceContext{}.Extract(context.Background(), carrier(h))
	attrs := []attribute.KeyValue{attrTenant.String(tenant), attrIntegration.String(integration), attrStage.String(stage), attrMsgID.String(id)}
	if attempt > 0 {
		attrs = append(attrs, attrAttempt.Int(attempt))
	}
	_, s := t.Start(ctx, stage, trace.WithSpanKind(kind), trace.WithAttributes(attrs...))
	return span{s}
}

// traceIDOf is the trace id of a message's traceparent ("" without a
// valid one), for tracking records and logs. It does not allocate.
func traceIDOf(h Header) string {
	tp := h[HeaderTraceparent]
	if len(tp) != 1 || !validTraceparent(tp[0]) {
		return ""
	}
	return tp[0][3:35]
}

// validTraceparent reports whether s is a traceparent that
// propagation.TraceContext accepts (the fuzz test holds the two to the same
// answers), without allocating: version 00 is exactly
// 00-<32 hex trace id>-<16 hex span id>-<2 hex flags> with lower-case hex,
// neither id all zeros and no reserved flag bits; a later version (not ff)
// may add fields after another '-'.
func validTraceparent(s string) bool {
	if len(s) < 55 || s[2] != '-' || s[35] != '-' || s[52] != '-' {
		return false
	}
	ver, ok := hexByte(s[0], s[1])
	if !ok || ver == 0xff {
		return false
	}
	flags, ok := hexByte(s[53], s[54])
	if !ok {
		return false
	}
	if ver == 0 && (len(s) != 55 || flags > 3) {
		return false
	}
	if ver != 0 && len(s) > 55 && s[55] != '-' {
		return false
	}
	return nonZeroHex(s[3:35]) && nonZeroHex(s[36:52])
}

// nonZeroHex reports whether s is lower-case hex with a digit other than 0.
func nonZeroHex(s string) bool {
	nonZero := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '0':
		case c >= '1' && c <= '9', c >= 'a' && c <= 'f':
			nonZero = true
		default:
			return false
		}
	}
	return nonZero
}

func hexByte(hi, lo byte) (byte, bool) {
	h, ok1 := hexVal(hi)
	l, ok2 := hexVal(lo)
	return h<<4 | l, ok1 && ok2
}

func hexVal(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

// newTraceparent starts a new trace: random trace and span ids, marked
// sampled so that the services behind the sinks record their part.
func newTraceparent() string {
	var tid trace.TraceID
	var sid trace.SpanID
	for !tid.IsValid() {
		putUint64(tid[:8], rand.Uint64())
		putUint64(tid[8:], rand.Uint64())
	}
	for !sid.IsValid() {
		putUint64(sid[:], rand.Uint64())
	}
	return formatTraceparent(trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled}))
}

func putUint64(b []byte, v uint64) {
	for i := range 8 {
		b[i] = byte(v >> (56 - 8*i))
	}
}

// formatTraceparent writes sc as a version 00 traceparent, in one
// allocation.
func formatTraceparent(sc trace.SpanContext) string {
	var b [55]byte
	b[0], b[1], b[2] = '0', '0', '-'
	tid, sid := sc.TraceID(), sc.SpanID()
	hex.Encode(b[3:35], tid[:])
	b[35] = '-'
	hex.Encode(b[36:52], sid[:])
	b[52] = '-'
	hex.Encode(b[53:55], []byte{byte(sc.TraceFlags() & (trace.FlagsSampled | trace.FlagsRandom))})
	return string(b[:])
}

package runtime

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// otelAccepts is the reference: whether the otel propagation package's
// W3C parser takes tp.
func otelAccepts(tp string) bool {
	h := http.Header{}
	h.Set("Traceparent", tp)
	ctx := propagation.TraceContext{}.Extract(context.Background(), propagation.HeaderCarrier(h))
	return trace.SpanContextFromContext(ctx).IsValid()
}

var traceparentCases = []struct {
	name, tp string
	valid    bool
}{
	{"version 00, sampled", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", true},
	{"version 00, not sampled", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", true},
	{"random flag", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03", true},
	{"reserved flag bits in version 00", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09", false},
	{"upper-case hex", "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01", false},
	{"zero trace id", "00-00000000000000000000000000000000-00f067aa0ba902b7-01", false},
	{"zero span id", "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", false},
	{"version ff", "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", false},
	{"later version with more fields", "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-ever", true},
	{"later version glued to the flags", "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01what", false},
	{"version 00 with more fields", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x", false},
	{"short trace id", "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01", false},
	{"not hex", "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01", false},
	{"garbage", "hello", false},
	{"empty", "", false},
	{"wrong separators", "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01", false},
}

// TestValidTraceparent holds the allocation-free check to the answers of
// otel's parser, case by case.
func TestValidTraceparent(t *testing.T) {
	for _, tc := range traceparentCases {
		t.Run(tc.name, func(t *testing.T) {
			if got := validTraceparent(tc.tp); got != tc.valid {
				t.Errorf("validTraceparent(%q) = %v, want %v", tc.tp, got, tc.valid)
			}
			if ref := otelAccepts(tc.tp); ref != tc.valid {
				t.Errorf("otel's parser says %v for %q; the table says %v", ref, tc.tp, tc.valid)
			}
		})
	}
}

// FuzzValidTraceparent: on any input, validTraceparent answers as otel's
// parser does, and the trace id it hands out is the one otel reads.
func FuzzValidTraceparent(f *testing.F) {
	for _, tc := range traceparentCases {
		f.Add(tc.tp)
	}
	f.Fuzz(func(t *testing.T, tp string) {
		if strings.ContainsAny(tp, "\r\n") {
			return // not a header value
		}
		got, want := validTraceparent(tp), otelAccepts(tp)
		if got != want {
			t.Fatalf("validTraceparent(%q) = %v, otel's parser says %v", tp, got, want)
		}
		if got {
			h := http.Header{}
			h.Set("Traceparent", tp)
			sc := trace.SpanContextFromContext(propagation.TraceContext{}.Extract(context.Background(), propagation.HeaderCarrier(h)))
			if id := traceIDOf(Header{HeaderTraceparent: {tp}}); id != sc.TraceID().String() {
				t.Fatalf("traceIDOf(%q) = %q, otel reads %s", tp, id, sc.TraceID())
			}
		}
	})
}

// TestNewTraceparent: a started trace is valid, sampled, and new each time.
func TestNewTraceparent(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		tp := newTraceparent()
		if !validTraceparent(tp) || !otelAccepts(tp) || !strings.HasSuffix(tp, "-01") {
			t.Fatalf("newTraceparent() = %q: not a valid sampled traceparent", tp)
		}
		if seen[tp[3:35]] {
			t.Fatalf("trace id %s twice", tp[3:35])
		}
		seen[tp[3:35]] = true
	}
}

// The tracing-off costs on the hot path, per message (make bench):
// checking a traceparent that came with the message, the stage-span calls
// a stage makes (nothing, with tracing off), and starting a trace for a
// message that came without one (its header value).
func BenchmarkTraceOff(b *testing.B) {
	p := &pipeline{e: &Engine{}, tenant: "acme", spec: &Spec{Name: "orders"}}
	ctx := context.Background()
	b.Run("ingest-with-traceparent", func(b *testing.B) {
		h := Header{HeaderTraceparent: {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}}
		msg := &Message{ID: "m", Header: h}
		b.ReportAllocs()
		for b.Loop() {
			p.ingest(ctx, msg).end(nil)
		}
	})
	b.Run("stage-spans", func(b *testing.B) {
		h := Header{HeaderTraceparent: {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}}
		b.ReportAllocs()
		for b.Loop() {
			sp := p.stageSpan(h, "m", sinkStage("api"), 1, trace.SpanKindClient)
			prev := sp.inject(h)
			sp.restore(h, prev)
			sp.end(nil)
		}
	})
	b.Run("ingest-new-trace", func(b *testing.B) {
		msg := &Message{ID: "m", Header: Header{}}
		b.ReportAllocs()
		for b.Loop() {
			delete(msg.Header, HeaderTraceparent)
			p.ingest(ctx, msg).end(nil)
		}
	})
}

// TestWireHeader: the published form renames Traceparent and nothing else,
// shares the value slices, and leaves no Vrsky-Traceparent of a step's
// beside the message's own.
func TestWireHeader(t *testing.T) {
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	for _, tc := range []struct {
		name string
		in   Header
		want map[string]string
	}{
		{"with a trace context", Header{HeaderTraceparent: {tp}, HeaderMsgID: {"m1"}},
			map[string]string{headerTraceWire: tp, HeaderMsgID: "m1"}},
		{"without", Header{HeaderMsgID: {"m1"}}, map[string]string{HeaderMsgID: "m1"}},
		{"a step's Vrsky-Traceparent beside the message's", Header{HeaderTraceparent: {tp}, headerTraceWire: {"forged"}},
			map[string]string{headerTraceWire: tp}},
		{"a step's Vrsky-Traceparent alone", Header{headerTraceWire: {"forged"}, HeaderMsgID: {"m1"}},
			map[string]string{HeaderMsgID: "m1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := wireHeader(tc.in, 2)
			if len(w) != len(tc.want) {
				t.Fatalf("wireHeader = %v, want %v", w, tc.want)
			}
			for k, v := range tc.want {
				if got := w[k]; len(got) != 1 || got[0] != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
			if id, ok := w[HeaderMsgID]; ok && &id[0] != &tc.in[HeaderMsgID][0] {
				t.Error("the value slice was copied, not shared")
			}
		})
	}
}

package runtime_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/vrsky/vrsky/runtime"
	"github.com/vrsky/vrsky/runtime/runtimetest"
)

// failAtEOF is a body whose reader refuses it at the end, as a reader that
// checks a signature does.
type failAtEOF struct{ r io.Reader }

var errBadSignature = errors.New("signature mismatch")

func (f failAtEOF) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if err == io.EOF {
		return n, errBadSignature
	}
	return n, err
}

func TestStreamedPayloads(t *testing.T) {
	h, bs := newBlobHarness(t, nil)
	sink := h.Sinks.New(nil)
	h.Create(t, "name: big\nsource: {connector: test-source}\nsinks: [{name: out, connector: test-sink, config: "+sink.Config()+"}]\n")
	emit := h.Emitter(t, "big")
	ctx := context.Background()

	for _, tc := range []struct {
		name    string
		size    int
		claimed bool
	}{
		{"small", 100, false},
		{"exactly the threshold", runtime.DefaultClaimThreshold, false},
		{"one byte over", runtime.DefaultClaimThreshold + 1, true},
		{"10 MiB", 10 << 20, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			payload := bytes.Repeat([]byte("x"), tc.size)
			msg := &runtime.Message{Stream: bytes.NewReader(payload)}
			if err := emit.Emit(ctx, msg); err != nil {
				t.Fatalf("Emit: %v", err)
			}
			var got runtimetest.Delivery
			runtimetest.WaitFor(t, 30*time.Second, "the delivery", func() bool {
				var ok bool
				got, ok = sink.Delivery(msg.ID)
				return ok
			})
			if !bytes.Equal(got.Body, payload) || got.Claimed != tc.claimed {
				t.Fatalf("delivered %d bytes (claim-checked %v), want %d (claim-checked %v)", len(got.Body), got.Claimed, tc.size, tc.claimed)
			}
			if tc.claimed {
				key := payloadKey("big", msg.ID)
				runtimetest.WaitFor(t, 10*time.Second, "the object deleted after delivery", func() bool { return !objectExists(t, bs, key) })
			}
		})
	}

	t.Run("a reader that fails stores nothing", func(t *testing.T) {
		for _, size := range []int{100, 2 << 20} {
			msg := &runtime.Message{Stream: failAtEOF{bytes.NewReader(bytes.Repeat([]byte("y"), size))}}
			err := emit.Emit(ctx, msg)
			if !errors.Is(err, runtime.ErrPayloadRead) || !errors.Is(err, errBadSignature) {
				t.Fatalf("Emit of a %d-byte body whose reader fails = %v, want ErrPayloadRead wrapping the reader's error", size, err)
			}
			if objectExists(t, bs, payloadKey("big", msg.ID)) {
				t.Fatalf("an object was left for the refused %d-byte body", size)
			}
		}
		// An emit returns once its message is stored, so nothing can be on
		// its way: the stream holds the 4 good messages it ever stored (one
		// copy each, on the sink's subject), and the sink got those.
		s, err := h.TenantConn(t).JS.Stream(ctx, "VRSKY_acme_big")
		if err != nil {
			t.Fatal(err)
		}
		info, err := s.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.State.LastSeq != 4 {
			t.Fatalf("the stream stored %d messages, want only the 4 good ones", info.State.LastSeq)
		}
		if st := h.Engine.Status(ctx, "acme", &runtime.Spec{Name: "big"}); st.Ingested != 4 {
			t.Fatalf("%d messages ingested, want only the 4 good ones", st.Ingested)
		}
		if n := len(sink.Delivered()); n != 4 {
			t.Fatalf("%d deliveries, want only the 4 good messages", n)
		}
	})
}

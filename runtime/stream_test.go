package runtime_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/vrsky/vrsky/platform/blob"
	"github.com/vrsky/vrsky/runtime"
	"github.com/vrsky/vrsky/runtime/runtimetest"
)

// bodies is a sink that reads every payload, inline or claim-checked.
type bodies struct {
	mu      sync.Mutex
	got     map[string][]byte
	claimed map[string]bool
}

func (b *bodies) connector() runtime.Connector {
	return runtime.Connector{
		Name: "bodies", Version: "1.0.0", Kind: runtime.KindSink,
		NewSink: func(json.RawMessage, runtime.Env) (runtime.Sink, error) { return b, nil },
	}
}

func (b *bodies) Deliver(ctx context.Context, m *runtime.Message) error {
	data, err := m.Bytes(ctx)
	if err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.got[m.ID], b.claimed[m.ID] = data, m.Claimed()
	return nil
}

func (b *bodies) Close() error { return nil }

func (b *bodies) of(id string) ([]byte, bool, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	data, ok := b.got[id]
	return data, b.claimed[id], ok
}

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
	src, sink := newTap(), &bodies{got: map[string][]byte{}, claimed: map[string]bool{}}
	var bs blob.Store
	h := runtimetest.Start(t, []runtime.Connector{src.connector(), sink.connector()}, func(c *runtime.Config) {
		var err error
		if bs, err = blob.NewNATS(context.Background(), c.Conn.JS, "vrsky-objects", 1); err != nil {
			t.Fatal(err)
		}
		c.Blobs = bs
	})
	h.Create(t, "name: big\nsource: {connector: tap}\nsinks: [{name: out, connector: bodies}]\n")
	emit := <-src.em
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
			var got []byte
			var claimed bool
			runtimetest.WaitFor(t, 30*time.Second, "the delivery", func() bool {
				var ok bool
				got, claimed, ok = sink.of(msg.ID)
				return ok
			})
			if !bytes.Equal(got, payload) || claimed != tc.claimed {
				t.Fatalf("delivered %d bytes (claim-checked %v), want %d (claim-checked %v)", len(got), claimed, tc.size, tc.claimed)
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
		time.Sleep(500 * time.Millisecond)
		sink.mu.Lock()
		n := len(sink.got)
		sink.mu.Unlock()
		if n != 4 {
			t.Fatalf("%d deliveries, want only the 4 good messages", n)
		}
	})
}

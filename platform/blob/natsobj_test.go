package blob_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vrsky/vrsky/platform/blob"
	"github.com/vrsky/vrsky/platform/blob/blobtest"
	"github.com/vrsky/vrsky/platform/natsx/natsxtest"
)

func TestNATSContract(t *testing.T) {
	blobtest.Run(t, func(t *testing.T) blob.Store {
		conn := natsxtest.Start(t)
		s, err := blob.NewNATS(context.Background(), conn.JS, "objects", conn.Replicas)
		if err != nil {
			t.Fatalf("NewNATS: %v", err)
		}
		return s
	})
}

// TestNATSUnavailable checks that operations on a closed connection report
// ErrUnavailable.
func TestNATSUnavailable(t *testing.T) {
	conn := natsxtest.Start(t)
	s, err := blob.NewNATS(context.Background(), conn.JS, "objects", 1)
	if err != nil {
		t.Fatalf("NewNATS: %v", err)
	}
	conn.NC.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, c := range []struct {
		name string
		call func() error
	}{
		{"Put", func() error { _, err := s.Put(ctx, "k", bytes.NewReader([]byte("x"))); return err }},
		{"Get", func() error { _, _, err := s.Get(ctx, "k"); return err }},
		{"Stat", func() error { _, err := s.Stat(ctx, "k"); return err }},
		{"Delete", func() error { return s.Delete(ctx, "k") }},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := c.call(); !errors.Is(err, blob.ErrUnavailable) {
				t.Errorf("%s on a closed connection: %v, want ErrUnavailable", c.name, err)
			}
		})
	}
}

// The store writes objects itself (bounded chunks in flight): the NATS
// client's own object store must read them as its own, and a replaced
// object's chunks must leave the stream.
func TestNATSObjectFormat(t *testing.T) {
	conn := natsxtest.Start(t)
	ctx := context.Background()
	s, err := blob.NewNATS(ctx, conn.JS, "objects", 1)
	if err != nil {
		t.Fatalf("NewNATS: %v", err)
	}
	first := bytes.Repeat([]byte("0123456789abcdef"), 40000) // 640,000 bytes: 5 chunks
	if _, err := s.Put(ctx, "payloads/acme/x/1", bytes.NewReader(first)); err != nil {
		t.Fatal(err)
	}
	obs, err := conn.JS.ObjectStore(ctx, "objects")
	if err != nil {
		t.Fatal(err)
	}
	got, err := obs.GetBytes(ctx, "payloads/acme/x/1")
	if err != nil || !bytes.Equal(got, first) {
		t.Fatalf("the client's Get: %d bytes, err %v; want the %d written", len(got), err, len(first))
	}
	info, err := obs.GetInfo(ctx, "payloads/acme/x/1")
	if err != nil || info.Chunks != 5 || info.Size != uint64(len(first)) {
		t.Fatalf("the client's GetInfo: %+v, %v", info, err)
	}
	// Replace it with one chunk: the stream keeps 1 chunk + 1 meta.
	if _, err := s.Put(ctx, "payloads/acme/x/1", bytes.NewReader([]byte("small"))); err != nil {
		t.Fatal(err)
	}
	st, err := conn.JS.Stream(ctx, "OBJ_objects")
	if err != nil {
		t.Fatal(err)
	}
	si, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if si.State.Msgs != 2 {
		t.Fatalf("the stream holds %d messages after the replace, want 2 (the old chunks purged)", si.State.Msgs)
	}
	if err := s.Delete(ctx, "payloads/acme/x/1"); err != nil {
		t.Fatal(err)
	}
	if _, err := obs.GetInfo(ctx, "payloads/acme/x/1"); !errors.Is(err, jetstream.ErrObjectNotFound) {
		t.Fatalf("after Delete the client's GetInfo says %v", err)
	}
}

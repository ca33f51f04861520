package blob_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

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

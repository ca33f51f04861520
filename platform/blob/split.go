package blob

import (
	"context"
	"errors"
	"io"
	"strings"
	"time"
)

// Split keeps the keys under one prefix in another store: `vrsky serve`
// with its embedded NATS server puts claim-check payloads ("payloads/")
// in a DirStore and everything else (Wasm modules) in the NATS Object
// Store. Reads and deletes of a prefixed key that the prefixed store does
// not have go on to the other store, so payloads written there before
// (by an earlier version, or with another setting) are still delivered
// and cleaned up.
type Split struct {
	Prefix string // e.g. "payloads/"
	Under  Store  // keys under Prefix
	Rest   Store  // every other key, and the fallback for Prefix
}

func (s Split) under(key string) bool { return strings.HasPrefix(key, s.Prefix) }

// Put implements Store.
func (s Split) Put(ctx context.Context, key string, r io.Reader) (Info, error) {
	if s.under(key) {
		return s.Under.Put(ctx, key, r)
	}
	return s.Rest.Put(ctx, key, r)
}

// Get implements Store.
func (s Split) Get(ctx context.Context, key string) (io.ReadCloser, Info, error) {
	if s.under(key) {
		r, info, err := s.Under.Get(ctx, key)
		if !errors.Is(err, ErrNotFound) {
			return r, info, err
		}
	}
	return s.Rest.Get(ctx, key)
}

// Stat implements Store.
func (s Split) Stat(ctx context.Context, key string) (Info, error) {
	if s.under(key) {
		info, err := s.Under.Stat(ctx, key)
		if !errors.Is(err, ErrNotFound) {
			return info, err
		}
	}
	return s.Rest.Stat(ctx, key)
}

// Delete implements Store.
func (s Split) Delete(ctx context.Context, key string) error {
	if s.under(key) {
		if err := s.Under.Delete(ctx, key); err != nil {
			return err
		}
	}
	return s.Rest.Delete(ctx, key)
}

// Sweep implements Sweeper on whichever of the two stores can sweep.
func (s Split) Sweep(ctx context.Context, prefix string, cutoff time.Time) (int, error) {
	n := 0
	for _, st := range []Store{s.Under, s.Rest} {
		if sw, ok := st.(Sweeper); ok {
			m, err := sw.Sweep(ctx, prefix, cutoff)
			n += m
			if err != nil {
				return n, err
			}
		}
	}
	return n, nil
}

// Package blob defines VRSky's object store: claim-check payloads and Wasm
// modules. The embedded default is the NATS Object Store (NewNATS), with
// claim-check payloads on the local disk (NewDir, joined by Split);
// production deployments use S3-compatible storage. Every implementation
// passes the same contract suite in package blobtest.
package blob

import (
	"context"
	"errors"
	"io"
	"time"
)

var (
	// ErrNotFound: no object under that key.
	ErrNotFound = errors.New("object not found")
	// ErrUnavailable: the backend cannot be reached right now; retry later.
	ErrUnavailable = errors.New("object store unavailable")
	// ErrCorrupt: a stored object does not read back as it was written
	// (its size or SHA-256 differs); reading it again will not help.
	ErrCorrupt = errors.New("stored object is corrupt")
)

// Info describes a stored object.
type Info struct {
	// Key is the object's name within the store.
	Key string
	// Size in bytes.
	Size int64
	// SHA256 is the hex SHA-256 digest of the content, computed on Put.
	SHA256 string
}

// Store keeps opaque objects by key. Keys are slash-separated paths of
// [A-Za-z0-9._-] segments, e.g. "payloads/acme/orders/<id>" (ValidateKey;
// other keys fail with ErrInvalidKey). Implementations are safe for
// concurrent use; concurrent Puts of one key leave one of them, whole.
// Errors wrap ErrNotFound, ErrUnavailable, ErrInvalidKey and ErrCorrupt
// for errors.Is.
type Store interface {
	// Put streams r into the object named key, replacing any previous one,
	// and returns its size and digest. It never buffers the whole object.
	Put(ctx context.Context, key string, r io.Reader) (Info, error)
	// Get opens the object for streaming; the caller closes the reader.
	// The reader returns an error wrapping ErrCorrupt instead of io.EOF if
	// the content does not match the stored digest. A failed Put leaves
	// the previous object (or none) in place.
	Get(ctx context.Context, key string) (io.ReadCloser, Info, error)
	// Stat returns the object's Info without reading it.
	Stat(ctx context.Context, key string) (Info, error)
	// Delete removes the object; deleting a missing object is not an error.
	Delete(ctx context.Context, key string) error
}

// Sweeper is a Store that can delete its old objects under a key prefix:
// the janitor of claim-check payloads that no message names any more.
type Sweeper interface {
	// Sweep deletes the objects whose key starts with prefix and that were
	// last written before cutoff, and reports how many it deleted.
	Sweep(ctx context.Context, prefix string, cutoff time.Time) (int, error)
}

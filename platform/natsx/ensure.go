package natsx

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// EnsureTimeout bounds Ensure as a whole: creating a replicated bucket or
// stream waits for its replicas to elect a leader, which on a cluster just
// formed, or on a busy machine, takes more than one operation's timeout.
const EnsureTimeout = 30 * time.Second

// EnsureAttempt bounds one attempt of Ensure.
const EnsureAttempt = 8 * time.Second

// ensurePause is the wait between two attempts.
const ensurePause = 200 * time.Millisecond

// Ensure calls open, which creates or opens one JetStream stream, key-value
// bucket or object store (CreateOrUpdateKeyValue, CreateObjectStore, a
// create-or-bind of its own...), until it succeeds, fails for good, or
// EnsureTimeout (or ctx) ends. Each call gets its own EnsureAttempt.
//
// It exists for nodes that start together on a fresh cluster and race to
// create the same replicated stream. With nats-server 2.15.2 one node's
// create and another's update of it, at once, can leave both requests
// unanswered although the stream ends up as asked; a create can find the
// stream another node just made ("stream name already in use", or the
// bucket exists); and a cluster just formed can have no peers to place
// the replicas on, or no meta leader yet; and a stream another node's
// create placed can answer "not found" until its replicas have it. Each
// is answered by trying again: the next attempt finds the stream and
// opens or updates it.
// Every other error is returned at once.
func Ensure[T any](ctx context.Context, open func(context.Context) (T, error)) (T, error) {
	ctx, cancel := context.WithTimeout(ctx, EnsureTimeout)
	defer cancel()
	for {
		actx, acancel := context.WithTimeout(ctx, EnsureAttempt)
		v, err := open(actx)
		again := err != nil && (actx.Err() != nil || EnsureRetryable(err))
		acancel()
		if !again || ctx.Err() != nil {
			return v, err
		}
		select {
		case <-ctx.Done():
			return v, err
		case <-time.After(ensurePause):
		}
	}
}

// EnsureRetryable reports the errors Ensure tries again after: a
// timeout, no peers for placement (10005), JetStream temporarily
// unavailable (10008), a stream or bucket another node created at the
// same moment (10058, ErrBucketExists), and "stream not found" (10059):
// the stream another node's create placed, whose info is asked before
// its replicas have it, so that opening it after a create that found it
// existing fails once (TestNATSOpenConcurrentR3 in platform/store).
func EnsureRetryable(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, jetstream.ErrBucketExists) || errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) ||
		errors.Is(err, jetstream.ErrStreamNotFound) {
		return true
	}
	var ae *jetstream.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode {
		case 10005, // no suitable peers for placement
			10008,                              // JetStream system temporarily unavailable
			jetstream.JSErrCodeStreamNameInUse: // already in use with a different configuration
			return true
		}
	}
	return false
}

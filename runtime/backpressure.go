package runtime

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vrsky/vrsky/runtime/connector"
)

// Back-pressure: each integration's stream is bounded (messages and
// bytes), and a tenant with a storage quota has its account bounded (all
// its streams together). When either is 90% full, sources are refused
// rather than accepting what cannot be kept: with ErrBackpressure for the
// stream's own bounds, and with a QuotaError naming
// quotas.max_storage_bytes (which wraps ErrBackpressure) for the tenant's
// quota. The webhook answers 429 with Retry-After to both.

// ErrBackpressure: the integration's stream is (nearly) full; retry later.
var ErrBackpressure = connector.ErrBackpressure

// fullness is what pipeline.full holds: whether, and why, sources are
// refused.
type fullness = int32

const (
	roomy       fullness = iota // room to spare
	streamFull                  // the stream is near its own bounds
	quotaFull                   // the tenant's account holds 90% of its storage quota or more
	quotaUsedUp                 // JetStream refused a write at the quota (until watchUsage looks again)
)

// backpressure is the refusal a source gets while p is full, nil while
// there is room.
func (p *pipeline) backpressure() error {
	switch p.full.Load() {
	case streamFull:
		return ErrBackpressure
	case quotaFull:
		return &QuotaError{
			Quota:      QuotaStorageBytes,
			Reason:     fmt.Sprintf("tenant %s has used %.0f%% or more of its storage quota: new messages are refused until its sinks have taken some of those it holds", p.tenant, 100*backpressureRatio),
			RetryAfter: time.Second,
			Err:        ErrBackpressure,
		}
	case quotaUsedUp:
		return p.usedUp(nil)
	}
	return nil
}

// usedUp is the refusal of a message JetStream refused (err) because the
// tenant's account is at its storage quota, and of those that come after
// it until watchUsage looks again.
func (p *pipeline) usedUp(err error) error {
	return &QuotaError{
		Quota:      QuotaStorageBytes,
		Reason:     "tenant " + p.tenant + " has used up its storage quota; messages are kept until sinks take them",
		RetryAfter: usagePollInterval,
		Err:        err,
	}
}

// Stream bounds when Config leaves them zero.
const (
	DefaultStreamMaxMsgs  = 1_000_000
	DefaultStreamMaxBytes = 1 << 30
	backpressureRatio     = 0.9
	usagePollInterval     = 250 * time.Millisecond
)

// watchUsage refreshes p.full until the pipeline stops: the stream's
// bounds (maxBytes < 0: none) and, with a storage quota, the account's.
func (p *pipeline) watchUsage(maxMsgs, maxBytes, quota int64) {
	t := time.NewTicker(usagePollInterval)
	defer t.Stop()
	for {
		ctx, cancel := context.WithTimeout(p.srcCtx, 2*time.Second)
		s, err := p.conn.JS.Stream(ctx, streamName(p.tenant, p.spec.Name))
		if err == nil {
			if info, err := s.Info(ctx); err == nil {
				st := info.State
				full := roomy
				if float64(st.Msgs) >= backpressureRatio*float64(maxMsgs) ||
					(maxBytes > 0 && float64(st.Bytes) >= backpressureRatio*float64(maxBytes)) {
					full = streamFull
				} else if quota > 0 {
					if ai, err := p.conn.JS.AccountInfo(ctx); err == nil && float64(ai.Store) >= backpressureRatio*float64(quota) {
						full = quotaFull
					}
				}
				p.full.Store(full)
			}
		}
		cancel()
		select {
		case <-p.srcCtx.Done():
			return
		case <-t.C:
		}
	}
}

// isStreamFull recognises JetStream refusing a publish on a full stream
// (discard-new policy). The server answers every store failure with one
// code, JSStreamStoreFailedF (10077), whose description is the store's
// error: ErrMaxMsgs or ErrMaxBytes of nats-server's store.go for a stream
// at its bounds.
func isStreamFull(err error) bool {
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) || apiErr.ErrorCode != jsStreamStoreFailed {
		return false
	}
	return apiErr.Description == storeMaxMsgs || apiErr.Description == storeMaxBytes
}

// What nats-server answers a publish to a stream at its bounds.
const (
	jsStreamStoreFailed jetstream.ErrorCode = 10077 // JSStreamStoreFailedF
	storeMaxMsgs                            = "maximum messages exceeded"
	storeMaxBytes                           = "maximum bytes exceeded"
)

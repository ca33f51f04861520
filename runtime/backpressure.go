package runtime

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vrsky/vrsky/runtime/connector"
)

// Back-pressure: each integration's stream is bounded (messages and
// bytes), and a tenant with a storage quota has its account bounded
// (all its streams together). When either is 90% full, sources are
// refused with ErrBackpressure — the webhook answers 429 with Retry-After
// — rather than accepting what the stream cannot keep.

// ErrBackpressure: the integration's stream is (nearly) full; retry later.
var ErrBackpressure = connector.ErrBackpressure

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
				full := float64(st.Msgs) >= backpressureRatio*float64(maxMsgs) ||
					(maxBytes > 0 && float64(st.Bytes) >= backpressureRatio*float64(maxBytes))
				if quota > 0 && !full {
					if ai, err := p.conn.JS.AccountInfo(ctx); err == nil {
						full = float64(ai.Store) >= backpressureRatio*float64(quota)
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

package runtime

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vrsky/vrsky/platform/natsx"
)

// Singleton sources run on the node that holds the integration's lease: a
// key in the KV bucket vrsky_leases, created by the leader and renewed
// every leaseRenew. The bucket's TTL expires a lease whose node died, so
// another node takes over within leaseTTL. A leader that cannot renew
// stops its source at once, before the lease can expire elsewhere.

const leaseBucket = "vrsky_leases"

// DefaultLeaseTTL is how long a dead node's singleton sources wait for
// another node. A lease is renewed every third of it, and a standby node
// tries to take it every tenth (at most every 2s).
const DefaultLeaseTTL = 15 * time.Second

func newLeaseBucket(ctx context.Context, js jetstream.JetStream, replicas int, leaseTTL time.Duration) (jetstream.KeyValue, error) {
	kv, err := natsx.Ensure(ctx, func(ctx context.Context) (jetstream.KeyValue, error) {
		return js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket:      leaseBucket,
			Description: "VRSky singleton-source leases",
			History:     1,
			TTL:         leaseTTL,
			Storage:     jetstream.FileStorage,
			Replicas:    replicas,
		})
	})
	if err != nil {
		return nil, fmt.Errorf("lease bucket: %w", err)
	}
	return kv, nil
}

// runLeased runs src whenever this node holds the lease, until ctx ends or
// src fails.
func (p *pipeline) runLeased(ctx context.Context, src Source) error {
	kv, key, node := p.e.leases, p.tenant+"."+p.spec.Name, []byte(p.e.node)
	leaseRetry := min(2*time.Second, p.e.leaseTTL/10)
	for {
		rev, err := kv.Create(ctx, key, node)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if !errors.Is(err, jetstream.ErrKeyExists) {
				p.log.Warn("take source lease", "err", err)
			}
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(leaseRetry):
			}
			continue
		}
		p.log.Info("source lease taken: running the source on this node")
		p.leading.Store(true)
		err = p.lead(ctx, src, kv, key, node, rev)
		p.leading.Store(false)
		if err != nil || ctx.Err() != nil {
			return err
		}
	}
}

// lead runs src while renewing the lease; it returns src's error, or nil
// when the lease was lost (the caller tries to take it again).
func (p *pipeline) lead(ctx context.Context, src Source, kv jetstream.KeyValue, key string, node []byte, rev uint64) error {
	runCtx, cancel := context.WithCancel(ctx)
	renewed := make(chan struct{})
	leaseRenew := p.e.leaseTTL / 3
	go func() {
		defer close(renewed)
		t := time.NewTicker(leaseRenew)
		defer t.Stop()
		for {
			select {
			case <-runCtx.Done():
				return
			case <-t.C:
			}
			rctx, rcancel := context.WithTimeout(runCtx, leaseRenew)
			r, err := kv.Update(rctx, key, node, rev)
			rcancel()
			if err != nil {
				if runCtx.Err() == nil {
					p.log.Warn("source lease lost: stopping the source here", "err", err)
				}
				cancel()
				return
			}
			rev = r
		}
	}()
	err := src.Run(runCtx, p)
	cancel()
	<-renewed
	// Hand the lease over at once rather than after its TTL.
	dctx, dcancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer dcancel()
	_ = kv.Delete(dctx, key, jetstream.LastRevision(rev))
	if err != nil && runCtx.Err() == nil {
		return err
	}
	return nil
}

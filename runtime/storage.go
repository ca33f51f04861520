package runtime

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vrsky/vrsky/platform/blob"
	"github.com/vrsky/vrsky/platform/natsx"
)

// What an integration stores besides its stream, and how it goes with it.
//
// Wasm steps' kv_* functions use a bucket of the integration's own,
// vrsky_kv_<tenant>_<integration>, made when a step with the KV capability
// starts. JetStream bounds it: a value may be StepKVMaxValue bytes (the
// ABI's 1 MiB), and the bucket Config.StepKVMaxBytes (DefaultStepKVMaxBytes;
// the tenant's account instead, for a tenant with a MaxStorageBytes quota)
// counting JetStream's own overhead per entry; a put past the bound fails, and the guest sees
// ERR_UNAVAILABLE. Wasm steps may write objects only under the
// integration's payload prefix, payloads/<tenant>/<integration>/, and an
// object a call wrote that none of its outputs names is deleted when the
// call returns. Engine.Remove deletes all of it: the bucket, the objects
// under the prefix, their claim-check markers and the integration's dead
// letters (which name those objects).

// DefaultStepKVMaxBytes bounds the step KV bucket of one integration.
const DefaultStepKVMaxBytes = 16 << 20

// StepKVMaxValue bounds one value in a step KV bucket: the ABI's kv_put limit.
const StepKVMaxValue = 1 << 20

// legacyStepKVBucket is the bucket every integration's steps shared before
// each had its own; Remove still deletes an integration's keys there.
const legacyStepKVBucket = "vrsky_step_kv"

// errPipelineStopped: the pipeline that asked for its storage has stopped
// (or been removed) meanwhile; nothing is created for it.
var errPipelineStopped = errors.New("the integration stopped")

// stepKVBucket names the step KV bucket of an integration. Tenant and
// integration names are [a-z0-9-], so the '_' joins cannot collide.
func stepKVBucket(tenant, integration string) string {
	return "vrsky_kv_" + tenant + "_" + integration
}

// stepStorage is what a pipeline's steps store, handed to them in Env:
// the step KV bucket, made on demand under the integration's lock, so
// that a step still starting when its integration is removed cannot bring
// the bucket back.
type stepStorage struct{ p *pipeline }

// KV returns the integration's step KV bucket, creating it (or updating
// its bounds) unless the pipeline has stopped.
func (s *stepStorage) KV(ctx context.Context) (jetstream.KeyValue, error) {
	p := s.p
	defer p.e.lock(key(p.tenant, p.spec.Name))()
	p.mu.Lock()
	stopped := p.stopped
	p.mu.Unlock()
	if stopped {
		return nil, errPipelineStopped
	}
	maxBytes := p.e.limits.stepKVBytes
	if p.storageQuota(ctx) > 0 {
		maxBytes = -1 // the tenant's account bounds it (see ensureStreams)
	}
	kv, err := natsx.Ensure(ctx, func(ctx context.Context) (jetstream.KeyValue, error) {
		return p.conn.JS.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket:       stepKVBucket(p.tenant, p.spec.Name),
			Description:  "VRSky step KV of " + p.tenant + "/" + p.spec.Name,
			History:      1,
			MaxValueSize: StepKVMaxValue,
			MaxBytes:     maxBytes,
			Storage:      jetstream.FileStorage,
			Replicas:     p.conn.Replicas,
		})
	})
	if err != nil {
		return nil, fmt.Errorf("step KV bucket of %s/%s: %w", p.tenant, p.spec.Name, err)
	}
	return kv, nil
}

// removeStorage deletes what an integration stores outside its stream
// (see the comment at the top of this file), after its pipeline stopped.
// Missing pieces are not errors; every piece is tried.
func (e *Engine) removeStorage(ctx context.Context, tenant, integration string) error {
	var errs []error
	if conn, err := e.tenants.Conn(ctx, tenant); err != nil {
		errs = append(errs, fmt.Errorf("delete step KV bucket: %w", err))
	} else if err := conn.JS.DeleteKeyValue(ctx, stepKVBucket(tenant, integration)); err != nil && !errors.Is(err, jetstream.ErrBucketNotFound) {
		errs = append(errs, fmt.Errorf("delete step KV bucket: %w", err))
	}
	if kv, err := e.conn.JS.KeyValue(ctx, legacyStepKVBucket); err == nil {
		if err := purgeKeys(ctx, kv, tenant+"."+integration+".>"); err != nil {
			errs = append(errs, fmt.Errorf("step KV keys in %s: %w", legacyStepKVBucket, err))
		}
	} else if !errors.Is(err, jetstream.ErrBucketNotFound) {
		errs = append(errs, fmt.Errorf("step KV bucket %s: %w", legacyStepKVBucket, err))
	}
	if s, err := e.dlqStream(ctx, tenant); err != nil {
		errs = append(errs, fmt.Errorf("dead-letter stream: %w", err))
	} else if s != nil {
		for _, subj := range []string{SubjectDLQ(tenant, integration), SubjectDLQ(tenant, integration) + ".>"} {
			if err := s.Purge(ctx, jetstream.WithPurgeSubject(subj)); err != nil {
				errs = append(errs, fmt.Errorf("purge dead letters %s: %w", subj, err))
			}
		}
	}
	if c := e.claims; c != nil {
		prefix := claimPrefix(tenant) + integration + "/"
		if err := purgeKeys(ctx, c.markers, strings.ReplaceAll(prefix, "/", ".")+">"); err != nil {
			errs = append(errs, fmt.Errorf("claim-check markers: %w", err))
		}
		if sw, ok := c.blobs.(blob.Sweeper); ok {
			// A cutoff ahead of now: every object under the prefix, whatever
			// the store's clock says.
			if _, err := sw.Sweep(ctx, prefix, time.Now().Add(time.Hour)); err != nil {
				errs = append(errs, fmt.Errorf("delete objects under %s: %w", prefix, err))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("remove the storage of %s/%s: %w", tenant, integration, err)
	}
	return nil
}

// purgeKeys purges every key of kv that matches filter.
func purgeKeys(ctx context.Context, kv jetstream.KeyValue, filter string) error {
	lister, err := kv.ListKeysFiltered(ctx, filter)
	if err != nil {
		return fmt.Errorf("keys %s: %w", filter, err)
	}
	for k := range lister.Keys() {
		if err := kv.Purge(ctx, k); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
			return fmt.Errorf("purge %s: %w", k, err)
		}
	}
	return nil
}

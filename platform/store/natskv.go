package store

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vrsky/vrsky/platform/natsx"
)

// Bucket names of the NATS KV store.
const (
	BucketTenants      = "vrsky_tenants"
	BucketKeys         = "vrsky_apikeys"
	BucketIntegrations = "vrsky_integrations"
)

// defaultOpTimeout bounds one store operation when the caller's context has
// no deadline, so a lost NATS connection surfaces as ErrUnavailable instead
// of a hang.
const defaultOpTimeout = 5 * time.Second

// NATSStore keeps the control plane in six NATS KV buckets:
//
//	vrsky_tenants           <tenant>                   → Tenant (JSON)
//	vrsky_apikeys           <key id>                   → APIKey (JSON)
//	vrsky_integrations      <tenant>.<integration>     → Integration (JSON)
//	vrsky_tenant_endpoints  <tenant>                   → endpointRecord (JSON)
//	vrsky_connectors        <tenant>.<name>.<version>  → ConnectorVersion (JSON)
//	vrsky_connector_names   <name>                     → nameClaim (JSON)
//
// Names that are not plain [A-Za-z0-9_-] are stored base64url-encoded behind
// a "=" marker, so any name maps to a valid KV key. Revisions are KV
// revisions (JetStream sequences): they grow on every write, and Create and
// Update are compare-and-set on them. Listing a tenant's keys scans the key
// bucket, which suits the embedded default's scale.
//
// Cascading deletes are not atomic: DeleteTenant removes the tenant first
// and then its keys, integrations and endpoint. Creates under a tenant
// check it before and after their write, so a create racing a delete
// either is swept by the cascade or undoes itself. If DeleteTenant fails
// half way (NATS unavailable), the tenant is already gone and stray keys,
// integrations or an endpoint may remain; reads ignore them (their tenant
// is missing, or is a newer tenant of that name) and CreateTenant sweeps
// them before it returns.
type NATSStore struct {
	tenants      jetstream.KeyValue
	keys         jetstream.KeyValue
	integrations jetstream.KeyValue
	endpoints    jetstream.KeyValue
	connectors   jetstream.KeyValue
	names        jetstream.KeyValue
	js           jetstream.JetStream
	// leader holds the streams of replicated buckets, which are listed by
	// reading from the stream leader (see scan).
	leader map[string]jetstream.Stream
}

var _ Store = (*NATSStore)(nil)

// NewNATS opens the control-plane buckets on js, creating any that are
// missing with the given replication factor (0 means 1).
func NewNATS(ctx context.Context, js jetstream.JetStream, replicas int) (*NATSStore, error) {
	s := &NATSStore{js: js}
	for _, b := range []struct {
		name string
		kv   *jetstream.KeyValue
		desc string
	}{
		{BucketTenants, &s.tenants, "VRSky tenants"},
		{BucketKeys, &s.keys, "VRSky API keys (hashed)"},
		{BucketIntegrations, &s.integrations, "VRSky integrations"},
		{BucketEndpoints, &s.endpoints, "VRSky tenants' NATS endpoints (service discovery)"},
		{BucketConnectors, &s.connectors, "VRSky connector registry"},
		{BucketConnectorNames, &s.names, "VRSky connector names and their owners"},
	} {
		kv, err := openBucket(ctx, js, jetstream.KeyValueConfig{
			Bucket:      b.name,
			Description: b.desc,
			History:     1,
			Storage:     jetstream.FileStorage,
			Replicas:    max(replicas, 1),
		})
		if err != nil {
			return nil, fmt.Errorf("store: open bucket %s: %w", b.name, mapErr(ctx, err))
		}
		*b.kv = kv
		if replicas > 1 {
			st, err := js.Stream(ctx, "KV_"+b.name)
			if err != nil {
				return nil, fmt.Errorf("store: open bucket %s: %w", b.name, mapErr(ctx, err))
			}
			if s.leader == nil {
				s.leader = map[string]jetstream.Stream{}
			}
			s.leader[b.name] = st
		}
	}
	return s, nil
}

// openBucket binds to an existing bucket without touching its config, or
// creates it; two processes creating it together both succeed: natsx.Ensure
// tries again after what such a race answers (TestNATSOpenConcurrentR3).
func openBucket(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	return natsx.Ensure(ctx, func(ctx context.Context) (jetstream.KeyValue, error) {
		return openBucketOnce(ctx, js, cfg)
	})
}

func openBucketOnce(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	kv, err := js.KeyValue(ctx, cfg.Bucket)
	if err == nil {
		return kv, nil
	}
	if !errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, err
	}
	kv, err = js.CreateKeyValue(ctx, cfg)
	if errors.Is(err, jetstream.ErrBucketExists) || errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		kv, err = js.KeyValue(ctx, cfg.Bucket)
	}
	if err != nil {
		return nil, err
	}
	return consistentReads(ctx, js, kv, "KV_"+cfg.Bucket)
}

// consistentReads turns off direct gets on a replicated bucket, so every
// read is answered by the stream leader. With direct gets any replica may
// answer, and a follower that has not applied the latest write yet would
// say "not found" right after a create: the API could not read its own
// writes. On a single server direct gets are kept (they are faster, and
// there is no follower).
func consistentReads(ctx context.Context, js jetstream.JetStream, kv jetstream.KeyValue, stream string) (jetstream.KeyValue, error) {
	st, err := js.Stream(ctx, stream)
	if err != nil {
		return nil, err
	}
	cfg := st.CachedInfo().Config
	if cfg.Replicas <= 1 || !cfg.AllowDirect {
		return kv, nil
	}
	cfg.AllowDirect = false
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		return nil, fmt.Errorf("turn off direct gets on %s: %w", stream, err)
	}
	return js.KeyValue(ctx, strings.TrimPrefix(stream, "KV_"))
}

// Ping implements Store.
func (s *NATSStore) Ping(ctx context.Context) error {
	ctx, cancel := opContext(ctx)
	defer cancel()
	if _, err := s.tenants.Status(ctx); err != nil {
		return fmt.Errorf("store: ping: %w", mapErr(ctx, err))
	}
	return nil
}

// ---- tenants ----

// CreateTenant implements Store.
func (s *NATSStore) CreateTenant(ctx context.Context, t Tenant) (Tenant, error) {
	if err := checkName("tenant name", t.Name); err != nil {
		return Tenant{}, err
	}
	ctx, cancel := opContext(ctx)
	defer cancel()
	t.CreatedAt = now()
	rev, err := create(ctx, s.tenants, seg(t.Name), t)
	if err != nil {
		return Tenant{}, fmt.Errorf("store: create tenant %q: %w", t.Name, err)
	}
	// A DeleteTenant of an earlier tenant of this name that failed half
	// way may have left keys, integrations or an endpoint behind: they
	// must not come back to life under the new tenant.
	if err := s.deleteTenantChildren(ctx, t.Name, t.CreatedAt); err != nil {
		_ = del(ctx, s.tenants, seg(t.Name), rev)
		return Tenant{}, fmt.Errorf("store: create tenant %q: remove leftovers of an earlier tenant: %w", t.Name, err)
	}
	t.Revision = rev
	return t, nil
}

// GetTenant implements Store.
func (s *NATSStore) GetTenant(ctx context.Context, name string) (Tenant, error) {
	ctx, cancel := opContext(ctx)
	defer cancel()
	var t Tenant
	rev, err := get(ctx, s.tenants, seg(name), &t)
	if err != nil {
		return Tenant{}, fmt.Errorf("store: get tenant %q: %w", name, err)
	}
	t.Revision = rev
	return t, nil
}

// ListTenants implements Store.
func (s *NATSStore) ListTenants(ctx context.Context) ([]Tenant, error) {
	ctx, cancel := opContext(ctx)
	defer cancel()
	out := []Tenant{}
	err := s.scan(ctx, s.tenants, "", func(e jetstream.KeyValueEntry) error {
		var t Tenant
		if err := json.Unmarshal(e.Value(), &t); err != nil {
			return fmt.Errorf("decode %s: %w", e.Key(), err)
		}
		t.Revision = e.Revision()
		out = append(out, t)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: list tenants: %w", err)
	}
	slices.SortFunc(out, func(a, b Tenant) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// UpdateTenant implements Store. CreatedAt is kept from the stored tenant.
func (s *NATSStore) UpdateTenant(ctx context.Context, t Tenant) (Tenant, error) {
	ctx, cancel := opContext(ctx)
	defer cancel()
	var old Tenant
	if _, err := get(ctx, s.tenants, seg(t.Name), &old); err != nil {
		return Tenant{}, fmt.Errorf("store: update tenant %q: %w", t.Name, err)
	}
	t.CreatedAt = old.CreatedAt
	rev, err := update(ctx, s.tenants, seg(t.Name), t, t.Revision)
	if err != nil {
		return Tenant{}, fmt.Errorf("store: update tenant %q: %w", t.Name, err)
	}
	t.Revision = rev
	return t, nil
}

// DeleteTenant implements Store.
func (s *NATSStore) DeleteTenant(ctx context.Context, name string) error {
	ctx, cancel := opContext(ctx)
	defer cancel()
	var t Tenant
	rev, err := get(ctx, s.tenants, seg(name), &t)
	if err != nil {
		return fmt.Errorf("store: delete tenant %q: %w", name, err)
	}
	if err := del(ctx, s.tenants, seg(name), rev); err != nil {
		return fmt.Errorf("store: delete tenant %q: %w", name, err)
	}
	if err := s.deleteTenantChildren(ctx, name, time.Time{}); err != nil {
		return fmt.Errorf("store: delete tenant %q: %w", name, err)
	}
	return nil
}

// deleteTenantChildren deletes the tenant's keys, integrations and
// endpoint. When before is zero (DeleteTenant) it deletes them all; else
// (CreateTenant, before is the new tenant's CreatedAt) only those of an
// earlier tenant of the name: keys and integrations created before
// `before`, an endpoint written for another generation of the tenant.
func (s *NATSStore) deleteTenantChildren(ctx context.Context, tenant string, before time.Time) error {
	stale := func(created time.Time) bool { return before.IsZero() || created.Before(before) }
	type victim struct {
		key string
		rev uint64
	}
	var keys, ints []victim
	err := s.scan(ctx, s.keys, "", func(e jetstream.KeyValueEntry) error {
		var k APIKey
		if err := json.Unmarshal(e.Value(), &k); err == nil && k.Tenant == tenant && stale(k.CreatedAt) {
			keys = append(keys, victim{e.Key(), e.Revision()})
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("list keys: %w", err)
	}
	err = s.scan(ctx, s.integrations, seg(tenant)+".*", func(e jetstream.KeyValueEntry) error {
		var in Integration
		if err := json.Unmarshal(e.Value(), &in); err != nil || stale(in.CreatedAt) {
			ints = append(ints, victim{e.Key(), e.Revision()})
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("list integrations: %w", err)
	}
	for _, v := range keys {
		if err := del(ctx, s.keys, v.key, v.rev); err != nil && !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrConflict) {
			return fmt.Errorf("delete key: %w", err)
		}
	}
	for _, v := range ints {
		if err := del(ctx, s.integrations, v.key, v.rev); err != nil && !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrConflict) {
			return fmt.Errorf("delete integration: %w", err)
		}
	}
	if err := s.deleteEndpointOf(ctx, tenant, before); err != nil {
		return fmt.Errorf("delete endpoint: %w", err)
	}
	return nil
}

// requireTenant returns the tenant's current revision, ErrNotFound if it
// does not exist.
func (s *NATSStore) requireTenant(ctx context.Context, name string) (uint64, error) {
	e, err := s.tenants.Get(ctx, seg(name))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return 0, fmt.Errorf("tenant %q: %w", name, ErrNotFound)
	}
	if err != nil {
		return 0, fmt.Errorf("tenant %q: %w", name, mapErr(ctx, err))
	}
	return e.Revision(), nil
}

// createChild stores a record that belongs to tenant. A DeleteTenant that
// runs between the tenant check and the write could miss the new record in
// its cascade, so the tenant is checked again after the write: if it is
// gone (or was deleted and created again), the record is removed and the
// create fails with ErrNotFound, as if the tenant check had failed.
func (s *NATSStore) createChild(ctx context.Context, tenant string, kv jetstream.KeyValue, key string, v any) (uint64, error) {
	trev, err := s.requireTenant(ctx, tenant)
	if err != nil {
		return 0, err
	}
	return s.createChildAt(ctx, tenant, trev, kv, key, v)
}

// createChildAt is createChild for a caller that has read the tenant
// already, at revision trev.
func (s *NATSStore) createChildAt(ctx context.Context, tenant string, trev uint64, kv jetstream.KeyValue, key string, v any) (uint64, error) {
	rev, err := create(ctx, kv, key, v)
	if err != nil {
		return 0, err
	}
	if after, err := s.requireTenant(ctx, tenant); err != nil || after != trev {
		if derr := del(ctx, kv, key, rev); derr != nil && !errors.Is(derr, ErrNotFound) {
			return 0, fmt.Errorf("tenant %q deleted during create; removing the record failed: %w", tenant, derr)
		}
		if err == nil {
			err = fmt.Errorf("tenant %q was deleted during create: %w", tenant, ErrNotFound)
		}
		return 0, err
	}
	return rev, nil
}

// ---- API keys ----

// CreateKey implements Store.
func (s *NATSStore) CreateKey(ctx context.Context, k APIKey) (APIKey, error) {
	if err := checkName("key id", k.ID); err != nil {
		return APIKey{}, err
	}
	ctx, cancel := opContext(ctx)
	defer cancel()
	k.CreatedAt = now()
	if _, err := s.createChild(ctx, k.Tenant, s.keys, seg(k.ID), k); err != nil {
		return APIKey{}, fmt.Errorf("store: create key %q: %w", k.ID, err)
	}
	return k, nil
}

// GetKey implements Store.
func (s *NATSStore) GetKey(ctx context.Context, id string) (APIKey, error) {
	ctx, cancel := opContext(ctx)
	defer cancel()
	var k APIKey
	if _, err := get(ctx, s.keys, seg(id), &k); err != nil {
		return APIKey{}, fmt.Errorf("store: get key %q: %w", id, err)
	}
	// A key left behind by a DeleteTenant that failed half way must not
	// authenticate: its tenant is gone, or is a newer tenant of that name.
	var t Tenant
	if _, err := get(ctx, s.tenants, seg(k.Tenant), &t); err != nil || t.CreatedAt.After(k.CreatedAt) {
		if err == nil || errors.Is(err, ErrNotFound) {
			err = ErrNotFound
		}
		return APIKey{}, fmt.Errorf("store: get key %q: %w", id, err)
	}
	return k, nil
}

// ListKeys implements Store.
func (s *NATSStore) ListKeys(ctx context.Context, tenant string) ([]APIKey, error) {
	ctx, cancel := opContext(ctx)
	defer cancel()
	out := []APIKey{}
	err := s.scan(ctx, s.keys, "", func(e jetstream.KeyValueEntry) error {
		var k APIKey
		if err := json.Unmarshal(e.Value(), &k); err != nil {
			return fmt.Errorf("decode %s: %w", e.Key(), err)
		}
		if k.Tenant == tenant {
			out = append(out, k)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: list keys of %q: %w", tenant, err)
	}
	slices.SortFunc(out, func(a, b APIKey) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// DeleteKey implements Store.
func (s *NATSStore) DeleteKey(ctx context.Context, tenant, id string) error {
	ctx, cancel := opContext(ctx)
	defer cancel()
	var k APIKey
	rev, err := get(ctx, s.keys, seg(id), &k)
	if err == nil && k.Tenant != tenant {
		err = ErrNotFound
	}
	if err == nil {
		err = del(ctx, s.keys, seg(id), rev)
	}
	if err != nil {
		return fmt.Errorf("store: delete key %q of %q: %w", id, tenant, err)
	}
	return nil
}

// ---- integrations ----

func integrationKey(tenant, name string) string { return seg(tenant) + "." + seg(name) }

// CreateIntegration implements Store.
func (s *NATSStore) CreateIntegration(ctx context.Context, in Integration) (Integration, error) {
	if err := checkName("integration name", in.Name); err != nil {
		return Integration{}, err
	}
	ctx, cancel := opContext(ctx)
	defer cancel()
	in.CreatedAt = now()
	in.UpdatedAt = in.CreatedAt
	rev, err := s.createChild(ctx, in.Tenant, s.integrations, integrationKey(in.Tenant, in.Name), in)
	if err != nil {
		return Integration{}, fmt.Errorf("store: create integration %s/%s: %w", in.Tenant, in.Name, err)
	}
	in.Revision = rev
	return in, nil
}

// GetIntegration implements Store.
func (s *NATSStore) GetIntegration(ctx context.Context, tenant, name string) (Integration, error) {
	ctx, cancel := opContext(ctx)
	defer cancel()
	var in Integration
	rev, err := get(ctx, s.integrations, integrationKey(tenant, name), &in)
	if err != nil {
		return Integration{}, fmt.Errorf("store: get integration %s/%s: %w", tenant, name, err)
	}
	in.Revision = rev
	return in, nil
}

// ListIntegrations implements Store.
func (s *NATSStore) ListIntegrations(ctx context.Context, tenant string) ([]Integration, error) {
	ctx, cancel := opContext(ctx)
	defer cancel()
	filter := ""
	if tenant != "" {
		filter = seg(tenant) + ".*"
	}
	// Integrations left behind by a DeleteTenant that failed half way are
	// not listed: their tenant is gone.
	live := map[string]time.Time{}
	err := s.scan(ctx, s.tenants, "", func(e jetstream.KeyValueEntry) error {
		var t Tenant
		if err := json.Unmarshal(e.Value(), &t); err == nil {
			live[t.Name] = t.CreatedAt
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: list integrations of %q: %w", tenant, err)
	}
	out := []Integration{}
	err = s.scan(ctx, s.integrations, filter, func(e jetstream.KeyValueEntry) error {
		var in Integration
		if err := json.Unmarshal(e.Value(), &in); err != nil {
			return fmt.Errorf("decode %s: %w", e.Key(), err)
		}
		in.Revision = e.Revision()
		if created, ok := live[in.Tenant]; ok && !created.After(in.CreatedAt) {
			out = append(out, in)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: list integrations of %q: %w", tenant, err)
	}
	slices.SortFunc(out, func(a, b Integration) int {
		if c := strings.Compare(a.Tenant, b.Tenant); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	return out, nil
}

// UpdateIntegration implements Store. CreatedAt is kept, UpdatedAt set.
func (s *NATSStore) UpdateIntegration(ctx context.Context, in Integration) (Integration, error) {
	ctx, cancel := opContext(ctx)
	defer cancel()
	key := integrationKey(in.Tenant, in.Name)
	var old Integration
	if _, err := get(ctx, s.integrations, key, &old); err != nil {
		return Integration{}, fmt.Errorf("store: update integration %s/%s: %w", in.Tenant, in.Name, err)
	}
	in.CreatedAt = old.CreatedAt
	in.UpdatedAt = now()
	rev, err := update(ctx, s.integrations, key, in, in.Revision)
	if err != nil {
		return Integration{}, fmt.Errorf("store: update integration %s/%s: %w", in.Tenant, in.Name, err)
	}
	in.Revision = rev
	return in, nil
}

// DeleteIntegration implements Store.
func (s *NATSStore) DeleteIntegration(ctx context.Context, tenant, name string) error {
	ctx, cancel := opContext(ctx)
	defer cancel()
	key := integrationKey(tenant, name)
	var in Integration
	rev, err := get(ctx, s.integrations, key, &in)
	if err == nil {
		err = del(ctx, s.integrations, key, rev)
	}
	if err != nil {
		return fmt.Errorf("store: delete integration %s/%s: %w", tenant, name, err)
	}
	return nil
}

// ---- KV helpers ----

// create writes key only if it has no live value: ErrExists otherwise.
//
// KV's Create of a deleted key reads the delete marker's revision and
// writes at it; a delete or purge of the key in between (a DeleteTenant's
// cascade) fails that compare-and-set although the key is not live, and so
// does, on a replicated bucket, any write of the key still in flight. So a
// failed compare-and-set is ErrExists only if the key is live now, and is
// tried again otherwise.
func create(ctx context.Context, kv jetstream.KeyValue, key string, v any) (uint64, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return 0, err
	}
	for attempt := 1; ; attempt++ {
		rev, err := kv.Create(ctx, key, b)
		if err == nil {
			return rev, nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) && !wrongLastSequence(err) {
			return 0, mapErr(ctx, err)
		}
		_, gerr := kv.Get(ctx, key)
		switch {
		case gerr == nil:
			return 0, ErrExists
		case !errors.Is(gerr, jetstream.ErrKeyNotFound):
			return 0, mapErr(ctx, gerr)
		case attempt == casAttempts:
			return 0, fmt.Errorf("key %s keeps being written during the create: %w", key, ErrConflict)
		}
		if err := casBackoff(ctx, attempt); err != nil {
			return 0, err
		}
	}
}

// wrongLastSequence reports a failed compare-and-set on a subject's last
// sequence: code 10071 on a single server, 10164 on a replicated stream.
func wrongLastSequence(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

func update(ctx context.Context, kv jetstream.KeyValue, key string, v any, rev uint64) (uint64, error) {
	if rev == 0 {
		return 0, fmt.Errorf("no revision given: %w", ErrConflict)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return 0, err
	}
	nrev, err := kv.Update(ctx, key, b, rev)
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists) {
		return 0, fmt.Errorf("revision %d: %w", rev, ErrConflict)
	}
	if err != nil {
		return 0, mapErr(ctx, err)
	}
	return nrev, nil
}

func get(ctx context.Context, kv jetstream.KeyValue, key string, v any) (uint64, error) {
	e, err := kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return 0, ErrNotFound
	}
	if err != nil {
		return 0, mapErr(ctx, err)
	}
	if err := json.Unmarshal(e.Value(), v); err != nil {
		return 0, fmt.Errorf("decode %s: %w", key, err)
	}
	return e.Revision(), nil
}

// del deletes key, only at revision rev when rev is not 0. A concurrent
// write or delete in between reports ErrNotFound for a deleted key and
// ErrConflict otherwise.
func del(ctx context.Context, kv jetstream.KeyValue, key string, rev uint64) error {
	var opts []jetstream.KVDeleteOpt
	if rev != 0 {
		opts = append(opts, jetstream.LastRevision(rev))
	}
	for attempt := 1; ; attempt++ {
		err := kv.Purge(ctx, key, opts...)
		if err == nil {
			return nil
		}
		if !errors.Is(err, jetstream.ErrKeyRevisionMismatch) && !errors.Is(err, jetstream.ErrKeyExists) && !wrongLastSequence(err) {
			return mapErr(ctx, err)
		}
		e, gerr := kv.Get(ctx, key)
		switch {
		case errors.Is(gerr, jetstream.ErrKeyNotFound):
			return ErrNotFound
		case gerr != nil:
			return mapErr(ctx, gerr)
		case e.Revision() != rev || attempt == casAttempts:
			return ErrConflict
		}
		// Still at rev: on a replicated bucket the compare-and-set also
		// fails while another write of the key is in flight (code 10164),
		// one that may yet delete it. Try again once it has landed.
		if err := casBackoff(ctx, attempt); err != nil {
			return err
		}
	}
}

// casAttempts bounds how often create and del try a compare-and-set that
// failed for a write in flight rather than for a live value.
const casAttempts = 4

// casBackoff waits before the next compare-and-set attempt.
func casBackoff(ctx context.Context, attempt int) error {
	t := time.NewTimer(time.Duration(attempt) * 5 * time.Millisecond)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return mapErr(ctx, ctx.Err())
	}
}

// scan calls fn for the current value of every live key matching filter
// ("" for all keys).
//
// On a single server it reads a KV watcher. On a replicated bucket it walks
// the stream on its leader instead, one message at a time: a watcher's
// consumer may live on a follower that has not applied the latest writes,
// and a list must show what the writes before it did.
func (s *NATSStore) scan(ctx context.Context, kv jetstream.KeyValue, filter string, fn func(jetstream.KeyValueEntry) error) error {
	if st, ok := s.leader[kv.Bucket()]; ok {
		return scanLeader(ctx, st, kv.Bucket(), filter, fn)
	}
	var (
		w   jetstream.KeyWatcher
		err error
	)
	if filter == "" {
		w, err = kv.WatchAll(ctx, jetstream.IgnoreDeletes())
	} else {
		w, err = kv.Watch(ctx, filter, jetstream.IgnoreDeletes())
	}
	if err != nil {
		return mapErr(ctx, err)
	}
	defer func() { _ = w.Stop() }()
	for {
		select {
		case e, ok := <-w.Updates():
			if !ok || e == nil {
				return nil
			}
			if e.Operation() != jetstream.KeyValuePut {
				continue
			}
			if err := fn(e); err != nil {
				return err
			}
		case <-ctx.Done():
			return mapErr(ctx, ctx.Err())
		}
	}
}

// scanLeader walks a KV bucket's stream with "next message on subject"
// requests, which the stream leader answers. The buckets keep one message
// per key (history 1), so every message is its key's current state.
func scanLeader(ctx context.Context, st jetstream.Stream, bucket, filter string, fn func(jetstream.KeyValueEntry) error) error {
	prefix := "$KV." + bucket + "."
	subject := prefix + ">"
	if filter != "" {
		subject = prefix + filter
	}
	for seq := uint64(1); ; {
		m, err := st.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subject))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return nil
		}
		if err != nil {
			return mapErr(ctx, err)
		}
		seq = m.Sequence + 1
		if m.Header.Get("KV-Operation") != "" || m.Header.Get(jetstream.MarkerReasonHeader) != "" {
			continue // a delete or purge marker
		}
		if err := fn(&leaderEntry{bucket: bucket, key: strings.TrimPrefix(m.Subject, prefix), m: m}); err != nil {
			return err
		}
	}
}

// leaderEntry is a live KV entry read from the stream leader.
type leaderEntry struct {
	bucket, key string
	m           *jetstream.RawStreamMsg
}

func (e *leaderEntry) Bucket() string                  { return e.bucket }
func (e *leaderEntry) Key() string                     { return e.key }
func (e *leaderEntry) Value() []byte                   { return e.m.Data }
func (e *leaderEntry) Revision() uint64                { return e.m.Sequence }
func (e *leaderEntry) Created() time.Time              { return e.m.Time }
func (e *leaderEntry) Delta() uint64                   { return 0 }
func (e *leaderEntry) Operation() jetstream.KeyValueOp { return jetstream.KeyValuePut }

// mapErr turns transport failures into ErrUnavailable, keeping the cause.
// A context the caller cancelled stays a cancellation.
func mapErr(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		return err
	}
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && !errors.Is(err, jetstream.ErrJetStreamNotEnabled) &&
		!errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount) && apiErr.Code != 503 {
		// The server answered: not an availability problem.
		return err
	}
	if errors.Is(err, ErrUnavailable) {
		return err
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, nats.ErrTimeout),
		errors.Is(err, nats.ErrConnectionClosed),
		errors.Is(err, nats.ErrConnectionDraining),
		errors.Is(err, nats.ErrConnectionReconnecting),
		errors.Is(err, nats.ErrDisconnected),
		errors.Is(err, nats.ErrNoServers),
		errors.Is(err, nats.ErrNoResponders),
		errors.Is(err, jetstream.ErrNoStreamResponse),
		errors.Is(err, jetstream.ErrJetStreamNotEnabled),
		errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount),
		errors.As(err, &apiErr):
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return err
}

func opContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, defaultOpTimeout)
}

// now is the store's clock: UTC with microsecond precision, so timestamps
// compare equal across backends (PostgreSQL keeps microseconds).
func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

var plainSeg = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// seg maps a name to one KV key token: plain names as they are, anything
// else base64url-encoded behind "=" (which plain names never contain).
func seg(name string) string {
	if plainSeg.MatchString(name) {
		return name
	}
	return "=" + base64.RawURLEncoding.EncodeToString([]byte(name))
}

func checkName(what, name string) error {
	if name == "" {
		return fmt.Errorf("store: %s is empty", what)
	}
	return nil
}

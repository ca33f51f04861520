package runtime

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vrsky/vrsky/platform/natsx"
)

// Connector state lives in the KV bucket vrsky_state, keyed
// <tenant>.<integration>.<connector>.<key>, where <connector> is the step
// or sink name, or "_source". It has no TTL: a checkpoint must outlive any
// outage. Remove deletes an integration's keys.

const stateBucket = "vrsky_state"

type kvState struct {
	kv     jetstream.KeyValue
	prefix string // tenant.integration.connector.
}

func newStateBucket(ctx context.Context, js jetstream.JetStream, replicas int) (jetstream.KeyValue, error) {
	kv, err := natsx.Ensure(ctx, func(ctx context.Context) (jetstream.KeyValue, error) {
		return js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket:      stateBucket,
			Description: "VRSky connector checkpoints",
			History:     1,
			Storage:     jetstream.FileStorage,
			Replicas:    replicas,
		})
	})
	if err != nil {
		return nil, fmt.Errorf("state bucket: %w", err)
	}
	return kv, nil
}

func stateScope(tenant, integration, connector string) string {
	if connector == "" {
		connector = "_source"
	}
	return tenant + "." + integration + "." + connector + "."
}

func checkStateKey(key string) error {
	if key == "" || strings.HasPrefix(key, ".") || strings.HasSuffix(key, ".") || strings.Contains(key, "..") {
		return fmt.Errorf("state key %q: empty token", key)
	}
	for _, r := range key {
		if r >= 0x80 || !kvKeyChar(byte(r)) {
			return fmt.Errorf("state key %q: character %q not allowed", key, r)
		}
	}
	return nil
}

func (s *kvState) Get(ctx context.Context, key string) ([]byte, error) {
	if err := checkStateKey(key); err != nil {
		return nil, err
	}
	e, err := s.kv.Get(ctx, s.prefix+key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, ErrNoState
	}
	if err != nil {
		return nil, fmt.Errorf("state %s: %w", key, err)
	}
	return e.Value(), nil
}

func (s *kvState) Put(ctx context.Context, key string, value []byte) error {
	if err := checkStateKey(key); err != nil {
		return err
	}
	if _, err := s.kv.Put(ctx, s.prefix+key, value); err != nil {
		return fmt.Errorf("state %s: %w", key, err)
	}
	return nil
}

func (s *kvState) Delete(ctx context.Context, key string) error {
	if err := checkStateKey(key); err != nil {
		return err
	}
	if err := s.kv.Purge(ctx, s.prefix+key); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("state %s: %w", key, err)
	}
	return nil
}

func (s *kvState) Keys(ctx context.Context) ([]string, error) {
	lister, err := s.kv.ListKeysFiltered(ctx, s.prefix+">")
	if err != nil {
		return nil, fmt.Errorf("state keys: %w", err)
	}
	var keys []string
	for k := range lister.Keys() {
		keys = append(keys, strings.TrimPrefix(k, s.prefix))
	}
	return keys, nil
}

// purgeState deletes every key of an integration.
func purgeState(ctx context.Context, kv jetstream.KeyValue, tenant, integration string) error {
	if err := purgeKeys(ctx, kv, tenant+"."+integration+".>"); err != nil {
		return fmt.Errorf("state of %s/%s: %w", tenant, integration, err)
	}
	return nil
}

package store_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/vrsky/vrsky/platform/natsx/natsxtest"
	"github.com/vrsky/vrsky/platform/store"
	"github.com/vrsky/vrsky/platform/store/storetest"
)

// TestNATSLegacyNames: connector versions written before name claims
// existed (straight into the connectors bucket, no claim) keep their owner
// when the name is first claimed.
func TestNATSLegacyNames(t *testing.T) {
	conn := natsxtest.Start(t)
	s, err := store.NewNATS(context.Background(), conn.JS, conn.Replicas)
	if err != nil {
		t.Fatalf("NewNATS: %v", err)
	}
	seg := func(name string) string { // plain names as they are, "" as "="
		if name == "" {
			return "=" + base64.RawURLEncoding.EncodeToString(nil)
		}
		return name
	}
	storetest.LegacyNames(t, s, func(ctx context.Context, vs []store.ConnectorVersion) error {
		kv, err := conn.JS.KeyValue(ctx, store.BucketConnectors)
		if err != nil {
			return err
		}
		for _, v := range vs {
			b, err := json.Marshal(v)
			if err != nil {
				return err
			}
			if _, err := kv.Create(ctx, seg(v.Tenant)+"."+seg(v.Name)+"."+seg(v.Version), b); err != nil {
				return fmt.Errorf("write %s/%s@%s: %w", v.Tenant, v.Name, v.Version, err)
			}
		}
		return nil
	})
}

package store_test

import (
	"context"
	"testing"

	"github.com/vrsky/vrsky/platform/natsx/natsxtest"
	"github.com/vrsky/vrsky/platform/store"
	"github.com/vrsky/vrsky/platform/store/storetest"
)

// TestNATSContractR3 runs the contract on a 3-node cluster with replicated
// (R3) buckets, where JetStream reports compare-and-set conflicts with
// other error codes than on a single server. The buckets are emptied
// before each subtest so every subtest starts empty.
func TestNATSContractR3(t *testing.T) {
	cluster := natsxtest.StartCluster(t, 3)
	conn := cluster.Connect(t)
	ctx := context.Background()
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := store.NewNATS(ctx, conn.JS, conn.Replicas)
		if err != nil {
			t.Fatalf("NewNATS: %v", err)
		}
		for _, b := range []string{store.BucketTenants, store.BucketKeys, store.BucketIntegrations, store.BucketEndpoints, store.BucketConnectors, store.BucketConnectorNames} {
			st, err := conn.JS.Stream(ctx, "KV_"+b)
			if err == nil {
				err = st.Purge(ctx)
			}
			if err != nil {
				t.Fatalf("empty bucket %s: %v", b, err)
			}
		}
		return s
	})
}

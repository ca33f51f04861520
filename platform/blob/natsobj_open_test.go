package blob_test

import (
	"context"
	"sync"
	"testing"

	"github.com/vrsky/vrsky/platform/blob"
	"github.com/vrsky/vrsky/platform/natsx/natsxtest"
)

// TestNATSOpenConcurrentR3: three nodes starting at once on a fresh
// 3-node cluster all open the replicated bucket, with direct gets off.
// (They used to fail after 30s: one node's create and another's update of
// the bucket's stream, at once, left both requests unanswered.)
func TestNATSOpenConcurrentR3(t *testing.T) {
	cluster := natsxtest.StartCluster(t, 3)
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range errs {
		conn := cluster.Connect(t)
		wg.Go(func() {
			_, errs[i] = blob.NewNATS(context.Background(), conn.JS, "vrsky-objects", conn.Replicas)
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("node %d: %v", i, err)
		}
	}
	conn := cluster.Connect(t)
	st, err := conn.JS.Stream(context.Background(), "OBJ_vrsky-objects")
	if err != nil {
		t.Fatal(err)
	}
	if cfg := st.CachedInfo().Config; cfg.Replicas != 3 || cfg.AllowDirect {
		t.Fatalf("bucket stream has %d replicas, direct gets %v; want 3, off", cfg.Replicas, cfg.AllowDirect)
	}
}

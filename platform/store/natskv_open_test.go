package store_test

import (
	"context"
	"sync"
	"testing"

	"github.com/vrsky/vrsky/platform/natsx/natsxtest"
	"github.com/vrsky/vrsky/platform/store"
)

// TestNATSOpenConcurrentR3: three nodes starting at once on a fresh
// 3-node cluster all open the replicated control-plane buckets. (They used
// to fail after 30s: one node's create and another's update of a
// bucket's stream, at once, left both requests unanswered.)
func TestNATSOpenConcurrentR3(t *testing.T) {
	cluster := natsxtest.StartCluster(t, 3)
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range errs {
		conn := cluster.Connect(t)
		wg.Go(func() {
			_, errs[i] = store.NewNATS(context.Background(), conn.JS, conn.Replicas)
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("node %d: %v", i, err)
		}
	}
}

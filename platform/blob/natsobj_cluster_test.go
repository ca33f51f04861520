package blob_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/vrsky/vrsky/platform/blob"
	"github.com/vrsky/vrsky/platform/blob/blobtest"
	"github.com/vrsky/vrsky/platform/natsx/natsxtest"
)

// TestNATSContractR3 runs the contract on a 3-node cluster with a
// replicated (R3) bucket per subtest: reads must see the writes before them
// whichever node answers.
func TestNATSContractR3(t *testing.T) {
	cluster := natsxtest.StartCluster(t, 3)
	conn := cluster.Connect(t)
	ctx := context.Background()
	var n atomic.Int64
	blobtest.Run(t, func(t *testing.T) blob.Store {
		s, err := blob.NewNATS(ctx, conn.JS, fmt.Sprintf("objects-%d", n.Add(1)), conn.Replicas)
		if err != nil {
			t.Fatalf("NewNATS: %v", err)
		}
		return s
	})
}

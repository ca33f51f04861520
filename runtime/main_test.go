package runtime_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if its tests leave goroutines behind: the
// engine's (reconcile loop, pipelines' stages, source and lease runners,
// usage watchers, the tracking writer), the harness's, or NATS
// connections and servers that were not closed.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

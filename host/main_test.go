package host

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves goroutines behind (pools'
// reclaimers, object writers, HTTP connections, NATS).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

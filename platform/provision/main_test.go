package provision_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves goroutines behind
// (supervisors, exit waiters, health checks, NATS clients). The children
// are processes, checked by the tests themselves.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

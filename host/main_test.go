package host

import (
	"testing"

	"github.com/vrsky/vrsky/internal/testenv/leaktest"
)

// TestMain fails the package if a test leaves goroutines behind (pools'
// reclaimers, object writers, HTTP connections, NATS).
func TestMain(m *testing.M) { leaktest.VerifyTestMain(m) }

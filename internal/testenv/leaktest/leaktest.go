// Package leaktest checks that a test binary leaves no goroutine behind,
// with goleak, knowing the one leak VRSky cannot fix from its side.
//
// nats.go v1.55.0's object store Put makes a JetStream context of its own,
// whose first async publish starts resetPendingAcksOnReconnect, and tears it
// down with cleanupReplySub when the Put returns. If the teardown takes the
// publisher lock before that goroutine has read its status channel, the
// goroutine reads a nil channel and blocks forever (jetstream/publish.go:567
// against jetstream.go:1326). It happens only when a small Put finishes
// before the scheduler runs the goroutine, which a loaded CI machine with
// the race detector does now and then; it costs one parked goroutine and is
// the library's to fix.
package leaktest

import (
	"testing"

	"go.uber.org/goleak"
)

// Options are goleak's options with the nats.go object store race ignored.
func Options() []goleak.Option {
	return []goleak.Option{
		goleak.IgnoreTopFunction("github.com/nats-io/nats.go/jetstream.(*jetStream).resetPendingAcksOnReconnect"),
	}
}

// VerifyTestMain runs the tests and then fails the binary if goroutines
// are left behind.
func VerifyTestMain(m *testing.M) { goleak.VerifyTestMain(m, Options()...) }

package runtime_test

// Helpers of the engine tests. Every test runs a real engine on a real
// embedded NATS server through runtimetest.Harness, with its in-memory
// source (test-source) and recording sinks (test-sink): no real
// connector, unless a test is about one (the Wasm steps).

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vrsky/vrsky/platform/blob"
	"github.com/vrsky/vrsky/platform/natsx/natsxtest"
	"github.com/vrsky/vrsky/runtime"
	"github.com/vrsky/vrsky/runtime/runtimetest"
)

// manual is the option every engine test starts with: the engine
// reconciles when it starts and when the test says so, never behind its
// back.
var manual = runtimetest.ManualReconcile

// specYAML is an integration from the test source holding key to sinks,
// with a fast retry policy.
func specYAML(name, key string, sinks ...string) string {
	return fmt.Sprintf(`name: %s
source: {connector: test-source, config: {key: %s}}
sinks:
%s
retry: {max_attempts: 3, initial_backoff: 50ms, max_backoff: 400ms}
`, name, key, strings.Join(sinks, "\n"))
}

// withAttempts sets a spec's max_attempts (specYAML's is 3).
func withAttempts(spec string, n int) string {
	return strings.Replace(spec, "max_attempts: 3", fmt.Sprintf("max_attempts: %d", n), 1)
}

// sinkYAML is one entry of a spec's sinks: rec, routed by when.
func sinkYAML(name string, rec *runtimetest.Sink, when string) string {
	s := fmt.Sprintf("  - name: %s\n    connector: test-sink\n    config: %s", name, rec.Config())
	if when != "" {
		s += fmt.Sprintf("\n    when: %q", when)
	}
	return s
}

// httpStatus is the error a sink reports for an HTTP answer, as the HTTP
// sink does: permanent for a 4xx other than 408 and 429.
func httpStatus(code int) error {
	err := fmt.Errorf("POST: %d %s", code, http.StatusText(code))
	if code >= 400 && code < 500 && code != http.StatusRequestTimeout && code != http.StatusTooManyRequests {
		return runtime.Permanent(err)
	}
	return err
}

// failWith fails every attempt with the HTTP status code.
func failWith(code int) func(string, int) error {
	return func(string, int) error { return httpStatus(code) }
}

// switchable is a sink that answers 503 until it is switched on.
func switchable(h *runtimetest.Harness) (*runtimetest.Sink, func()) {
	var on atomic.Bool
	rec := h.Sinks.New(func(string, int) error {
		if on.Load() {
			return nil
		}
		return httpStatus(http.StatusServiceUnavailable)
	})
	return rec, func() { on.Store(true) }
}

func withBlobs(bs blob.Store) func(*runtime.Config) {
	return func(c *runtime.Config) { c.Blobs = bs }
}

// newBlobHarness is a harness with a NATS object store for claim checks.
func newBlobHarness(t *testing.T, conns []runtime.Connector, opts ...func(*runtime.Config)) (*runtimetest.Harness, blob.Store) {
	t.Helper()
	conn := natsxtest.Start(t)
	bs, err := blob.NewNATS(context.Background(), conn.JS, "vrsky-objects", 1)
	if err != nil {
		t.Fatal(err)
	}
	return runtimetest.StartOn(t, conn, conns, append([]func(*runtime.Config){manual, withBlobs(bs)}, opts...)...), bs
}

func payloadKey(integration, id string) string { return "payloads/acme/" + integration + "/" + id }

func objectExists(t *testing.T, bs blob.Store, key string) bool {
	t.Helper()
	_, err := bs.Stat(context.Background(), key)
	if err != nil && !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("stat %s: %v", key, err)
	}
	return err == nil
}

// settled waits until the consumer of h's integration has nothing pending
// or unacknowledged: no message is being redelivered.
func settled(t *testing.T, h *runtimetest.Harness, integration, consumer string) {
	t.Helper()
	ctx := context.Background()
	runtimetest.WaitFor(t, 10*time.Second, "consumer "+consumer+" of "+integration+" settled", func() bool {
		c, err := h.TenantConn(t).JS.Consumer(ctx, "VRSKY_"+h.Tenant+"_"+integration, consumer)
		if err != nil {
			return false
		}
		info, err := c.Info(ctx)
		return err == nil && info.NumPending == 0 && info.NumAckPending == 0 && info.NumRedelivered == 0
	})
}

// released waits until no integration of h's tenant runs the test source
// holding key on h's node: the source has stopped.
func released(t *testing.T, h *runtimetest.Harness, key string) {
	t.Helper()
	runtimetest.WaitFor(t, 10*time.Second, "the source of "+key+" stopped", func() bool { return !h.Source.Bound(h.Tenant, key) })
}

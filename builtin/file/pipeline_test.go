package file_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	fileconn "github.com/vrsky/vrsky/builtin/file"
	httpconn "github.com/vrsky/vrsky/builtin/http"
	"github.com/vrsky/vrsky/platform/blob"
	"github.com/vrsky/vrsky/platform/natsx/natsxtest"
	"github.com/vrsky/vrsky/runtime"
	"github.com/vrsky/vrsky/runtime/runtimetest"
)

// The end-to-end tests run the file source in a real engine on a real
// NATS server. The file sink is registered as "file-out": a catalogue
// holds one connector per name, and both are called "file".

func startHarness(t *testing.T, withBlobs bool) *runtimetest.Harness {
	t.Helper()
	conn := natsxtest.Start(t)
	conns := []runtime.Connector{fileconn.Source, renamed(fileconn.Sink, "file-out"), httpconn.Sink}
	opts := []func(*runtime.Config){func(c *runtime.Config) { c.DisableTracking = true }}
	if withBlobs {
		bs, err := blob.NewNATS(context.Background(), conn.JS, "vrsky-objects", 1)
		if err != nil {
			t.Fatal(err)
		}
		opts = append(opts, func(c *runtime.Config) { c.Blobs = bs })
	}
	return runtimetest.StartOn(t, conn, conns, opts...)
}

// stateKeys lists the integration's connector checkpoints.
func stateKeys(t *testing.T, h *runtimetest.Harness, integration string) []string {
	t.Helper()
	ctx := context.Background()
	kv, err := h.Conn.JS.KeyValue(ctx, "vrsky_state")
	if err != nil {
		t.Fatal(err)
	}
	l, err := kv.ListKeysFiltered(ctx, "acme."+integration+".>")
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for k := range l.Keys() {
		keys = append(keys, k)
	}
	return keys
}

func countFiles(dir string) int {
	ents, _ := os.ReadDir(dir)
	n := 0
	for _, e := range ents {
		if e.Type().IsRegular() && !strings.HasPrefix(e.Name(), ".") {
			n++
		}
	}
	return n
}

// TestPipelineCSVBulkLoad drops 100,000 CSV rows and a CSV broken at line
// 501 into a watched folder; the rows arrive in the file sink exactly once.
func TestPipelineCSVBulkLoad(t *testing.T) {
	const rows, per = 100_000, 100
	in, out := t.TempDir(), t.TempDir()
	h := startHarness(t, false)
	h.Create(t, fmt.Sprintf(`
name: bulk
source:
  connector: file
  config: {dir: %q, pattern: "*.csv", mode: csv, records_per_message: %d, stable_for: 100ms, rescan_interval: 200ms}
sinks:
  - name: out
    connector: file-out
    config: {dir: %q, filename: '{{.Header "Vrsky-File-Name"}}-{{.Header "Vrsky-File-Record"}}.json'}
`, in, per, out))

	start := time.Now()
	var sb strings.Builder
	sb.WriteString("id,name,amount\n")
	for i := 1; i <= rows; i++ {
		fmt.Fprintf(&sb, "%d,name %d,%d.%02d\n", i, i, i%1000, i%100)
	}
	drop(t, in, "orders.csv", sb.String())
	sb.Reset()
	sb.WriteString("id,name,amount\n")
	for i := 1; i <= 1000; i++ {
		if i == 500 { // line 501
			sb.WriteString("500,short\n")
			continue
		}
		fmt.Fprintf(&sb, "%d,name %d,%d.%02d\n", i, i, i%1000, i%100)
	}
	drop(t, in, "broken.csv", sb.String())

	wantFiles := rows/per + 5 // broken.csv: 4 messages of 100 rows, 1 of 99 (rows 1..499)
	runtimetest.WaitFor(t, 2*time.Minute, fmt.Sprintf("%d files delivered", wantFiles), func() bool {
		return countFiles(out) >= wantFiles && exists(filepath.Join(in, "processed", "orders.csv")) &&
			exists(filepath.Join(in, "failed", "broken.csv"))
	})
	t.Logf("100,000 rows + 499 rows delivered in %s", time.Since(start).Round(time.Millisecond))

	// Each message holds rows first..first+99 as a JSON array: the
	// expected files, byte for byte, are known.
	rowJSON := func(i int) string {
		return fmt.Sprintf(`{"id":"%d","name":"name %d","amount":"%d.%02d"}`, i, i, i%1000, i%100)
	}
	want := map[string]string{}
	batch := func(file string, first, last int) {
		var b strings.Builder
		b.WriteByte('[')
		for i := first; i <= last; i++ {
			if i > first {
				b.WriteByte(',')
			}
			b.WriteString(rowJSON(i))
		}
		b.WriteByte(']')
		want[fmt.Sprintf("%s-%d.json", file, first)] = b.String()
	}
	for first := 1; first <= rows; first += per {
		batch("orders.csv", first, first+per-1)
	}
	for first := 1; first <= 400; first += per {
		batch("broken.csv", first, first+per-1)
	}
	batch("broken.csv", 401, 499)
	got := listFiles(t, out)
	for name := range got {
		if strings.HasPrefix(name, ".") {
			delete(got, name) // a redelivery's temporary file
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d files delivered, want %d", len(got), len(want))
	}
	for name, w := range want {
		if got[name] != w {
			t.Fatalf("%s = %.200q…, want %.200q…", name, got[name], w)
		}
	}
	if got, want := readFile(t, filepath.Join(in, "failed", "broken.csv.error")),
		"line 501: wrong number of fields: the header has 3, this row 2\nrecords emitted: 499\n"; got != want {
		t.Errorf("sidecar %q, want %q", got, want)
	}
	runtimetest.WaitFor(t, waitLong, "the checkpoints deleted", func() bool { return len(stateKeys(t, h, "bulk")) == 0 })
	t.Logf("checked in %s", time.Since(start).Round(time.Millisecond))
}

// counter is an HTTP endpoint that counts the bodies it receives.
type counter struct {
	mu   sync.Mutex
	seen map[string]int
	n    int
}

func newCounter(t *testing.T) (*counter, string) {
	c := &counter{seen: map[string]int{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		c.mu.Lock()
		c.seen[string(b)]++
		c.n++
		c.mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	return c, srv.URL
}

func (c *counter) distinct() int { c.mu.Lock(); defer c.mu.Unlock(); return len(c.seen) }

// TestPipelineRestartMidFile stops the integration while its source is
// emitting a file; started again, the source resumes from its checkpoint:
// every record arrives, the file ends in processed/, the checkpoint is gone.
func TestPipelineRestartMidFile(t *testing.T) {
	const records, per = 20_000, 5
	const msgs = records / per
	in := t.TempDir()
	c, url := newCounter(t)
	h := startHarness(t, false)
	spec := h.Create(t, fmt.Sprintf(`
name: restart
source:
  connector: file
  config: {dir: %q, mode: jsonl, records_per_message: %d, stable_for: 100ms, rescan_interval: 200ms}
sinks:
  - name: api
    connector: http
    config: {url: %q}
`, in, per, url))
	var sb strings.Builder
	for i := 1; i <= records; i++ {
		fmt.Fprintf(&sb, "{\"n\":%d}\n", i)
	}
	drop(t, in, "big.jsonl", sb.String())

	ctx := context.Background()
	runtimetest.WaitFor(t, 2*time.Minute, "the source half-way", func() bool {
		return h.Engine.Status(ctx, "acme", spec).Ingested > 1000 // the first chunk and its checkpoint
	})
	h.Engine.Stop("acme", "restart")
	if exists(filepath.Join(in, "processed", "big.jsonl")) {
		t.Fatal("the file was done before the stop; the test proves nothing")
	}
	if len(stateKeys(t, h, "restart")) != 1 {
		t.Fatal("no checkpoint after the stop")
	}
	// The engine's reconcile loop starts the integration again.
	runtimetest.WaitFor(t, 2*time.Minute, "every record delivered and the file processed", func() bool {
		return c.distinct() == msgs && exists(filepath.Join(in, "processed", "big.jsonl"))
	})
	again := h.Engine.Status(ctx, "acme", spec).Ingested
	if again == 0 || again >= msgs {
		t.Errorf("after the restart the source emitted %d messages, want fewer than %d (it resumes)", again, msgs)
	}
	c.mu.Lock()
	for i := 1; i <= records; i += per {
		var b bytes.Buffer
		b.WriteString("[")
		for j := i; j < i+per; j++ {
			if j > i {
				b.WriteString(",")
			}
			fmt.Fprintf(&b, "{\"n\":%d}", j)
		}
		b.WriteString("]")
		if c.seen[b.String()] == 0 {
			c.mu.Unlock()
			t.Fatalf("records %d..%d never arrived", i, i+per-1)
		}
	}
	t.Logf("%d messages, %d deliveries (at least once), %d emitted after the restart", msgs, c.n, again)
	c.mu.Unlock()
	runtimetest.WaitFor(t, waitLong, "the checkpoint deleted", func() bool { return len(stateKeys(t, h, "restart")) == 0 })
}

// TestPipelineWholeAndLines runs a whole-file integration (a payload over
// the claim-check threshold, streamed into the file sink) and a lines one.
func TestPipelineWholeAndLines(t *testing.T) {
	in1, in2, out := t.TempDir(), t.TempDir(), t.TempDir()
	h := startHarness(t, true)
	h.Create(t, fmt.Sprintf(`
name: whole
source:
  connector: file
  config: {dir: %q, stable_for: 100ms, rescan_interval: 200ms}
sinks:
  - name: out
    connector: file-out
    config: {dir: %q, filename: 'whole/{{.Header "Vrsky-File-Name"}}'}
`, in1, out))
	h.Create(t, fmt.Sprintf(`
name: lines
source:
  connector: file
  config: {dir: %q, mode: lines, stable_for: 100ms, rescan_interval: 200ms}
sinks:
  - name: out
    connector: file-out
    config: {dir: %q, filename: 'lines/{{.Header "Vrsky-File-Record"}}.txt'}
`, in2, out))
	big := make([]byte, 3<<20+17)
	_, _ = rand.Read(big)
	drop(t, in1, "big.bin", string(big))
	drop(t, in1, "small.json", `{"small":true}`)
	drop(t, in2, "a.log", "alpha\nbeta\ngamma\n")

	runtimetest.WaitFor(t, time.Minute, "every file delivered", func() bool {
		return countFiles(filepath.Join(out, "whole")) == 2 && countFiles(filepath.Join(out, "lines")) == 3
	})
	if got := readFile(t, filepath.Join(out, "whole", "big.bin")); got != string(big) {
		t.Fatalf("big.bin arrived with %d bytes, not the original %d", len(got), len(big))
	}
	if got := readFile(t, filepath.Join(out, "whole", "small.json")); got != `{"small":true}` {
		t.Fatalf("small.json = %q", got)
	}
	for i, w := range []string{"alpha", "beta", "gamma"} {
		if got := readFile(t, filepath.Join(out, "lines", strconv.Itoa(i+1)+".txt")); got != w {
			t.Errorf("line %d = %q, want %q", i+1, got, w)
		}
	}
	runtimetest.WaitFor(t, waitLong, "the sources' files in processed/", func() bool {
		return exists(filepath.Join(in1, "processed", "big.bin")) && exists(filepath.Join(in2, "processed", "a.log"))
	})
	// The claim-checked payload is released once delivered.
	runtimetest.WaitFor(t, waitLong, "the payload object deleted", func() bool {
		os, err := h.Conn.JS.ObjectStore(context.Background(), "vrsky-objects")
		if err != nil {
			return false
		}
		l, err := os.List(context.Background())
		return err == jetstream.ErrNoObjectsFound || (err == nil && len(l) == 0)
	})
	if dl := h.DeadLetters(t, "whole"); len(dl) != 0 {
		t.Fatalf("dead letters: %+v", dl)
	}
}

// TestPipelineCollectsStaleCheckpoints: a checkpoint whose file is gone (a
// stop between the move and the checkpoint's deletion) is deleted when the
// source starts. (TestPipelineRestartMidFile shows a live one is kept.)
func TestPipelineCollectsStaleCheckpoints(t *testing.T) {
	in := t.TempDir()
	h := startHarness(t, false)
	ctx := context.Background()
	kv, err := h.Conn.JS.KeyValue(ctx, "vrsky_state")
	if err != nil {
		t.Fatal(err)
	}
	const stale = "acme.gc._source.f-00000000000000000000000000000000"
	if _, err := kv.Put(ctx, stale, []byte(`{"name":"gone.csv","records":5,"offset":40}`)); err != nil {
		t.Fatal(err)
	}
	h.Create(t, fmt.Sprintf(`
name: gc
source:
  connector: file
  config: {dir: %q, stable_for: 100ms}
sinks:
  - name: out
    connector: file-out
    config: {dir: %q}
`, in, t.TempDir()))
	runtimetest.WaitFor(t, waitLong, "the stale checkpoint deleted", func() bool { return len(stateKeys(t, h, "gc")) == 0 })
}

// TestPipelinePayloadTooLargeWithoutObjectStore: with no object store to
// claim-check into, a whole file over the NATS max payload (8 MiB on the embedded server) cannot be made
// durable; retrying cannot help, so it goes to failed/ with the reason.
func TestPipelinePayloadTooLargeWithoutObjectStore(t *testing.T) {
	in := t.TempDir()
	h := startHarness(t, false)
	h.Create(t, fmt.Sprintf(`
name: huge
source:
  connector: file
  config: {dir: %q, stable_for: 100ms}
sinks:
  - name: out
    connector: file-out
    config: {dir: %q}
`, in, t.TempDir()))
	drop(t, in, "huge.bin", strings.Repeat("x", 9<<20)) // the embedded server takes 8 MiB
	runtimetest.WaitFor(t, waitLong, "huge.bin in failed/", func() bool { return exists(filepath.Join(in, "failed", "huge.bin")) })
	if got := readFile(t, filepath.Join(in, "failed", "huge.bin.error")); !strings.Contains(got, "maximum payload exceeded") || !strings.HasSuffix(got, "records emitted: 0\n") {
		t.Fatalf("sidecar %q, want the max payload named", got)
	}
}

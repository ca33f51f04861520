package runtime_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vrsky/vrsky/host"
	"github.com/vrsky/vrsky/platform/blob"
	"github.com/vrsky/vrsky/platform/natsx/natsxtest"
	"github.com/vrsky/vrsky/runtime"
	"github.com/vrsky/vrsky/runtime/runtimetest"
)

func TestClaimCheckThreshold(t *testing.T) {
	h, bs := newBlobHarness(t, nil)
	rec, turnOn := switchable(h)
	h.Create(t, withAttempts(specYAML("big", "big", sinkYAML("api", rec, "")), 100))

	atLimit := `"` + strings.Repeat("a", runtime.DefaultClaimThreshold-2) + `"`
	overLimit := `"` + strings.Repeat("b", runtime.DefaultClaimThreshold-1) + `"`
	inline := h.Emit(t, "big", atLimit)
	claimed := h.Emit(t, "big", overLimit)
	if objectExists(t, bs, payloadKey("big", inline)) {
		t.Fatal("a payload of exactly 256 KiB was claim-checked")
	}
	if !objectExists(t, bs, payloadKey("big", claimed)) {
		t.Fatal("a payload of 256 KiB + 1 byte was not claim-checked")
	}
	turnOn()
	runtimetest.WaitFor(t, 15*time.Second, "both delivered", func() bool { return len(rec.Delivered()) == 2 })
	got := rec.Delivered()
	if got[inline] != atLimit || got[claimed] != overLimit {
		t.Fatalf("sink got %d and %d bytes, want %d and %d", len(got[inline]), len(got[claimed]), len(atLimit), len(overLimit))
	}
	runtimetest.WaitFor(t, 5*time.Second, "the object deleted after delivery", func() bool {
		return !objectExists(t, bs, payloadKey("big", claimed))
	})
}

func TestClaimCheckTenMiBTwoSinks(t *testing.T) {
	h, bs := newBlobHarness(t, nil)
	fast := h.Sinks.New(nil)
	slow, turnOn := switchable(h)
	h.Create(t, withAttempts(specYAML("tenmib", "tenmib", sinkYAML("fast", fast, ""), sinkYAML("slow", slow, "")), 100))

	payload := make([]byte, 10<<20)
	_, _ = rand.Read(payload)
	id := h.Emit(t, "tenmib", string(payload))
	runtimetest.WaitFor(t, 15*time.Second, "the fast sink's delivery", func() bool { return len(fast.Delivered()) == 1 })
	if !bytes.Equal([]byte(fast.Delivered()[id]), payload) {
		t.Fatal("the fast sink got a different payload")
	}
	if !objectExists(t, bs, payloadKey("tenmib", id)) {
		t.Fatal("the object was deleted while a sink still needed it")
	}
	turnOn()
	runtimetest.WaitFor(t, 15*time.Second, "the slow sink's delivery", func() bool { return len(slow.Delivered()) == 1 })
	if !bytes.Equal([]byte(slow.Delivered()[id]), payload) {
		t.Fatal("the slow sink got a different payload")
	}
	runtimetest.WaitFor(t, 5*time.Second, "the object deleted after both deliveries", func() bool {
		return !objectExists(t, bs, payloadKey("tenmib", id))
	})
}

func TestClaimCheckCorruptObjectIsPermanent(t *testing.T) {
	h, bs := newBlobHarness(t, nil)
	rec, _ := switchable(h) // never on: the message must fail on its digest, not on the sink
	h.Create(t, withAttempts(specYAML("corrupt", "corrupt", sinkYAML("api", rec, "")), 100))
	body := strings.Repeat("x", runtime.DefaultClaimThreshold+100)
	id := h.Emit(t, "corrupt", body)
	// Replaced through the store: the store's digest fits, the message's does not.
	if _, err := bs.Put(context.Background(), payloadKey("corrupt", id), strings.NewReader(strings.Repeat("y", len(body)))); err != nil {
		t.Fatal(err)
	}
	assertDigestDeadLetter(t, h, "corrupt")
}

// A payload file damaged on disk is found by the store's own check, and
// is as permanent as a digest the runtime finds wrong.
func TestClaimCheckCorruptFileIsPermanent(t *testing.T) {
	dir := t.TempDir()
	bs, err := blob.NewDir(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	h := runtimetest.Start(t, nil, manual, withBlobs(bs))
	rec, _ := switchable(h)
	h.Create(t, withAttempts(specYAML("corrupt", "corrupt", sinkYAML("api", rec, "")), 100))
	h.Emit(t, "corrupt", strings.Repeat("x", runtime.DefaultClaimThreshold+100))
	var file string
	runtimetest.WaitFor(t, 10*time.Second, "the payload file", func() bool {
		_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() && filepath.Base(filepath.Dir(p)) != "tmp" {
				file = p
			}
			return err
		})
		return file != ""
	})
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-1] = 'y'
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
	assertDigestDeadLetter(t, h, "corrupt")
}

// assertDigestDeadLetter waits for integration's one dead letter and
// checks that a digest failure ended it, and was met once: a permanent
// error, not retried.
func assertDigestDeadLetter(t *testing.T, h *runtimetest.Harness, integration string) {
	t.Helper()
	dl := h.WaitDeadLetters(t, integration, 1)[0]
	if !strings.Contains(dl.Error, "SHA-256") {
		t.Fatalf("dead letter error %q does not name the digest", dl.Error)
	}
	// The first attempts may have met the 503 before the object was
	// corrupted; exactly one attempt may meet the bad digest.
	var log []struct{ Error string }
	if err := json.Unmarshal(dl.AttemptLog, &log); err != nil {
		t.Fatal(err)
	}
	digestFailures := 0
	for _, a := range log {
		if strings.Contains(a.Error, "SHA-256") {
			digestFailures++
		}
	}
	if digestFailures != 1 || !strings.Contains(log[len(log)-1].Error, "SHA-256") {
		t.Fatalf("attempt log %s: want the last and only digest failure to end it", dl.AttemptLog)
	}
}

// A step that fails on a claim-checked payload dead-letters the message
// with its reference, so nothing is lost and replay can find the object.
func TestClaimCheckedStepFailureKeepsPayload(t *testing.T) {
	h, bs := newBlobHarness(t, nil, withWasmSteps(t, "jq"))
	rec := h.Sinks.New(nil)
	h.Create(t, `name: bigstep
source: {connector: test-source}
steps: [{connector: jq, config: {query: '.id'}}]
sinks: [{name: api, connector: test-sink, config: `+rec.Config()+`}]
retry: {max_attempts: 3, initial_backoff: 50ms, max_backoff: 200ms}
`)
	notJSON := strings.Repeat("not json ", runtime.DefaultClaimThreshold/8)
	id := h.Emit(t, "bigstep", notJSON)
	dl := h.WaitDeadLetters(t, "bigstep", 1)[0]
	if dl.MessageID != id || dl.Stage != "step:step-1" {
		t.Fatalf("dead letter of %q at stage %q, want %s at step:step-1", dl.MessageID, dl.Stage, id)
	}
	if n := len(dl.Error); n > 1100 {
		t.Fatalf("the dead letter's error header is %d bytes: error texts must be bounded", n)
	}
	ref := dl.Headers[runtime.HeaderPayloadRef]
	if ref == "" {
		t.Fatalf("the dead letter lost its payload reference (%d payload bytes)", dl.Size)
	}
	r, _, err := bs.Get(context.Background(), ref)
	if err != nil {
		t.Fatalf("the dead-lettered payload's object is gone: %v", err)
	}
	defer r.Close()
	b := new(bytes.Buffer)
	if _, err := b.ReadFrom(r); err != nil || b.String() != notJSON {
		t.Fatalf("object holds %d bytes (err %v), want the %d-byte payload", b.Len(), err, len(notJSON))
	}
}

// A step with the objects capability (the csv converter) reads a
// claim-checked payload by reference and writes its large result to an
// object of its own: the sink streams that, and both objects are gone
// once it is delivered.
func TestClaimCheckedStreamingStep(t *testing.T) {
	conn := natsxtest.Start(t)
	bs, err := blob.NewNATS(context.Background(), conn.JS, "vrsky-objects", 1)
	if err != nil {
		t.Fatal(err)
	}
	h := runtimetest.StartOn(t, conn, nil, manual, withBlobs(bs), withWasmStepsEnv(t, host.Env{Objects: bs}, "csv"))
	rec, turnOn := switchable(h)
	h.Create(t, `name: bigcsv
source: {connector: test-source}
steps: [{connector: csv, config: {split: false}}]
sinks: [{name: api, connector: test-sink, config: `+rec.Config()+`}]
retry: {max_attempts: 3, initial_backoff: 50ms, max_backoff: 200ms}
`)
	const rows = 40000
	var in strings.Builder
	in.WriteString("id,name\n")
	for i := range rows {
		fmt.Fprintf(&in, "%d,name %d\n", i, i)
	}
	if in.Len() <= runtime.DefaultClaimThreshold {
		t.Fatalf("the CSV is %d bytes: not claim-checked", in.Len())
	}
	id := h.Emit(t, "bigcsv", in.String())
	// While the sink is down, the step's output waits in an object of its
	// own, and the input's object, replaced, is gone.
	out := payloadKey("bigcsv", id+".o0")
	runtimetest.WaitFor(t, 30*time.Second, "the step's output object", func() bool { return objectExists(t, bs, out) })
	runtimetest.WaitFor(t, 10*time.Second, "the input object deleted", func() bool { return !objectExists(t, bs, payloadKey("bigcsv", id)) })
	turnOn()
	runtimetest.WaitFor(t, 30*time.Second, "the converted file delivered", func() bool { return len(rec.Delivered()) == 1 })
	var got []map[string]string
	if err := json.Unmarshal([]byte(rec.Delivered()[id]), &got); err != nil {
		t.Fatalf("the sink got %d bytes that are not a JSON array: %v", len(rec.Delivered()[id]), err)
	}
	if len(got) != rows || got[0]["id"] != "0" || got[rows-1]["name"] != fmt.Sprintf("name %d", rows-1) {
		t.Fatalf("the sink got %d records (first %v), want %d", len(got), got[0], rows)
	}
	runtimetest.WaitFor(t, 10*time.Second, "the output object deleted after delivery", func() bool { return !objectExists(t, bs, out) })
	h.WaitTrace(t, "bigcsv", id, runtime.StatusDelivered)
}

// A when expression sees a claim-checked payload's fields like an inline
// one's (the object is read back for it).
func TestClaimCheckedRouting(t *testing.T) {
	h, bs := newBlobHarness(t, nil)
	big, small := h.Sinks.New(nil), h.Sinks.New(nil)
	h.Create(t, specYAML("routed", "routed", sinkYAML("big", big, `kind == "big"`), sinkYAML("small", small, `kind == "small"`)))
	body := `{"kind":"big","pad":"` + strings.Repeat("x", runtime.DefaultClaimThreshold) + `"}`
	id := h.Emit(t, "routed", body)
	runtimetest.WaitFor(t, 15*time.Second, "the big sink's delivery", func() bool { return len(big.Delivered()) == 1 })
	if big.Delivered()[id] != body {
		t.Fatalf("the big sink got %d bytes, want the %d emitted", len(big.Delivered()[id]), len(body))
	}
	h.WaitTrace(t, "routed", id, runtime.StatusDelivered)
	if n := len(small.Delivered()); n != 0 {
		t.Fatalf("the small sink got %d messages", n)
	}
	if dl := h.DeadLetters(t, "routed"); len(dl) != 0 {
		t.Fatalf("%d dead letters, want none", len(dl))
	}
	runtimetest.WaitFor(t, 5*time.Second, "the object deleted", func() bool { return !objectExists(t, bs, payloadKey("routed", id)) })
}

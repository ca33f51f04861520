package runtime_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vrsky/vrsky/host"
	"github.com/vrsky/vrsky/platform/blob"
	"github.com/vrsky/vrsky/platform/natsx/natsxtest"
	"github.com/vrsky/vrsky/runtime"
)

func withBlobs(t *testing.T, bs blob.Store) func(*runtime.Config) {
	return func(c *runtime.Config) { c.Blobs = bs }
}

func newBlobHarness(t *testing.T) (*harness, blob.Store) {
	conn := natsxtest.Start(t)
	bs, err := blob.NewNATS(context.Background(), conn.JS, "vrsky-objects", 1)
	if err != nil {
		t.Fatal(err)
	}
	return newHarness(t, conn, withBlobs(t, bs)), bs
}

func payloadKey(integration, id string) string { return "payloads/acme/" + integration + "/" + id }

func objectExists(t *testing.T, bs blob.Store, key string) bool {
	_, err := bs.Stat(context.Background(), key)
	if err != nil && !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("stat %s: %v", key, err)
	}
	return err == nil
}

// switchable is a sink that answers 503 until it is switched on.
func switchable(t *testing.T) (*recorder, func()) {
	var mu sync.Mutex
	on := false
	rec := newRecorder(t, func(string, int) int {
		mu.Lock()
		defer mu.Unlock()
		if on {
			return 0
		}
		return http.StatusServiceUnavailable
	})
	return rec, func() { mu.Lock(); on = true; mu.Unlock() }
}

func TestClaimCheckThreshold(t *testing.T) {
	h, bs := newBlobHarness(t)
	rec, turnOn := switchable(t)
	h.create(t, strings.Replace(specYAML("big", "big", sinkYAML("api", rec.srv.URL, "")), "max_attempts: 3", "max_attempts: 100", 1))

	atLimit := `"` + strings.Repeat("a", runtime.DefaultClaimThreshold-2) + `"`
	overLimit := `"` + strings.Repeat("b", runtime.DefaultClaimThreshold-1) + `"`
	inline := h.post(t, "big", atLimit)
	claimed := h.post(t, "big", overLimit)
	if objectExists(t, bs, payloadKey("big", inline)) {
		t.Fatal("a payload of exactly 256 KiB was claim-checked")
	}
	if !objectExists(t, bs, payloadKey("big", claimed)) {
		t.Fatal("a payload of 256 KiB + 1 byte was not claim-checked")
	}
	turnOn()
	waitFor(t, 15*time.Second, "both delivered", func() bool { return len(rec.delivered()) == 2 })
	got := rec.delivered()
	if got[inline] != atLimit || got[claimed] != overLimit {
		t.Fatalf("sink got %d and %d bytes, want %d and %d", len(got[inline]), len(got[claimed]), len(atLimit), len(overLimit))
	}
	waitFor(t, 5*time.Second, "the object deleted after delivery", func() bool {
		return !objectExists(t, bs, payloadKey("big", claimed))
	})
}

func TestClaimCheckTenMiBTwoSinks(t *testing.T) {
	h, bs := newBlobHarness(t)
	fast := newRecorder(t, nil)
	slow, turnOn := switchable(t)
	h.create(t, strings.Replace(specYAML("tenmib", "tenmib", sinkYAML("fast", fast.srv.URL, ""), sinkYAML("slow", slow.srv.URL, "")), "max_attempts: 3", "max_attempts: 100", 1))

	payload := make([]byte, 10<<20)
	_, _ = rand.Read(payload)
	id := h.post(t, "tenmib", string(payload))
	waitFor(t, 15*time.Second, "the fast sink's delivery", func() bool { return len(fast.delivered()) == 1 })
	if !bytes.Equal([]byte(fast.delivered()[id]), payload) {
		t.Fatal("the fast sink got a different payload")
	}
	if !objectExists(t, bs, payloadKey("tenmib", id)) {
		t.Fatal("the object was deleted while a sink still needed it")
	}
	turnOn()
	waitFor(t, 15*time.Second, "the slow sink's delivery", func() bool { return len(slow.delivered()) == 1 })
	if !bytes.Equal([]byte(slow.delivered()[id]), payload) {
		t.Fatal("the slow sink got a different payload")
	}
	waitFor(t, 5*time.Second, "the object deleted after both deliveries", func() bool {
		return !objectExists(t, bs, payloadKey("tenmib", id))
	})
}

func TestClaimCheckCorruptObjectIsPermanent(t *testing.T) {
	h, bs := newBlobHarness(t)
	rec, _ := switchable(t) // never on: the message must fail on its digest, not on the sink
	h.create(t, strings.Replace(specYAML("corrupt", "corrupt", sinkYAML("api", rec.srv.URL, "")), "max_attempts: 3", "max_attempts: 100", 1))
	body := strings.Repeat("x", runtime.DefaultClaimThreshold+100)
	id := h.post(t, "corrupt", body)
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
	h := newHarness(t, natsxtest.Start(t), withBlobs(t, bs))
	rec, _ := switchable(t)
	h.create(t, strings.Replace(specYAML("corrupt", "corrupt", sinkYAML("api", rec.srv.URL, "")), "max_attempts: 3", "max_attempts: 100", 1))
	h.post(t, "corrupt", strings.Repeat("x", runtime.DefaultClaimThreshold+100))
	var file string
	waitFor(t, 10*time.Second, "the payload file", func() bool {
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
func assertDigestDeadLetter(t *testing.T, h *harness, integration string) {
	t.Helper()
	dl := dlqMessages(t, h, integration, 1)[0]
	hd := runtime.Header(dl.Headers())
	if !strings.Contains(hd.Get(runtime.HeaderError), "SHA-256") {
		t.Fatalf("dead letter error %q does not name the digest", hd.Get(runtime.HeaderError))
	}
	// The first attempts may have met the 503 before the object was
	// corrupted; exactly one attempt may meet the bad digest.
	var log []struct{ Error string }
	if err := json.Unmarshal([]byte(hd.Get(runtime.HeaderAttemptLog)), &log); err != nil {
		t.Fatal(err)
	}
	digestFailures := 0
	for _, a := range log {
		if strings.Contains(a.Error, "SHA-256") {
			digestFailures++
		}
	}
	if digestFailures != 1 || !strings.Contains(log[len(log)-1].Error, "SHA-256") {
		t.Fatalf("attempt log %s: want the last and only digest failure to end it", hd.Get(runtime.HeaderAttemptLog))
	}
}

// A step that fails on a claim-checked payload dead-letters the message
// with its reference, so nothing is lost and replay can find the object.
func TestClaimCheckedStepFailureKeepsPayload(t *testing.T) {
	conn := natsxtest.Start(t)
	bs, err := blob.NewNATS(context.Background(), conn.JS, "vrsky-objects", 1)
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, conn, withBlobs(t, bs), withWasmSteps(t, "jq"))
	rec := newRecorder(t, nil)
	h.create(t, `name: bigstep
source: {connector: http-webhook, config: {path: bigstep}}
steps: [{connector: jq, config: {query: '.id'}}]
sinks: [{name: api, connector: http, config: {url: "`+rec.srv.URL+`"}}]
retry: {max_attempts: 3, initial_backoff: 50ms, max_backoff: 200ms}
`)
	notJSON := strings.Repeat("not json ", runtime.DefaultClaimThreshold/8)
	id := h.post(t, "bigstep", notJSON)
	dl := dlqMessages(t, h, "bigstep", 1)[0]
	hd := runtime.Header(dl.Headers())
	if hd.Get(runtime.HeaderMsgID) != id || hd.Get(runtime.HeaderStage) != "step:step-1" {
		t.Fatalf("dead letter of %q at stage %q, want %s at step:step-1", hd.Get(runtime.HeaderMsgID), hd.Get(runtime.HeaderStage), id)
	}
	if n := len(hd.Get(runtime.HeaderError)); n > 1100 {
		t.Fatalf("the dead letter's error header is %d bytes: error texts must be bounded", n)
	}
	ref := hd.Get(runtime.HeaderPayloadRef)
	if ref == "" {
		t.Fatalf("the dead letter lost its payload reference (%d payload bytes)", len(dl.Data()))
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
	h := newHarness(t, conn, withBlobs(t, bs), withWasmStepsEnv(t, host.Env{Objects: bs}, "csv"))
	rec, turnOn := switchable(t)
	h.create(t, `name: bigcsv
source: {connector: http-webhook, config: {path: bigcsv}}
steps: [{connector: csv, config: {split: false}}]
sinks: [{name: api, connector: http, config: {url: "`+rec.srv.URL+`"}}]
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
	id := h.post(t, "bigcsv", in.String())
	// While the sink is down, the step's output waits in an object of its
	// own, and the input's object, replaced, is gone.
	out := payloadKey("bigcsv", id+".o0")
	waitFor(t, 30*time.Second, "the step's output object", func() bool { return objectExists(t, bs, out) })
	waitFor(t, 10*time.Second, "the input object deleted", func() bool { return !objectExists(t, bs, payloadKey("bigcsv", id)) })
	turnOn()
	waitFor(t, 30*time.Second, "the converted file delivered", func() bool { return len(rec.delivered()) == 1 })
	var got []map[string]string
	if err := json.Unmarshal([]byte(rec.delivered()[id]), &got); err != nil {
		t.Fatalf("the sink got %d bytes that are not a JSON array: %v", len(rec.delivered()[id]), err)
	}
	if len(got) != rows || got[0]["id"] != "0" || got[rows-1]["name"] != fmt.Sprintf("name %d", rows-1) {
		t.Fatalf("the sink got %d records (first %v), want %d", len(got), got[0], rows)
	}
	waitFor(t, 10*time.Second, "the output object deleted after delivery", func() bool { return !objectExists(t, bs, out) })
	waitTrace(t, h, "bigcsv", id, runtime.StatusDelivered)
}

// A when expression sees a claim-checked payload's fields like an inline
// one's (the object is read back for it).
func TestClaimCheckedRouting(t *testing.T) {
	h, bs := newBlobHarness(t)
	big, small := newRecorder(t, nil), newRecorder(t, nil)
	h.create(t, specYAML("routed", "routed", sinkYAML("big", big.srv.URL, `kind == "big"`), sinkYAML("small", small.srv.URL, `kind == "small"`)))
	body := `{"kind":"big","pad":"` + strings.Repeat("x", runtime.DefaultClaimThreshold) + `"}`
	id := h.post(t, "routed", body)
	waitFor(t, 15*time.Second, "the big sink's delivery", func() bool { return len(big.delivered()) == 1 })
	if big.delivered()[id] != body {
		t.Fatalf("the big sink got %d bytes, want the %d posted", len(big.delivered()[id]), len(body))
	}
	waitTrace(t, h, "routed", id, runtime.StatusDelivered)
	if n := len(small.delivered()); n != 0 {
		t.Fatalf("the small sink got %d messages", n)
	}
	dl, _, err := h.eng.ListDeadLetters(context.Background(), "acme", "routed", runtime.DLQFilter{})
	if err != nil || len(dl) != 0 {
		t.Fatalf("%d dead letters (%v), want none", len(dl), err)
	}
	waitFor(t, 5*time.Second, "the object deleted", func() bool { return !objectExists(t, bs, payloadKey("routed", id)) })
}

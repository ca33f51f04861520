package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"mime/multipart"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vrsky/vrsky/host/wasmcheck/wasmchecktest"
)

// rssBytes reads a process's resident set size.
func rssBytes(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("read status of %d: %v", pid, err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatalf("VmRSS %q: %v", v, err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no VmRSS for %d", pid)
	return 0
}

// upload posts a connector and returns the status and the decoded error.
func (in *instance) upload(key, manifest string, module []byte) (int, apiError) {
	in.t.Helper()
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	for name, b := range map[string][]byte{"manifest": []byte(manifest), "module": module} {
		f, err := w.CreateFormFile(name, name)
		if err != nil {
			in.t.Fatal(err)
		}
		f.Write(b)
	}
	w.Close()
	req, _ := http.NewRequest("POST", in.url+"/api/v1/connectors", &buf)
	req.Header.Set("Content-Type", w.FormDataContentType())
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		in.t.Fatalf("upload: %v", err)
	}
	defer resp.Body.Close()
	var body struct {
		Error apiError `json:"error"`
	}
	json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body.Error
}

type apiError struct {
	Code, Message, Field string
}

// healthWatch polls /healthz until stopped and keeps the slowest answer.
type healthWatch struct {
	stop    chan struct{}
	done    chan struct{}
	mu      sync.Mutex
	slowest time.Duration
	failed  error
}

func watchHealth(url string) *healthWatch {
	h := &healthWatch{stop: make(chan struct{}), done: make(chan struct{})}
	client := &http.Client{Timeout: 5 * time.Second}
	go func() {
		defer close(h.done)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-h.stop:
				return
			case <-tick.C:
			}
			start := time.Now()
			resp, err := client.Get(url + "/healthz")
			took := time.Since(start)
			h.mu.Lock()
			h.slowest = max(h.slowest, took)
			if err == nil && resp.StatusCode != http.StatusOK {
				err = fmt.Errorf("status %d", resp.StatusCode)
			}
			if err != nil && h.failed == nil {
				h.failed = err
			}
			h.mu.Unlock()
			if resp != nil {
				resp.Body.Close()
			}
		}
	}()
	return h
}

func (h *healthWatch) finish() (time.Duration, error) {
	close(h.stop)
	<-h.done
	return h.slowest, h.failed
}

const hostileManifest = "name: hostile\nversion: 1.0.0\nkind: step\nabi: 1\ndescription: A crafted module.\ncapabilities: {}\nconfig_schema: {type: object}\n"

// TestServeRefusesHostileUploads is issue 19's attack, against a real
// vrsky serve on embedded defaults: the crafted modules that ended the
// process (2^32-1 locals), swelled it to 1.4 GB (50,000,000 locals) or held
// an upload past 120 s (a million nested blocks, a br_table of a million
// targets) are each refused within 5 s naming the limit and the function;
// /healthz answers within 100 ms throughout, and the server's RSS grows by
// less than 64 MiB over them all.
func TestServeRefusesHostileUploads(t *testing.T) {
	in := startServe(t, t.TempDir(), freeAddr(t))
	key := in.tenantKey()
	base := rssBytes(t, in.cmd.Process.Pid)
	watch := watchHealth(in.url)
	tests := []struct {
		name string
		wasm []byte
		want string
	}{
		{"2^32-1 i32 locals", wasmchecktest.ManyLocals(0xffffffff, wasmchecktest.I32), "function 1: 4294967296 locals per function, over the limit of 50000"},
		{"50,000,000 i64 locals", wasmchecktest.ManyLocals(50_000_000, wasmchecktest.I64), "function 1: 50000001 locals per function"},
		{"1,000,000 nested blocks", wasmchecktest.NestedBlocks(1_000_000), "function 1: 10001 nesting depth"},
		{"br_table of 1,000,000 targets", wasmchecktest.BrTable(1_000_000), "function 1: 1000000 br_table targets"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			status, e := in.upload(key, hostileManifest, tc.wasm)
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("answered after %v", took)
			}
			if status != http.StatusBadRequest || e.Field != "module" || !strings.Contains(e.Message, tc.want) {
				t.Errorf("got %d %+v, want 400 on module naming %q", status, e, tc.want)
			}
		})
	}
	slowest, err := watch.finish()
	if err != nil {
		t.Errorf("/healthz failed during the uploads: %v", err)
	}
	if slowest > 100*time.Millisecond {
		t.Errorf("/healthz took %v at worst during the uploads, want under 100ms", slowest)
	}
	if grew := rssBytes(t, in.cmd.Process.Pid) - base; grew > 64<<20 {
		t.Errorf("RSS grew by %d MiB", grew>>20)
	}
}

// TestServeCompileBounds: a module within the structure limits whose
// compilation takes longer than --wasm-compile-timeout is refused with 422
// naming the bound, and the server stays up. The module is a real Go
// guest (the shipped csv converter, uploaded under another name).
func TestServeCompileBounds(t *testing.T) {
	wasm, err := os.ReadFile("../../wasm-connectors/build/csv.wasm")
	if err != nil {
		t.Fatalf("%v (make wasm builds it)", err)
	}
	in := serveCmd(t, t.TempDir(), freeAddr(t))
	in.cmd.Args = append(in.cmd.Args, "--wasm-compile-timeout", "50ms")
	if err := in.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	in.waitReady()
	key := in.tenantKey()
	status, e := in.upload(key, hostileManifest, wasm)
	if status != http.StatusUnprocessableEntity || e.Code != "unprocessable" || e.Field != "module" || !strings.Contains(e.Message, "rule compile_bounds") || !strings.Contains(e.Message, "compile time") {
		t.Errorf("got %d %+v, want 422 on module naming the compile time bound", status, e)
	}
	in.call("GET", "/healthz", "", "", "", http.StatusOK, nil)
}

// TestServeThrottlesWrongKeys: a burst of wrong API keys from one address
// ends in 429 with Retry-After, naming Authorization.
func TestServeThrottlesWrongKeys(t *testing.T) {
	in := startServe(t, t.TempDir(), freeAddr(t))
	wrong := "vrsk_0123456789abcdef_" + strings.Repeat("0", 64)
	var last *http.Response
	for i := 0; i < 30; i++ {
		req, _ := http.NewRequest("GET", in.url+"/api/v1/integrations", nil)
		req.Header.Set("Authorization", "Bearer "+wrong)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if last = resp; resp.StatusCode == http.StatusTooManyRequests {
			break
		}
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("wrong key %d: status %d", i, resp.StatusCode)
		}
	}
	if last.StatusCode != http.StatusTooManyRequests || last.Header.Get("Retry-After") == "" {
		t.Fatalf("after 30 wrong keys: status %d, Retry-After %q; want 429 with Retry-After", last.StatusCode, last.Header.Get("Retry-After"))
	}
}

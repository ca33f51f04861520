package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vrsky/vrsky/internal/testenv/pgtest"
	"github.com/vrsky/vrsky/internal/testenv/s3test"
)

// These tests run the real `vrsky serve` binary as a subprocess and talk to
// it over HTTP, the way a user does.

var vrskyBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "vrsky-bin")
	if err != nil {
		panic(err)
	}
	vrskyBin = filepath.Join(dir, "vrsky")
	// Built as the Makefile builds it: version and commit set by ldflags.
	out, err := exec.Command("go", "build", "-ldflags", "-X main.version="+testVersion+" -X main.commit="+testCommit, "-o", vrskyBin, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build vrsky: %v\n%s", err, out)
		os.Exit(1)
	}
	// The client commands the tests run in-process (and the binary, which
	// inherits this environment unless a test sets its own) must not see
	// the settings or the saved contexts of whoever runs the tests.
	for _, k := range []string{"VRSKY_URL", "VRSKY_API_KEY", "VRSKY_TENANT", "VRSKY_CONTEXT", configEnv} {
		os.Unsetenv(k)
	}
	os.Setenv("XDG_CONFIG_HOME", filepath.Join(dir, "config"))
	code := m.Run()
	os.RemoveAll(dir)
	if err := pgtest.Cleanup(); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	if err := s3test.Cleanup(); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	os.Exit(code)
}

const adminKey = "test-admin-key"

// instance is one `vrsky serve` process.
type instance struct {
	t    *testing.T
	cmd  *exec.Cmd
	url  string
	data string
	log  *bytes.Buffer
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// backends selects the production shape: PostgreSQL and S3 instead of the
// embedded defaults. The zero value is the embedded shape.
type backends struct {
	databaseURL string
	s3          *s3test.Config
}

// shapes are the two deployments every end-to-end test runs against.
func shapes(t *testing.T) map[string]func(t *testing.T) backends {
	return map[string]func(t *testing.T) backends{
		"embedded": func(*testing.T) backends { return backends{} },
		"postgres+s3": func(t *testing.T) backends {
			cfg := s3test.New(t)
			return backends{databaseURL: pgtest.New(t), s3: &cfg}
		},
	}
}

func (b backends) args() []string {
	var a []string
	if b.databaseURL != "" {
		a = append(a, "--database-url", b.databaseURL)
	}
	if b.s3 != nil {
		a = append(a, "--s3-endpoint", b.s3.Endpoint, "--s3-bucket", b.s3.Bucket, "--s3-region", b.s3.Region)
	}
	return a
}

func (b backends) env() []string {
	env := os.Environ()
	if b.s3 != nil {
		env = append(env, "AWS_ACCESS_KEY_ID="+b.s3.AccessKey, "AWS_SECRET_ACCESS_KEY="+b.s3.SecretKey)
	}
	return env
}

// startServe runs vrsky serve on data and addr and waits until /readyz answers 200.
func startServe(t *testing.T, data, addr string, be ...backends) *instance {
	t.Helper()
	in := serveCmd(t, data, addr, be...)
	if err := in.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return in.waitReady()
}

func serveCmd(t *testing.T, data, addr string, be ...backends) *instance {
	t.Helper()
	var b backends
	if len(be) > 0 {
		b = be[0]
	}
	in := &instance{t: t, url: "http://" + addr, data: data, log: &bytes.Buffer{}}
	args := append([]string{"serve", "--data", data, "--listen", addr, "--admin-key", adminKey, "--log-level", "warn"}, b.args()...)
	in.cmd = exec.Command(vrskyBin, args...)
	in.cmd.Env = b.env()
	in.cmd.Stdout, in.cmd.Stderr = in.log, in.log
	return in
}

func (in *instance) waitReady() *instance {
	t := in.t
	t.Helper()
	t.Cleanup(func() {
		if in.cmd.ProcessState == nil {
			_ = in.cmd.Process.Signal(syscall.SIGTERM)
			done := make(chan struct{})
			go func() { _ = in.cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				_ = in.cmd.Process.Kill()
				<-done
			}
		}
		if t.Failed() {
			t.Logf("vrsky serve output:\n%s", in.log.String())
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(in.url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return in
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("vrsky serve not ready after 60s:\n%s", in.log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kill9 kills the process without letting it clean up.
func (in *instance) kill9() {
	_ = in.cmd.Process.Signal(syscall.SIGKILL)
	_ = in.cmd.Wait()
}

// call sends a request and decodes the JSON answer; it fails the test on
// an unexpected status.
func (in *instance) call(method, path, key, contentType, body string, wantStatus int, out any) {
	in.t.Helper()
	req, _ := http.NewRequest(method, in.url+path, strings.NewReader(body))
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		in.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != wantStatus {
		in.t.Fatalf("%s %s: status %d, want %d: %s", method, path, resp.StatusCode, wantStatus, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			in.t.Fatalf("%s %s: decode %s: %v", method, path, b, err)
		}
	}
}

// setup creates tenant "acme" and an integration webhook → http sink at
// sinkURL, started; it returns the tenant's key.
func (in *instance) setup(sinkURL string) string {
	in.t.Helper()
	return in.setupKey(sinkURL, adminKey)
}

// setupKey is setup with the admin key admin.
func (in *instance) setupKey(sinkURL, admin string) string {
	in.t.Helper()
	var tenant struct {
		Name   string `json:"name"`
		APIKey string `json:"api_key"`
	}
	in.call("POST", "/api/v1/tenants", admin, "application/json", `{"name":"acme"}`, http.StatusCreated, &tenant)
	spec := fmt.Sprintf(`name: orders
source: {connector: http-webhook, config: {path: orders}}
sinks:
  - name: api
    connector: http
    config: {url: %q}
retry: {max_attempts: 50, initial_backoff: 100ms, max_backoff: 1s}
`, sinkURL)
	in.call("POST", "/api/v1/integrations", tenant.APIKey, "application/yaml", spec, http.StatusCreated, nil)
	in.call("POST", "/api/v1/integrations/orders/start", tenant.APIKey, "", "", http.StatusOK, nil)
	return tenant.APIKey
}

// post sends one webhook message and returns its id.
func (in *instance) post(body string) string {
	in.t.Helper()
	var out struct {
		ID string `json:"id"`
	}
	in.call("POST", "/hooks/acme/orders", "", "application/json", body, http.StatusAccepted, &out)
	if out.ID == "" {
		in.t.Fatal("webhook answered 202 without a message id")
	}
	return out.ID
}

// gatedSink records deliveries; while closed it holds requests and then
// fails them, as a sink that is down would.
type gatedSink struct {
	srv    *httptest.Server
	mu     sync.Mutex
	open   bool
	status int // when set, answered instead of a delivery
	got    map[string]int
}

func newGatedSink(t *testing.T, open bool) *gatedSink {
	s := &gatedSink{open: open, got: map[string]int{}}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.Copy(io.Discard, r.Body); err != nil { // a cut-off body is not a delivery
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if !s.open {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		if s.status != 0 {
			http.Error(w, "refused", s.status)
			return
		}
		s.got[r.Header.Get("Idempotency-Key")]++
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *gatedSink) setOpen(v bool) { s.mu.Lock(); s.open = v; s.mu.Unlock() }

func (s *gatedSink) setStatus(code int) { s.mu.Lock(); s.status = code; s.mu.Unlock() }

func (s *gatedSink) count() int { s.mu.Lock(); defer s.mu.Unlock(); return len(s.got) }

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestServeEndToEnd(t *testing.T) {
	for name, shape := range shapes(t) {
		t.Run(name, func(t *testing.T) { testServeEndToEnd(t, shape(t)) })
	}
}

func testServeEndToEnd(t *testing.T, be backends) {
	sink := newGatedSink(t, true)
	in := startServe(t, t.TempDir(), freeAddr(t), be)
	key := in.setup(sink.srv.URL)
	id := in.post(`{"order_id": 1}`)
	big := in.post(bigBody(300 << 10)) // over the claim-check threshold: through the object store
	waitFor(t, 15*time.Second, "delivery", func() bool { return sink.count() == 2 })
	sink.mu.Lock()
	n, nbig := sink.got[id], sink.got[big]
	sink.mu.Unlock()
	if n != 1 || nbig != 1 {
		t.Fatalf("messages delivered %d and %d times, want once each", n, nbig)
	}
	var got struct {
		Status struct {
			State string `json:"state"`
		} `json:"status"`
	}
	in.call("GET", "/api/v1/integrations/orders", key, "", "", http.StatusOK, &got)
	if got.Status.State != "running" {
		t.Fatalf("state = %q, want running", got.Status.State)
	}
	waitTraceState(t, in, key, big, "delivered")

	// A sink that refuses the message for good: the DLQ has it, replay delivers it.
	sink.setStatus(http.StatusBadRequest)
	doomed := in.post(`{"order_id": 2}`)
	waitTraceState(t, in, key, doomed, "dead_lettered")
	var page struct {
		Items []struct {
			ID        string `json:"id"`
			MessageID string `json:"message_id"`
			Attempts  int    `json:"attempts"`
		} `json:"items"`
	}
	in.call("GET", "/api/v1/integrations/orders/dlq", key, "", "", http.StatusOK, &page)
	if len(page.Items) != 1 || page.Items[0].MessageID != doomed || page.Items[0].Attempts != 1 {
		t.Fatalf("dead letters = %+v, want %s after 1 attempt", page.Items, doomed)
	}
	sink.setStatus(0)
	in.call("POST", "/api/v1/integrations/orders/dlq/"+page.Items[0].ID+"/replay", key, "", "", http.StatusOK, nil)
	waitTraceState(t, in, key, doomed, "delivered")
}

// waitTraceState polls GET .../messages/{id} until the message is in state.
func waitTraceState(t *testing.T, in *instance, key, id, state string) {
	t.Helper()
	waitFor(t, 20*time.Second, "message "+id+" "+state, func() bool {
		req, _ := http.NewRequest("GET", in.url+"/api/v1/integrations/orders/messages/"+id, nil)
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var tr struct{ State string }
		return resp.StatusCode == http.StatusOK && json.NewDecoder(resp.Body).Decode(&tr) == nil && tr.State == state
	})
}

// TestKill9LosesNothing accepts messages while the sink is down, kills
// vrsky serve with SIGKILL, restarts it on the same data and checks that
// every accepted message is delivered.
func TestKill9LosesNothing(t *testing.T) {
	for name, shape := range shapes(t) {
		t.Run(name, func(t *testing.T) { testKill9LosesNothing(t, shape(t)) })
	}
}

func testKill9LosesNothing(t *testing.T, be backends) {
	sink := newGatedSink(t, false)
	data, addr := t.TempDir(), freeAddr(t)
	in := startServe(t, data, addr, be)
	in.setup(sink.srv.URL)
	const n = 300
	ids := make([]string, n)
	for i := range ids {
		ids[i] = in.post(fmt.Sprintf(`{"order_id": %d}`, i))
	}
	in.kill9()

	sink.setOpen(true)
	startServe(t, data, addr, be)
	waitFor(t, 60*time.Second, fmt.Sprintf("%d deliveries after restart", n), func() bool { return sink.count() == n })
	sink.mu.Lock()
	defer sink.mu.Unlock()
	for _, id := range ids {
		if sink.got[id] == 0 {
			t.Errorf("accepted message %s was never delivered", id)
		}
	}
}

// TestKill9MidStreamExactlyOnceToDedupingSink kills vrsky serve with
// SIGKILL while 10,000 messages are flowing through it to a live sink,
// restarts it, and checks that every accepted message is delivered at
// least once — and, by a sink that drops repeated Idempotency-Keys,
// exactly once.
func TestKill9MidStreamExactlyOnceToDedupingSink(t *testing.T) {
	sink := newGatedSink(t, true)
	data, addr := t.TempDir(), freeAddr(t)
	in := startServe(t, data, addr)
	in.setup(sink.srv.URL)

	const total, clients = 10000, 16
	client := &http.Client{Timeout: 10 * time.Second}
	var (
		mu       sync.Mutex
		accepted []string
		wg       sync.WaitGroup
		killOnce sync.Once
	)
	post := func(i int) (string, bool) {
		resp, err := client.Post(in.url+"/hooks/acme/orders", "application/json", strings.NewReader(fmt.Sprintf(`{"order_id": %d}`, i)))
		if err != nil {
			return "", false // the server is gone: not accepted, nothing owed
		}
		defer resp.Body.Close()
		var out struct{ ID string }
		if resp.StatusCode != http.StatusAccepted || json.NewDecoder(resp.Body).Decode(&out) != nil {
			return "", false
		}
		return out.ID, true
	}
	for c := range clients {
		wg.Go(func() {
			for i := c; i < total; i += clients {
				id, ok := post(i)
				if !ok {
					continue
				}
				mu.Lock()
				accepted = append(accepted, id)
				n := len(accepted)
				mu.Unlock()
				if n == total/2 {
					killOnce.Do(in.kill9)
				}
			}
		})
	}
	wg.Wait()
	killOnce.Do(in.kill9)
	t.Logf("accepted %d of %d before the kill; %d delivered before it", len(accepted), total, sink.count())

	startServe(t, data, addr)
	mu.Lock()
	defer mu.Unlock()
	waitFor(t, 120*time.Second, fmt.Sprintf("%d accepted messages delivered", len(accepted)), func() bool {
		sink.mu.Lock()
		defer sink.mu.Unlock()
		for _, id := range accepted {
			if sink.got[id] == 0 {
				return false
			}
		}
		return true
	})
	sink.mu.Lock()
	defer sink.mu.Unlock()
	dups := 0
	for _, n := range sink.got {
		dups += n - 1
	}
	// The sink counts every arrival; a deduping sink keeps one per key.
	if len(sink.got) < len(accepted) {
		t.Fatalf("deduping sink holds %d distinct messages, want %d", len(sink.got), len(accepted))
	}
	t.Logf("redelivered duplicates (dropped by the deduping sink): %d", dups)
}

package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// listen serves e on a real loopback listener and returns its base URL.
func (e *testEnv) listen(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- e.srv.ListenOn(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := e.srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("ListenOn: %v", err)
		}
	})
	return "http://" + ln.Addr().String()
}

// call makes a real HTTP request.
func call(t *testing.T, method, url, key, contentType string, body []byte) (*http.Response, []byte) {
	t.Helper()
	r, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		r.Header.Set("Authorization", "Bearer "+key)
	}
	if contentType != "" {
		r.Header.Set("Content-Type", contentType)
	}
	res, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, b
}

// TestEndToEnd: over real HTTP, create a tenant and an http-webhook → http
// integration, start it, post to its hook and see the sink receive it.
func TestEndToEnd(t *testing.T) {
	e := newTestEnv(t, func(c *Config) { c.HookBodyLimit = 64 << 10 })
	base := e.listen(t)

	var mu sync.Mutex
	var got [][]byte
	var gotIDs []string
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, b)
		gotIDs = append(gotIDs, r.Header.Get("Idempotency-Key"))
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(sink.Close)

	res, body := call(t, "POST", base+"/api/v1/tenants", testAdminKey, "application/json", []byte(`{"name":"acme"}`))
	if res.StatusCode != http.StatusCreated {
		t.Fatalf("create tenant: %d %s", res.StatusCode, body)
	}
	var tenant struct {
		Name   string `json:"name"`
		APIKey string `json:"api_key"`
	}
	if err := json.Unmarshal(body, &tenant); err != nil || tenant.APIKey == "" {
		t.Fatalf("create tenant answered %s (%v)", body, err)
	}

	spec := webhookSpec("orders", "shop/orders", sink.URL)
	res, body = call(t, "POST", base+"/api/v1/integrations", tenant.APIKey, "application/x-yaml", []byte(spec))
	if res.StatusCode != http.StatusCreated {
		t.Fatalf("create integration: %d %s", res.StatusCode, body)
	}
	res, body = call(t, "POST", base+"/api/v1/integrations/orders/start", tenant.APIKey, "", nil)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("start: %d %s", res.StatusCode, body)
	}

	payload := []byte(`{"order_id":42,"amount":9.5}`)
	res, body = call(t, "POST", base+"/hooks/acme/shop/orders", "", "application/json", payload)
	if res.StatusCode != http.StatusAccepted {
		t.Fatalf("hook: %d %s", res.StatusCode, body)
	}
	var accepted struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(body, &accepted); err != nil || accepted.ID == "" {
		t.Fatalf("hook answered %s (%v)", body, err)
	}
	if h := res.Header.Get("Vrsky-Msg-Id"); h != accepted.ID {
		t.Fatalf("Vrsky-Msg-Id %q, body id %q", h, accepted.ID)
	}

	eventually(t, 15*time.Second, "the sink to receive the payload", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) > 0
	})
	mu.Lock()
	if !bytes.Equal(got[0], payload) || gotIDs[0] != accepted.ID {
		t.Fatalf("sink received %q (id %q), want %q (id %q)", got[0], gotIDs[0], payload, accepted.ID)
	}
	mu.Unlock()

	// The counters show it.
	eventually(t, 5*time.Second, "the delivered counter", func() bool {
		_, body := call(t, "GET", base+"/api/v1/integrations/orders", tenant.APIKey, "", nil)
		var v integrationView
		return json.Unmarshal(body, &v) == nil && len(v.Status.Sinks) == 1 && v.Status.Sinks[0].Delivered == 1 && v.Status.Ingested == 1
	})

	// A body over the hook limit is refused by the server itself, still as JSON.
	res, body = call(t, "POST", base+"/hooks/acme/shop/orders", "", "application/json", bytes.Repeat([]byte("x"), 65<<10))
	if res.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(body), `"field":"body"`) {
		t.Fatalf("oversized hook: %d %s", res.StatusCode, body)
	}
	// Refused before its body was read, the connection cannot carry the
	// next request: the rest of the body would be parsed as one.
	if !res.Close {
		t.Fatal("the 413 answered before reading the body left the connection open")
	}
	// Over the server-wide limit (the larger of the two), the answer comes
	// from the announced Content-Length, before the body is read: only the
	// headers and the first 16 KiB (more than the server reads ahead) are sent.
	res, body = announceBody(t, base, "/hooks/acme/shop/orders", 1<<20+1)
	if res.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(body), `"field":"body"`) {
		t.Fatalf("hook over the server limit: %d %s", res.StatusCode, body)
	}
	// A body between the API limit and the hook limit is fine on the hook.
	res, body = call(t, "POST", base+"/hooks/acme/shop/orders", "", "application/json", []byte(fmt.Sprintf(`{"pad":%q}`, strings.Repeat("x", 2<<10))))
	if res.StatusCode != http.StatusAccepted {
		t.Fatalf("2 KiB hook: %d %s", res.StatusCode, body)
	}
	// A stopped integration's hook is gone.
	call(t, "POST", base+"/api/v1/integrations/orders/stop", tenant.APIKey, "", nil)
	res, body = call(t, "POST", base+"/hooks/acme/shop/orders", "", "application/json", payload)
	if res.StatusCode != http.StatusNotFound || !strings.Contains(string(body), `"code":"not_found"`) {
		t.Fatalf("hook of a stopped integration: %d %s", res.StatusCode, body)
	}
}

// announceBody sends a POST whose headers announce n body bytes, sends no
// body, and reads the answer.
func announceBody(t *testing.T, base, path string, n int) (*http.Response, []byte) {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", path, n)
	_, _ = conn.Write(bytes.Repeat([]byte("x"), min(n, 16<<10))) // more than the server reads ahead
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("read answer: %v", err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, b
}

package http_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	httpconn "github.com/vrsky/vrsky/builtin/http"
	"github.com/vrsky/vrsky/platform/schema"
	"github.com/vrsky/vrsky/runtime"
)

// captured is one request as the server saw it.
type captured struct {
	Method, Path, RawQuery string
	Header                 http.Header
	Body                   string
}

// capture is a real HTTP endpoint that records requests and answers
// status (200 when 0).
type capture struct {
	srv    *httptest.Server
	mu     sync.Mutex
	reqs   []captured
	status int
}

func newCapture(t *testing.T) *capture {
	c := &capture{}
	c.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		c.mu.Lock()
		c.reqs = append(c.reqs, captured{r.Method, r.URL.EscapedPath(), r.URL.RawQuery, r.Header.Clone(), string(b)})
		code := c.status
		c.mu.Unlock()
		if code != 0 {
			http.Error(w, "nope", code)
		}
	}))
	t.Cleanup(c.srv.Close)
	return c
}

func (c *capture) requests() []captured {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]captured(nil), c.reqs...)
}

func newSink(t *testing.T, cfg string) runtime.Sink { return newSinkB(t, cfg) }

func newSinkB(t testing.TB, cfg string) runtime.Sink {
	t.Helper()
	sk, err := httpconn.Sink.NewSink(json.RawMessage(cfg), runtime.Env{})
	if err != nil {
		t.Fatalf("NewSink(%s): %v", cfg, err)
	}
	t.Cleanup(func() { sk.Close() })
	return sk
}

func message(id, data string, hdr ...string) *runtime.Message {
	h := runtime.Header{}
	for i := 0; i+1 < len(hdr); i += 2 {
		h.Set(hdr[i], hdr[i+1])
	}
	return &runtime.Message{ID: id, Header: h, Data: []byte(data)}
}

func TestSinkTemplates(t *testing.T) {
	srv := newCapture(t)
	cfg := `{"url":"` + srv.srv.URL + `/shops/{{shop.name}}/orders/{{ id }}?ref={{header:X-Ref}}",
		"headers":{"X-Order":"{{id}}","X-Total":"{{total}}","X-Item":"{{items.1.sku}}","X-Static":"yes"}}`
	sk := newSink(t, cfg)
	for _, tc := range []struct {
		name     string
		msg      *runtime.Message
		wantErr  string // "" = delivered
		wantPath string
		wantQ    string
		wantHdr  map[string]string
	}{
		{"fields and header", message("m1", `{"id":42,"total":10.50,"shop":{"name":"a b/c"},"items":[{"sku":"x"},{"sku":"y"}]}`, "X-Ref", "r&1"),
			"", "/shops/a%20b%2Fc/orders/42", "ref=r%261",
			map[string]string{"X-Order": "42", "X-Total": "10.50", "X-Item": "y", "X-Static": "yes"}},
		{"missing payload field", message("m2", `{"id":1,"total":1,"items":[{},{"sku":"y"}]}`, "X-Ref", "r"),
			"field shop.name is missing from the payload", "", "", nil},
		{"missing array element", message("m3", `{"id":1,"total":1,"shop":{"name":"s"},"items":[{"sku":"x"}]}`, "X-Ref", "r"),
			"field items.1.sku is missing from the payload", "", "", nil},
		{"missing header", message("m4", `{"id":1,"total":1,"shop":{"name":"s"},"items":[{},{"sku":"y"}]}`),
			"header X-Ref is missing from the message", "", "", nil},
		{"payload not JSON", message("m5", `id=1`, "X-Ref", "r"),
			"payload is not JSON", "", "", nil},
		{"header value with a newline", message("m6", `{"id":"1\r\nEvil: yes","total":1,"shop":{"name":"s"},"items":[{},{"sku":"y"}]}`, "X-Ref", "r"),
			"control characters", "", "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(srv.requests())
			err := sk.Deliver(context.Background(), tc.msg)
			reqs := srv.requests()[before:]
			if tc.wantErr != "" {
				if err == nil || !runtime.IsPermanent(err) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want a permanent error containing %q", err, tc.wantErr)
				}
				if len(reqs) != 0 {
					t.Fatalf("%d requests sent for a message that cannot render", len(reqs))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(reqs) != 1 {
				t.Fatalf("%d requests, want 1", len(reqs))
			}
			r := reqs[0]
			if r.Path != tc.wantPath || r.RawQuery != tc.wantQ || r.Body != string(tc.msg.Data) {
				t.Fatalf("got path %q query %q body %q; want %q %q %q", r.Path, r.RawQuery, r.Body, tc.wantPath, tc.wantQ, tc.msg.Data)
			}
			for k, v := range tc.wantHdr {
				if got := r.Header.Get(k); got != v {
					t.Errorf("header %s = %q, want %q", k, got, v)
				}
			}
			if r.Header.Get("Idempotency-Key") != tc.msg.ID {
				t.Errorf("Idempotency-Key %q, want %q", r.Header.Get("Idempotency-Key"), tc.msg.ID)
			}
		})
	}
}

func TestSinkAuth(t *testing.T) {
	t.Setenv("T_TOKEN", "tok-123")
	t.Setenv("T_PASS", "p@ss")
	t.Setenv("T_HMAC", "k3y")
	body := `{"n":1}`
	mac := hmac.New(sha256.New, []byte("k3y"))
	mac.Write([]byte(body))
	wantSig := "sha256=" + hex.EncodeToString(mac.Sum(nil))
	for _, tc := range []struct {
		name   string
		auth   string
		verify func(r *http.Request, body []byte) bool
	}{
		{"bearer", `{"type":"bearer","token_env":"T_TOKEN"}`, func(r *http.Request, _ []byte) bool {
			return r.Header.Get("Authorization") == "Bearer tok-123"
		}},
		{"basic", `{"type":"basic","username":"ann","password_env":"T_PASS"}`, func(r *http.Request, _ []byte) bool {
			u, p, ok := r.BasicAuth()
			return ok && u == "ann" && p == "p@ss"
		}},
		{"hmac default header", `{"type":"hmac","secret_env":"T_HMAC"}`, func(r *http.Request, b []byte) bool {
			m := hmac.New(sha256.New, []byte("k3y"))
			m.Write(b)
			return r.Header.Get("X-Signature-256") == "sha256="+hex.EncodeToString(m.Sum(nil)) && r.Header.Get("X-Signature-256") == wantSig
		}},
		{"hmac own header", `{"type":"hmac","secret_env":"T_HMAC","header":"X-Hub-Signature-256","algorithm":"sha256"}`, func(r *http.Request, _ []byte) bool {
			return r.Header.Get("X-Hub-Signature-256") == wantSig && r.Header.Get("X-Signature-256") == ""
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				if !tc.verify(r, b) {
					http.Error(w, "unauthorized", http.StatusUnauthorized)
				}
			}))
			defer srv.Close()
			sk := newSink(t, `{"url":"`+srv.URL+`","auth":`+tc.auth+`,"headers":{"Authorization":"overridden"}}`)
			if err := sk.Deliver(context.Background(), message("m1", body)); err != nil {
				t.Fatalf("server refused the credentials: %v", err)
			}
		})
	}
	t.Run("wrong credentials are permanent 401", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, `{"error":"bad token"}`, http.StatusUnauthorized)
		}))
		defer srv.Close()
		sk := newSink(t, `{"url":"`+srv.URL+`","auth":{"type":"bearer","token_env":"T_TOKEN"}}`)
		err := sk.Deliver(context.Background(), message("m1", body))
		if !runtime.IsPermanent(err) || !strings.Contains(err.Error(), "401") || !strings.Contains(err.Error(), "bad token") {
			t.Fatalf("err = %v, want a permanent 401 quoting the body", err)
		}
	})
}

func TestSinkBadConfig(t *testing.T) {
	t.Setenv("T_SET", "x")
	for _, tc := range []struct {
		name, cfg, field string
	}{
		{"bearer env unset", `{"url":"http://h","auth":{"type":"bearer","token_env":"VRSKY_TEST_UNSET_1"}}`, "auth.token_env"},
		{"basic env unset", `{"url":"http://h","auth":{"type":"basic","username":"u","password_env":"VRSKY_TEST_UNSET_2"}}`, "auth.password_env"},
		{"hmac env unset", `{"url":"http://h","auth":{"type":"hmac","secret_env":"VRSKY_TEST_UNSET_3"}}`, "auth.secret_env"},
		{"basic without user", `{"url":"http://h","auth":{"type":"basic","password_env":"T_SET"}}`, "auth.username"},
		{"unknown auth", `{"url":"http://h","auth":{"type":"digest"}}`, "auth.type"},
		{"unclosed url template", `{"url":"http://h/{{id"}`, "url"},
		{"templated host", `{"url":"http://{{host}}/x"}`, "url"},
		{"partly templated host", `{"url":"https://api-{{region}}.example.com/x"}`, "url"},
		{"no host", `{"url":"https:///x"}`, "url"},
		{"not http", `{"url":"ftp://h"}`, "url"},
		{"bad header template", `{"url":"http://h","headers":{"X-A":"{{}}"}}`, "headers.X-A"},
		{"bad header name", `{"url":"http://h","headers":{"X A":"v"}}`, "headers"},
		{"negative batch", `{"url":"http://h","batch":{"max_messages":-1,"max_wait":"1s"}}`, "batch.max_messages"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := httpconn.Sink.NewSink(json.RawMessage(tc.cfg), runtime.Env{})
			if err == nil {
				t.Fatal("NewSink accepted a bad config")
			}
			err = httpconn.Sink.Check(context.Background(), json.RawMessage(tc.cfg), runtime.Env{})
			var fe *runtime.SpecError
			if tc.field != "" && (!errors.As(err, &fe) || fe.Field != tc.field) {
				t.Fatalf("Check: %v, want a SpecError on %q", err, tc.field)
			}
		})
	}
	for _, ok := range []string{`{"url":"http://h?q={{a}}"}`, `{"url":"http://h#{{a}}"}`, `{"url":"http://h:80/{{a}}"}`} {
		if err := httpconn.Sink.Check(context.Background(), json.RawMessage(ok), runtime.Env{}); err != nil {
			t.Errorf("Check(%s): %v", ok, err)
		}
	}
	if _, err := httpconn.Sink.NewSink(json.RawMessage(`{"url":"http://h","bogus":1}`), runtime.Env{}); err == nil {
		t.Fatal("NewSink accepted an unknown field")
	}
}

// TestSinkSchemas checks that the configs of the first version still
// validate (backward compatibility) and the schema refuses what it should.
func TestSinkSchemas(t *testing.T) {
	for _, c := range []struct {
		conn runtime.Connector
		cfg  string
		ok   bool
	}{
		{httpconn.Sink, `{"url":"http://127.0.0.1:8080"}`, true},
		{httpconn.Sink, `{"url":"https://example.com/a?b=c","method":"PUT","headers":{"A":"b"},"timeout":"2s"}`, true},
		{httpconn.Sink, `{"url":"https://example.com/o/{{id}}","auth":{"type":"hmac","secret_env":"S"},"batch":{"max_messages":10,"max_wait":"1s"},"max_concurrency":8}`, true},
		{httpconn.Sink, `{"url":"https://example.com","auth":{"type":"bearer","token_env":"T"}}`, true},
		{httpconn.Sink, `{"url":"https://example.com","auth":{"type":"basic","username":"u","password_env":"P"}}`, true},
		{httpconn.Sink, `{"url":"https://example.com","auth":{"type":"bearer","token":"inline-secret"}}`, false},
		{httpconn.Sink, `{"url":"https://example.com","auth":{"type":"hmac","secret_env":"S","algorithm":"md5"}}`, false},
		{httpconn.Sink, `{"url":"https://example.com","batch":{"max_messages":0}}`, false},
		{httpconn.Sink, `{"url":"https://example.com","max_concurrency":-1}`, false},
		{httpconn.Sink, `{"url":"example.com"}`, false},
		{httpconn.Sink, `{"url":"https://example.com","extra":1}`, false},
		{httpconn.Webhook, `{"path":"gh","secret_env":"S","content_types":["application/json"]}`, true},
		{httpconn.Webhook, `{"path":"gh","max_body_bytes":1024,"sync":true,"sync_timeout":"2s"}`, true},
		{httpconn.Webhook, `{"path":"gh","max_body_bytes":-1}`, false},
		{httpconn.Webhook, `{"path":"gh","sync_timeout":"soon"}`, false},
	} {
		s, err := schema.Compile(c.conn.Name, c.conn.ConfigSchema)
		if err != nil {
			t.Fatal(err)
		}
		var doc any
		if err := json.Unmarshal([]byte(c.cfg), &doc); err != nil {
			t.Fatal(err)
		}
		if fe := s.Validate(doc, "config"); (fe == nil) != c.ok {
			t.Errorf("%s %s: validation error %v, want ok=%v", c.conn.Name, c.cfg, fe, c.ok)
		}
	}
}

func TestSinkErrorQuotesStatusAndBody(t *testing.T) {
	long := strings.Repeat("x", 2000)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "7")
		http.Error(w, "upstream exploded: "+long, http.StatusBadGateway)
	}))
	defer srv.Close()
	sk := newSink(t, `{"url":"`+srv.URL+`/p?api_key=secret"}`)
	err := sk.Deliver(context.Background(), message("m1", `{}`))
	if err == nil || runtime.IsPermanent(err) {
		t.Fatalf("err = %v, want a retryable error", err)
	}
	msg := err.Error()
	for _, want := range []string{"502 Bad Gateway", "upstream exploded: xxx", "retry after 7s", srv.URL + "/p"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q lacks %q", msg, want)
		}
	}
	if strings.Contains(msg, "secret") || len(msg) > 600 {
		t.Errorf("error leaks the query or quotes too much (%d bytes): %q", len(msg), msg)
	}
}

// TestSinkConcurrencyLimit counts requests in flight at the server: the
// first three are held until the third arrives, so reaching the limit is
// certain, and exceeding it would be seen.
func TestSinkConcurrencyLimit(t *testing.T) {
	const limit, total = 3, 24
	var mu sync.Mutex
	inflight, peak, served := 0, 0, 0
	full := make(chan struct{})
	var once sync.Once
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		inflight++
		served++
		peak = max(peak, inflight)
		if inflight == limit {
			once.Do(func() { close(full) })
		}
		mu.Unlock()
		select {
		case <-full:
		case <-time.After(20 * time.Second):
		}
		time.Sleep(time.Millisecond) // let the others pile up at the client
		mu.Lock()
		inflight--
		mu.Unlock()
	}))
	defer srv.Close()
	sk := newSink(t, `{"url":"`+srv.URL+`","max_concurrency":3}`)
	var wg sync.WaitGroup
	errs := make(chan error, total)
	for i := range total {
		wg.Go(func() {
			errs <- sk.Deliver(context.Background(), message("m"+string(rune('a'+i)), `{}`))
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if peak != limit || served != total {
		t.Fatalf("peak concurrency %d (want %d), served %d (want %d)", peak, limit, served, total)
	}
}

func TestSinkKinds(t *testing.T) {
	plain := newSink(t, `{"url":"http://127.0.0.1:1"}`)
	if _, ok := plain.(runtime.BatchSink); ok {
		t.Fatal("without batch the sink must stay a plain Sink")
	}
	b := newSink(t, `{"url":"http://127.0.0.1:1","batch":{"max_messages":7,"max_wait":"150ms"},"max_concurrency":2}`)
	bs, ok := b.(runtime.BatchSink)
	if !ok {
		t.Fatal("with batch the sink must be a BatchSink")
	}
	if got := bs.Batching(); got != (runtime.Batching{MaxMessages: 7, MaxWait: 150 * time.Millisecond, Concurrency: 2}) {
		t.Fatalf("Batching() = %+v", got)
	}
	d := newSink(t, `{"url":"http://127.0.0.1:1","batch":{}}`).(runtime.BatchSink).Batching()
	if d.MaxMessages != 100 || d.MaxWait != 50*time.Millisecond {
		t.Fatalf("default Batching() = %+v, want 100 and 50ms", d)
	}
}

// TestSinkDeliverBatch: messages that render different URLs go in
// separate arrays; a payload that is not JSON or lacks a field fails
// alone; the others share their request's outcome.
func TestSinkDeliverBatch(t *testing.T) {
	srv := newCapture(t)
	sk := newSink(t, `{"url":"`+srv.srv.URL+`/t/{{team}}","batch":{"max_messages":10}}`).(runtime.BatchSink)
	msgs := []*runtime.Message{
		message("1", `{"team":"a","n":1}`),
		message("2", `{"team":"b","n":2}`),
		message("3", `not json`),
		message("4", `{"team":"a","n":4}`),
		message("5", `{"n":5}`),
	}
	errs := sk.DeliverBatch(context.Background(), msgs)
	if len(errs) != 5 || errs[0] != nil || errs[1] != nil || errs[3] != nil {
		t.Fatalf("errs = %v", errs)
	}
	if !runtime.IsPermanent(errs[2]) || !strings.Contains(errs[2].Error(), "not JSON") {
		t.Fatalf("errs[2] = %v", errs[2])
	}
	if !runtime.IsPermanent(errs[4]) || !strings.Contains(errs[4].Error(), "field team is missing") {
		t.Fatalf("errs[4] = %v", errs[4])
	}
	reqs := srv.requests()
	if len(reqs) != 2 {
		t.Fatalf("%d requests, want 2", len(reqs))
	}
	want := map[string]string{"/t/a": `[{"team":"a","n":1},{"team":"a","n":4}]`, "/t/b": `[{"team":"b","n":2}]`}
	for _, r := range reqs {
		if want[r.Path] != r.Body {
			t.Errorf("%s got %s, want %s", r.Path, r.Body, want[r.Path])
		}
		if !strings.HasPrefix(r.Header.Get("Idempotency-Key"), "batch-") || r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("headers %v", r.Header)
		}
	}
	// The whole request shares the outcome.
	srv.mu.Lock()
	srv.status = 503
	srv.mu.Unlock()
	errs = sk.DeliverBatch(context.Background(), msgs[:2])
	if len(errs) != 2 || errs[0] == nil || errs[1] == nil || runtime.IsPermanent(errs[0]) {
		t.Fatalf("on 503 errs = %v, want two retryable errors", errs)
	}
}

package http_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	httpconn "github.com/vrsky/vrsky/builtin/http"
	"github.com/vrsky/vrsky/runtime"
	"github.com/vrsky/vrsky/runtime/runtimetest"
)

// runWebhook starts the webhook source with cfg and returns its router.
func runWebhook(t *testing.T, cfg string, em runtime.Emitter) *runtime.Hooks {
	t.Helper()
	hooks := runtime.NewHooks()
	src, err := httpconn.Webhook.NewSource(json.RawMessage(cfg), runtime.Env{Tenant: "acme", Integration: "gh", Hooks: hooks})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = src.Run(ctx, em) }()
	t.Cleanup(func() { cancel(); <-done })
	deadline := time.Now().Add(5 * time.Second)
	for {
		// A GET is answered (405) by the source once it serves the path, and emits nothing.
		if _, err := hooks.Serve(context.Background(), "acme", "gh", &runtime.HookRequest{Method: "GET", Header: runtime.Header{}}); err != runtime.ErrNoHook {
			return hooks
		}
		if time.Now().After(deadline) {
			t.Fatal("webhook source never registered its path")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func sign(secret, body string) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(body))
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

func TestWebhook(t *testing.T) {
	t.Setenv("GH_SECRET", "s3cret")
	body := `{"action":"opened"}`
	for _, tc := range []struct {
		name    string
		cfg     string
		method  string
		header  runtime.Header
		body    string
		status  int
		emitted bool
		field   string
	}{
		{"signed", `{"path":"gh","secret_env":"GH_SECRET"}`, "POST",
			runtime.Header{"X-Hub-Signature-256": {sign("s3cret", body)}}, body, 202, true, ""},
		{"wrong signature", `{"path":"gh","secret_env":"GH_SECRET"}`, "POST",
			runtime.Header{"X-Hub-Signature-256": {sign("other", body)}}, body, 401, false, "X-Hub-Signature-256"},
		{"signature of another body", `{"path":"gh","secret_env":"GH_SECRET"}`, "POST",
			runtime.Header{"X-Hub-Signature-256": {sign("s3cret", body)}}, body + " ", 401, false, "X-Hub-Signature-256"},
		{"missing signature", `{"path":"gh","secret_env":"GH_SECRET"}`, "POST",
			runtime.Header{}, body, 401, false, "X-Hub-Signature-256"},
		{"malformed signature", `{"path":"gh","secret_env":"GH_SECRET"}`, "POST",
			runtime.Header{"X-Hub-Signature-256": {"sha256=zz"}}, body, 401, false, "X-Hub-Signature-256"},
		{"allowed content type", `{"path":"gh","content_types":["application/json"]}`, "POST",
			runtime.Header{"Content-Type": {"application/json; charset=utf-8"}}, body, 202, true, ""},
		{"refused content type", `{"path":"gh","content_types":["application/json"]}`, "POST",
			runtime.Header{"Content-Type": {"text/plain"}}, body, 415, false, "Content-Type"},
		{"body over max_body_bytes", `{"path":"gh","max_body_bytes":18}`, "POST",
			runtime.Header{}, body, 413, false, "body"},
		{"body at max_body_bytes", `{"path":"gh","max_body_bytes":19}`, "POST",
			runtime.Header{}, body, 202, true, ""},
		{"GET is not a webhook", `{"path":"gh"}`, "GET", runtime.Header{}, "", 405, false, "method"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			em := &runtimetest.Emitter{}
			hooks := runWebhook(t, tc.cfg, em)
			resp, err := hooks.Serve(context.Background(), "acme", "gh", &runtime.HookRequest{Method: tc.method, Header: tc.header, Body: []byte(tc.body)})
			if err != nil {
				t.Fatal(err)
			}
			if resp.Status != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.Status, tc.status, resp.Body)
			}
			if got := len(em.Messages()) == 1; got != tc.emitted {
				t.Fatalf("emitted %d messages, want emitted=%v", len(em.Messages()), tc.emitted)
			}
			if tc.field != "" {
				var e struct{ Error struct{ Field string } }
				if json.Unmarshal(resp.Body, &e) != nil || e.Error.Field != tc.field {
					t.Fatalf("error body %s does not name field %q", resp.Body, tc.field)
				}
			}
			if tc.emitted && (string(em.Messages()[0].Data) != tc.body || resp.Header.Get(runtime.HeaderMsgID) != em.Messages()[0].ID) {
				t.Fatalf("emitted %q with id %s; answered id %s", em.Messages()[0].Data, em.Messages()[0].ID, resp.Header.Get(runtime.HeaderMsgID))
			}
		})
	}
}

func TestWebhookSecretMustBeSet(t *testing.T) {
	_, err := httpconn.Webhook.NewSource(json.RawMessage(`{"path":"gh","secret_env":"VRSKY_TEST_UNSET_SECRET"}`), runtime.Env{Tenant: "acme"})
	if err == nil || !strings.Contains(err.Error(), "VRSKY_TEST_UNSET_SECRET") {
		t.Fatalf("err = %v, want one naming the unset variable", err)
	}
	err = httpconn.Webhook.Check(context.Background(), json.RawMessage(`{"path":"gh","secret_env":"VRSKY_TEST_UNSET_SECRET"}`), runtime.Env{})
	var fe *runtime.SpecError
	if !errors.As(err, &fe) || fe.Field != "secret_env" {
		t.Fatalf("Check: %v, want a SpecError on secret_env", err)
	}
}

func TestWebhookBackpressureAnswers429(t *testing.T) {
	hooks := runWebhook(t, `{"path":"gh"}`, &runtimetest.Emitter{Err: runtime.ErrBackpressure})
	resp, err := hooks.Serve(context.Background(), "acme", "gh", &runtime.HookRequest{Method: "POST", Header: runtime.Header{}, Body: []byte("{}")})
	if err != nil || resp.Status != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("resp %+v, err %v; want 429 with Retry-After", resp, err)
	}
}

func TestSinkStatusMapping(t *testing.T) {
	var mu sync.Mutex
	var code int
	var gotKey, gotAuth string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		gotKey, gotAuth = r.Header.Get("Idempotency-Key"), r.Header.Get("Authorization")
		w.WriteHeader(code)
	}))
	t.Cleanup(srv.Close)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	closedURL := "http://" + ln.Addr().String()
	ln.Close()

	for _, tc := range []struct {
		name      string
		url       string
		status    int
		wantErr   bool
		permanent bool
	}{
		{"200 delivered", srv.URL, 200, false, false},
		{"204 delivered", srv.URL, 204, false, false},
		{"400 permanent", srv.URL, 400, true, true},
		{"404 permanent", srv.URL, 404, true, true},
		{"408 retryable", srv.URL, 408, true, false},
		{"429 retryable", srv.URL, 429, true, false},
		{"500 retryable", srv.URL, 500, true, false},
		{"503 retryable", srv.URL, 503, true, false},
		{"connection refused retryable", closedURL, 0, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mu.Lock()
			code = tc.status
			mu.Unlock()
			sk, err := httpconn.Sink.NewSink(json.RawMessage(`{"url":"`+tc.url+`","timeout":"2s","headers":{"Authorization":"Bearer t"}}`), runtime.Env{})
			if err != nil {
				t.Fatal(err)
			}
			defer sk.Close()
			err = sk.Deliver(context.Background(), &runtime.Message{ID: "m-1", Header: runtime.Header{}, Data: []byte(`{}`)})
			if (err != nil) != tc.wantErr || runtime.IsPermanent(err) != tc.permanent {
				t.Fatalf("err = %v (permanent %v), want error %v permanent %v", err, runtime.IsPermanent(err), tc.wantErr, tc.permanent)
			}
			if tc.status != 0 {
				mu.Lock()
				defer mu.Unlock()
				if gotKey != "m-1" || gotAuth != "Bearer t" {
					t.Fatalf("sink sent Idempotency-Key %q, Authorization %q", gotKey, gotAuth)
				}
			}
		})
	}
}

package httpx_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/vrsky/vrsky/builtin/internal/httpx"
	"github.com/vrsky/vrsky/platform/egress"
	"github.com/vrsky/vrsky/runtime"
)

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		v    string
		want time.Duration
	}{
		{"", 0}, {"3", 3 * time.Second}, {" 10 ", 10 * time.Second}, {"-1", 0}, {"soon", 0},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
	} {
		h := http.Header{}
		if tc.v != "" {
			h.Set("Retry-After", tc.v)
		}
		if got := httpx.RetryAfter(h, now); got != tc.want {
			t.Errorf("Retry-After %q = %s, want %s", tc.v, got, tc.want)
		}
	}
}

func TestCheck(t *testing.T) {
	var code int
	var body string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(code)
		_, _ = w.Write([]byte(body))
	}))
	defer srv.Close()
	client := httpx.NewClient(5*time.Second, 2, egress.Private)
	for _, tc := range []struct {
		code          int
		body          string
		wantErr, perm bool
		want          string
	}{
		{200, "ok", false, false, ""},
		{204, "", false, false, ""},
		{400, "  invalid_payload\n", true, true, "x: 400 Bad Request: invalid_payload"},
		{401, "", true, true, "x: 401 Unauthorized"},
		{408, "slow", true, false, "x: 408 Request Timeout: slow"},
		{429, "", true, false, "x: 429 Too Many Requests"},
		{500, strings.Repeat("é", 300), true, false, "x: 500 Internal Server Error: " + strings.Repeat("é", 100) + "… (text/plain, 600 B)"},
		{503, "", true, false, "x: 503 Service Unavailable"},
	} {
		code, body = tc.code, tc.body
		resp, err := client.Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		err = httpx.Check("x", resp)
		resp.Body.Close()
		if (err != nil) != tc.wantErr || runtime.IsPermanent(err) != tc.perm || (err != nil && err.Error() != tc.want) {
			t.Errorf("%d: err = %v (permanent %v), want %q permanent %v", tc.code, err, runtime.IsPermanent(err), tc.want, tc.perm)
		}
	}
}

func TestLimit(t *testing.T) {
	l := httpx.NewLimit(1)
	if err := l.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := l.Acquire(ctx); err == nil {
		t.Fatal("a full limit gave a second slot")
	}
	l.Release()
	if err := l.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	var none httpx.Limit // no bound
	for range 100 {
		if err := none.Acquire(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

func TestRedactAndHeaders(t *testing.T) {
	if got := httpx.Redact("https://u:pw@h/p?key=secret#f"); got != "https://u:xxxxx@h/p" {
		t.Errorf("Redact = %q", got)
	}
	if !httpx.ValidHeaderName("X-Hub-Signature-256") || httpx.ValidHeaderName("X A") || httpx.ValidHeaderName("") {
		t.Error("ValidHeaderName")
	}
	if !httpx.ValidHeaderValue("a\tb") || httpx.ValidHeaderValue("a\r\nb") {
		t.Error("ValidHeaderValue")
	}
}

// A sink's client refuses what the egress policy refuses, and the refusal
// is permanent (a retry cannot help); a sink that is down stays retryable.
func TestClientEgress(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer srv.Close()
	down := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	downURL := down.URL
	down.Close()
	for _, tc := range []struct {
		policy        egress.Policy
		url           string
		wantErr, perm bool
	}{
		{egress.Private, srv.URL, false, false},
		{egress.All, srv.URL, false, false},
		{egress.Public, srv.URL, true, true},                           // loopback
		{egress.Private, "http://169.254.169.254/latest/", true, true}, // cloud metadata
		{egress.Private, downURL, true, false},
	} {
		resp, err := httpx.NewClient(5*time.Second, 1, tc.policy).Get(tc.url)
		if err == nil {
			resp.Body.Close()
		} else {
			err = httpx.DoError("GET "+tc.url, err)
		}
		if (err != nil) != tc.wantErr || runtime.IsPermanent(err) != tc.perm {
			t.Errorf("%s GET %s: %v (permanent %v), want error=%v permanent=%v", tc.policy, tc.url, err, runtime.IsPermanent(err), tc.wantErr, tc.perm)
		}
		if tc.perm && !errors.Is(err, egress.ErrDenied) {
			t.Errorf("%s GET %s: %v, want ErrDenied", tc.policy, tc.url, err)
		}
	}
}

// A request that gets no response names it by its redacted URL only: the
// query string and the password of the URL it was sent to stay out of the
// error (which goes to logs and dead letters).
func TestDoErrorHidesTheURL(t *testing.T) {
	down := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	target := strings.Replace(down.URL, "http://", "http://user:pw-secret@", 1) + "/in?api_key=key-secret"
	down.Close()
	_, err := httpx.NewClient(5*time.Second, 1, egress.All).Post(target, "application/json", strings.NewReader("{}"))
	if err == nil {
		t.Fatal("a closed server answered")
	}
	err = httpx.DoError("POST "+httpx.Redact(target), err)
	for _, secret := range []string{"key-secret", "pw-secret", "api_key"} {
		if strings.Contains(err.Error(), secret) {
			t.Errorf("the error shows %q: %v", secret, err)
		}
	}
	if !strings.Contains(err.Error(), "POST ") || !strings.Contains(err.Error(), "refused") {
		t.Errorf("the error lost its request or cause: %v", err)
	}
}

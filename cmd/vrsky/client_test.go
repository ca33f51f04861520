package main

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestClientErrors: a non-2xx answer becomes a *clientError carrying the
// status and the API's error document, found with errors.As through
// wrapping; its text is what the CLI prints.
func TestClientErrors(t *testing.T) {
	for _, tc := range []struct {
		name                string
		status              int
		body                string
		raw                 bool // through client.raw (pull's download), not client.do
		code, field, detail string
		text                string
	}{
		{name: "api error with field", status: 400, body: `{"error":{"code":"invalid_spec","message":"must be set","field":"source"}}`,
			code: "invalid_spec", field: "source", text: "400 Bad Request (invalid_spec): source: must be set"},
		{name: "api error", status: 404, body: `{"error":{"code":"not_found","message":"no integration x"}}`,
			code: "not_found", text: "404 Not Found (not_found): no integration x"},
		{name: "not an api error", status: 502, body: "bad gateway\n", detail: "bad gateway", text: "502 Bad Gateway: bad gateway"},
		{name: "no body", status: 503, text: "503 Service Unavailable"},
		{name: "raw: api error with field", status: 400, raw: true, body: `{"error":{"code":"bad_request","message":"no","field":"module"}}`,
			code: "bad_request", text: "400 Bad Request (bad_request): no"},
		{name: "raw: not an api error", status: 500, raw: true, body: "\x00asm", text: "500 Internal Server Error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				w.WriteHeader(tc.status)
				io.WriteString(w, tc.body)
			}))
			t.Cleanup(srv.Close)
			c := &client{base: srv.URL, http: srv.Client()}
			var err error
			if tc.raw {
				_, err = c.raw(http.MethodGet, "/x")
			} else {
				err = c.do(http.MethodGet, "/x", "", nil, nil)
			}
			wrapped := fmt.Errorf("context: %w", err)
			var ce *clientError
			if !errors.As(wrapped, &ce) {
				t.Fatalf("%T %v: not a *clientError", err, err)
			}
			if ce.StatusCode != tc.status || ce.Code != tc.code || ce.Field != tc.field || ce.Body != tc.detail {
				t.Errorf("got %+v", *ce)
			}
			if got := httpStatus(wrapped); got != tc.status {
				t.Errorf("httpStatus = %d, want %d", got, tc.status)
			}
			if err.Error() != tc.text {
				t.Errorf("text %q, want %q", err.Error(), tc.text)
			}
		})
	}
	t.Run("no answer", func(t *testing.T) {
		srv := httptest.NewServer(http.NotFoundHandler())
		srv.Close()
		err := (&client{base: srv.URL, http: http.DefaultClient}).do(http.MethodGet, "/404", "", nil, nil)
		if err == nil || httpStatus(err) != 0 {
			t.Fatalf("unreachable server: %v, status %d", err, httpStatus(err))
		}
	})
}

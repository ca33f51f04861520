package main

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
)

// TestDevSink: dev-sink answers its status and prints each request as one
// block: method and path, the key headers, the body.
func TestDevSink(t *testing.T) {
	for _, tc := range []struct {
		name    string
		status  int
		body    string
		headers map[string]string
		want    string // the block, after its first line
	}{
		{"json", 200, `{"order_id": 7}`, map[string]string{"Content-Type": "application/json", "Idempotency-Key": "m1", "User-Agent": "x"},
			"Content-Type: application/json\nIdempotency-Key: m1\n\n{\"order_id\": 7}\n\n"},
		{"failing, with auth and a custom header", 503, "a\n", map[string]string{"Authorization": "Bearer s3cret", "X-Shop": "eu"},
			"Authorization: Bearer (redacted)\nX-Shop: eu\n\na\n\n"},
		{"long body", 200, strings.Repeat("é", 20), nil, "\n" + strings.Repeat("é", 7) + "… (26 bytes more)\n\n"},
		{"binary", 200, "\x00\x01\x02", nil, "\n(3 bytes, not text)\n\n"},
		{"empty", 202, "", nil, "\n(no body)\n\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			srv := httptest.NewServer(newDevSink(&out, "ADDR", devSinkFlags{status: tc.status, maxBody: 15}))
			t.Cleanup(srv.Close)
			req, _ := http.NewRequest("POST", srv.URL+"/orders?a=1", strings.NewReader(tc.body))
			for k, v := range tc.headers {
				req.Header.Set(k, v)
			}
			if tc.headers["Content-Type"] == "" {
				req.Header["Content-Type"] = nil
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			answer, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Errorf("answered %d, want %d", resp.StatusCode, tc.status)
			}
			if tc.status >= 300 && !strings.Contains(string(answer), "--status") {
				t.Errorf("a failure's answer %q does not say why", answer)
			}
			want := "==> POST /orders?a=1  (to ADDR, answered " + strconv.Itoa(tc.status) + ")\n" + tc.want
			if out.String() != want {
				t.Errorf("printed\n%q\nwant\n%q", out.String(), want)
			}
		})
	}
}

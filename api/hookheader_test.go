package api

import (
	"bufio"
	"net/textproto"
	"reflect"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/vrsky/vrsky/runtime"
)

// hookHeader must hand the source what the per-header copy did: every
// header under its canonical key, repeated ones in order, values that
// stay valid after fasthttp reuses the request.
func TestHookHeader(t *testing.T) {
	for _, tc := range []struct {
		name string
		raw  string
		want runtime.Header // what it must hold, besides what fasthttp adds (Content-Length)
	}{
		{"none", "POST /h HTTP/1.1\r\nHost: x\r\n\r\n", runtime.Header{"Host": {"x"}}},
		{"canonical keys", "POST /h HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\nidempotency-key: k-1\r\ntraceparent: 00-ab-cd-01\r\n\r\n",
			runtime.Header{"Host": {"x"}, "Content-Type": {"application/json"}, "Idempotency-Key": {"k-1"}, "Traceparent": {"00-ab-cd-01"}}},
		{"repeated", "POST /h HTTP/1.1\r\nHost: x\r\nX-A: 1\r\nX-B: b\r\nX-A: 2\r\nX-A: 3\r\n\r\n",
			runtime.Header{"Host": {"x"}, "X-A": {"1", "2", "3"}, "X-B": {"b"}}},
		{"empty value", "POST /h HTTP/1.1\r\nHost: x\r\nX-Empty:\r\n\r\n", runtime.Header{"Host": {"x"}, "X-Empty": {""}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var req fasthttp.Request
			if err := req.Read(bufioReader(tc.raw)); err != nil {
				t.Fatal(err)
			}
			got := hookHeader(&req.Header)
			// The copy it replaced, header by header, is the oracle.
			want := runtime.Header{}
			req.Header.VisitAll(func(k, v []byte) {
				key := textproto.CanonicalMIMEHeaderKey(string(k))
				want[key] = append(want[key], string(v))
			})
			for k, v := range tc.want {
				if !reflect.DeepEqual(want[k], v) {
					t.Fatalf("the per-header copy has %s %q, the case says %q", k, want[k], v)
				}
			}
			req.Reset() // fasthttp reuses its buffers: the copy must not alias them
			_ = req.Read(bufioReader("POST /zzzz HTTP/1.1\r\nHost: yyyyyyyyyyyy\r\nX-Q: qqqqqqqqqqqqqqqqqqqq\r\n\r\n"))
			if !reflect.DeepEqual(got, want) {
				t.Errorf("hookHeader = %v, want %v", got, want)
			}
			// Appending to one value slice must not change another.
			if v := got["X-A"]; len(v) > 0 {
				_ = append(got["Host"], "extra")
				if got["X-A"][0] != "1" {
					t.Errorf("an append to Host changed X-A: %v", got["X-A"])
				}
			}
		})
	}
}

func bufioReader(s string) *bufio.Reader { return bufio.NewReader(strings.NewReader(s)) }

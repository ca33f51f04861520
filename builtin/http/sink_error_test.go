package http_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/vrsky/vrsky/runtime"
)

// pythonPage is what `python3 -m http.server` answers to a POST.
const pythonPage = `<!DOCTYPE HTML>
<html lang="en">
    <head>
        <meta charset="utf-8">
        <title>Error response</title>
    </head>
    <body>
        <h1>Error response</h1>
        <p>Error code: 501</p>
        <p>Message: Unsupported method (&#x27;POST&#x27;).</p>
        <p>Error code explanation: 501 - Server does not support this operation.</p>
    </body>
</html>
`

// nginxPage is nginx's own 502 page.
const nginxPage = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx/1.25.3</center>\r\n</body>\r\n</html>\r\n"

// TestSinkErrorSummarisesTheBody: a failed delivery's error — what the
// DLQ entry, the message's trace and the log carry — is one short line:
// the status and the body's text (no markup, whitespace collapsed, at
// most 200 bytes), with the body's type and size when that text is not
// the body as sent, and only those for a body that is not text.
func TestSinkErrorSummarisesTheBody(t *testing.T) {
	longText := strings.Repeat("0123456789", 30) // 300 bytes
	bigPage := "<html><head><style>body{color:red}</style><script>var x = '<p>not text</p>';</script></head><body><!-- a comment --><h1>Oops</h1><p>" +
		strings.Repeat("Something went wrong. ", 60) + "</p></body></html>"
	png := append([]byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"), bytes.Repeat([]byte{0, 1, 2, 0xff}, 256)...)
	huge := strings.Repeat("x", 2<<20)
	for _, tc := range []struct {
		name        string
		status      int
		contentType string // "-": no Content-Type header at all
		length      bool   // send Content-Length (else a huge body is chunked)
		body        string
		want        string // after "POST URL: "
	}{
		{"empty", 503, "", false, "", "503 Service Unavailable"},
		{"whitespace only", 503, "text/plain", false, " \r\n\t\n", "503 Service Unavailable"},
		{"short text", 400, "text/plain; charset=utf-8", false, "refused\n", "400 Bad Request: refused"},
		{"python's 501 page", 501, "text/html;charset=utf-8", false, pythonPage,
			"501 Not Implemented: Error response Error code: 501 Message: Unsupported method ('POST'). Error code explanation: 501 - Server does not support this operation. (text/html, 367 B)"},
		{"nginx's 502 page", 502, "text/html", false, nginxPage, "502 Bad Gateway: 502 Bad Gateway nginx/1.25.3 (text/html, 157 B)"},
		{"html page with script, style and a long text", 500, "text/html; charset=utf-8", false, bigPage,
			"500 Internal Server Error: Oops " + strings.TrimSpace(strings.Repeat("Something went wrong. ", 10))[:195] + "… (text/html, 1.4 KiB)"},
		{"html page with only a title", 404, "text/html", false, "<html><head><title>Not here</title></head><body></body></html>",
			"404 Not Found: Not here (text/html, 62 B)"},
		{"html page without text", 500, "text/html", false, "<html><body><img src=x></body></html>", "500 Internal Server Error: (text/html, 37 B)"},
		{"pretty json", 422, "application/json", false, "{\n  \"error\": {\n    \"code\": \"invalid\",\n    \"message\": \"order_id is required\"\n  }\n}\n",
			`422 Unprocessable Entity: {"error":{"code":"invalid","message":"order_id is required"}}`},
		{"problem json", 409, "application/problem+json", false, `{"title": "Conflict", "status": 409}`,
			`409 Conflict: {"title":"Conflict","status":409}`},
		{"long json", 400, "application/json", false, `{"detail":"` + longText + `"}`,
			`400 Bad Request: {"detail":"` + longText[:189] + `… (application/json, 313 B)`},
		{"long text", 500, "text/plain", false, longText, "500 Internal Server Error: " + longText[:200] + "… (text/plain, 300 B)"},
		{"huge text, length known", 500, "text/plain", true, huge, "500 Internal Server Error: " + huge[:200] + "… (text/plain, 2.0 MiB)"},
		{"huge text, chunked", 500, "text/plain", false, huge, "500 Internal Server Error: " + huge[:200] + "… (text/plain, over 1.0 MiB)"},
		{"binary", 500, "image/png", false, string(png), "500 Internal Server Error: (image/png, 1.0 KiB)"},
		{"binary sent as text", 500, "text/plain", false, string(png), "500 Internal Server Error: (text/plain, 1.0 KiB)"},
		{"binary without a content type", 500, "-", false, string(png), "500 Internal Server Error: (image/png, 1.0 KiB)"},
		{"octet stream", 503, "-", false, "\x00\x01\x02\x03", "503 Service Unavailable: (application/octet-stream, 4 B)"},
		{"invalid utf-8", 500, "text/plain", false, "caf\xe9 closed", "500 Internal Server Error: (text/plain, 11 B)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				switch tc.contentType {
				case "-":
					w.Header()["Content-Type"] = nil // net/http sniffs otherwise
				case "":
				default:
					w.Header().Set("Content-Type", tc.contentType)
				}
				if tc.length {
					w.Header().Set("Content-Length", strconv.Itoa(len(tc.body)))
				}
				w.WriteHeader(tc.status)
				_, _ = w.Write([]byte(tc.body))
			}))
			t.Cleanup(srv.Close)
			sk := newSink(t, `{"url":"`+srv.URL+`/orders"}`)
			err := sk.Deliver(context.Background(), message("m1", `{"order_id":7}`))
			if err == nil {
				t.Fatal("delivery succeeded")
			}
			if want := "POST " + srv.URL + "/orders: " + tc.want; err.Error() != want {
				t.Errorf("error\n got %q\nwant %q", err, want)
			}
			if runtime.IsPermanent(err) != (tc.status < 500 && tc.status != 408 && tc.status != 429) {
				t.Errorf("status %d: permanent = %v", tc.status, runtime.IsPermanent(err))
			}
			if n := len(err.Error()) - len(srv.URL); n > 300 {
				t.Errorf("error is %d bytes long beyond its URL", n)
			}
		})
	}
}

// TestSinkTimeout: the config's timeout bounds the whole exchange — a
// receiver that never answers, and one that sends a 503's headers and then
// stalls in its body — and the failure is retryable, naming the request.
// (A 2xx whose body stalls is a delivery: the status is the answer.)
func TestSinkTimeout(t *testing.T) {
	for _, tc := range []struct {
		name  string
		stall func(w http.ResponseWriter) // before the receiver hangs
	}{
		{"no answer", func(http.ResponseWriter) {}},
		{"stalled body", func(w http.ResponseWriter) {
			w.Header().Set("Content-Length", "1000")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("partial"))
			w.(http.Flusher).Flush()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hang := make(chan struct{})
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.Copy(io.Discard, r.Body)
				tc.stall(w)
				<-hang
			}))
			t.Cleanup(srv.Close)
			t.Cleanup(func() { close(hang) }) // runs first
			sk := newSink(t, `{"url":"`+srv.URL+`/in","timeout":"200ms"}`)
			err := sk.Deliver(context.Background(), message("m1", `{"a":1}`))
			switch {
			case err == nil:
				t.Fatal("Deliver succeeded against a receiver that never finished answering")
			case runtime.IsPermanent(err):
				t.Errorf("a timeout is permanent, want retryable: %v", err)
			case !strings.HasPrefix(err.Error(), "POST "+srv.URL+"/in: "):
				t.Errorf("error %q should name the request", err)
			}
		})
	}
}

package http_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/vrsky/vrsky/runtime"
)

// payload200 is a 200-byte JSON payload, the benchmarks' message.
var payload200 = []byte(`{"order_id":"ord-000123","customer":{"name":"Ada Lovelace","tier":"gold"},"amount":129.95,"qty":3,"currency":"EUR","note":"` + strings.Repeat("x", 64) + `"}`)

func discardServer(b *testing.B) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
	}))
	b.Cleanup(srv.Close)
	return srv
}

func reportRate(b *testing.B, msgs int, start time.Time) {
	b.ReportMetric(float64(msgs)/time.Since(start).Seconds(), "msgs/s")
}

// BenchmarkSinkDeliver: one request per message to a loopback server, as
// the pipeline drives a plain sink (many deliveries at once).
func BenchmarkSinkDeliver(b *testing.B) {
	srv := discardServer(b)
	for _, bc := range []struct {
		name, cfg string
		par       int // goroutines per GOMAXPROCS; 0 = serial
	}{
		{"serial", `{"url":"%s"}`, 0},
		{"parallel", `{"url":"%s"}`, 16},
		{"parallel-templated-hmac", `{"url":"%s/o/{{order_id}}","headers":{"X-Tier":"{{customer.tier}}"},"auth":{"type":"hmac","secret_env":"BENCH_HMAC"}}`, 16},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.Setenv("BENCH_HMAC", "k")
			sk := newSinkB(b, fmt.Sprintf(bc.cfg, srv.URL))
			ctx := context.Background()
			b.ReportAllocs()
			start := time.Now()
			if bc.par == 0 {
				for i := 0; b.Loop(); i++ {
					if err := sk.Deliver(ctx, &runtime.Message{ID: "m", Header: runtime.Header{}, Data: payload200}); err != nil {
						b.Fatal(err)
					}
				}
			} else {
				b.SetParallelism(bc.par)
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if err := sk.Deliver(ctx, &runtime.Message{ID: "m", Header: runtime.Header{}, Data: payload200}); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			reportRate(b, b.N, start)
		})
	}
}

// BenchmarkSinkBatch: DeliverBatch of 100 messages as one JSON array, on
// 4 workers as the pipeline runs a batch sink by default.
func BenchmarkSinkBatch(b *testing.B) {
	srv := discardServer(b)
	const size = 100
	sk := newSinkB(b, `{"url":"`+srv.URL+`","batch":{"max_messages":100}}`).(runtime.BatchSink)
	msgs := make([]*runtime.Message, size)
	for i := range msgs {
		msgs[i] = &runtime.Message{ID: fmt.Sprintf("m-%d", i), Header: runtime.Header{}, Data: payload200}
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.SetParallelism(2) // 2 x GOMAXPROCS(2) = 4 workers
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if errs := sk.DeliverBatch(ctx, msgs); errs != nil {
				b.Error(errs)
				return
			}
		}
	})
	reportRate(b, b.N*size, start)
}

// BenchmarkReferenceHTTPPost is the machine's reference: a bare net/http
// POST of the same payload to the same kind of server, 16 goroutines per
// core.
func BenchmarkReferenceHTTPPost(b *testing.B) {
	b.ReportAllocs()
	srv := discardServer(b)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	b.SetParallelism(16)
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := client.Post(srv.URL, "application/json", bytes.NewReader(payload200))
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
	reportRate(b, b.N, start)
}

// BenchmarkReferenceFasthttpPost is BenchmarkReferenceHTTPPost through
// fasthttp's client (already linked: the API serves with fasthttp): what
// the sink could save per request with a client that keeps no read and
// write goroutine per connection and reuses its requests. The server is
// the same net/http one, so the difference is the client's.
func BenchmarkReferenceFasthttpPost(b *testing.B) {
	srv := discardServer(b)
	client := &fasthttp.Client{MaxConnsPerHost: 64}
	b.SetParallelism(16)
	b.ReportAllocs()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		for pb.Next() {
			req.Reset()
			req.SetRequestURI(srv.URL)
			req.Header.SetMethod(http.MethodPost)
			req.Header.SetContentType("application/json")
			req.SetBody(payload200)
			if err := client.DoTimeout(req, resp, 10*time.Second); err != nil {
				b.Error(err)
				return
			}
		}
	})
	reportRate(b, b.N, start)
}

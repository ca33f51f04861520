package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// receiver is a local stand-in that `vrsky demo` points a sink at: a
// Slack-compatible incoming webhook (slack) or an HTTP API taking JSON
// (api). It prints each message it takes (unless quiet, as under load),
// keeps the distinct ones and, while down, answers 503 as a service in an
// outage does.
type receiver struct {
	kind  string // "slack" or "api"
	srv   *http.Server
	ln    net.Listener
	out   io.Writer
	quiet atomic.Bool
	down  atomic.Bool

	mu       sync.Mutex
	got      []string        // what arrived: Slack texts, API bodies
	distinct map[string]bool // a redelivery is not a second message
	notify   chan struct{}   // closed and replaced on each arrival
}

// startReceiver listens on a free loopback port and serves until close.
func startReceiver(kind string, out io.Writer) (*receiver, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("%s stand-in: %w", kind, err)
	}
	r := &receiver{kind: kind, ln: ln, out: out, distinct: map[string]bool{}, notify: make(chan struct{})}
	r.srv = &http.Server{Handler: r, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = r.srv.Serve(ln) }()
	return r, nil
}

// url is where the sink posts: a Slack-shaped incoming-webhook URL, or the
// API's /events.
func (r *receiver) url() string {
	if r.kind == "slack" {
		return "http://" + r.ln.Addr().String() + "/services/T0DEMO/B0DEMO/vrskydemo"
	}
	return "http://" + r.ln.Addr().String() + "/events"
}

func (r *receiver) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = r.srv.Shutdown(ctx)
}

// messages returns what arrived so far, in arrival order.
func (r *receiver) messages() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.got...)
}

// count is how many distinct messages arrived.
func (r *receiver) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.distinct)
}

// waitCount waits until n distinct messages arrived or ctx ends.
func (r *receiver) waitCount(ctx context.Context, n int) error {
	for {
		r.mu.Lock()
		got, ch := len(r.distinct), r.notify
		r.mu.Unlock()
		if got >= n {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("the %s stand-in has %d of %d messages: %w", r.kind, got, n, ctx.Err())
		}
	}
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost || r.kind == "slack" && !strings.HasPrefix(req.URL.Path, "/services/") {
		http.Error(w, "no_service", http.StatusNotFound)
		return
	}
	body, err := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	if err != nil {
		http.Error(w, "invalid_payload", http.StatusBadRequest)
		return
	}
	if r.down.Load() {
		if !r.quiet.Load() {
			fmt.Fprintf(r.out, "  %-5s ✗ down: answered 503 to a post\n", r.kind)
		}
		http.Error(w, "service_unavailable", http.StatusServiceUnavailable)
		return
	}
	got := string(bytes.TrimSpace(body))
	if r.kind == "slack" {
		// An incoming webhook takes {"text": ...} (or blocks) and answers "ok".
		var m struct {
			Text   string          `json:"text"`
			Blocks json.RawMessage `json:"blocks"`
		}
		if json.Unmarshal(body, &m) != nil {
			http.Error(w, "invalid_payload", http.StatusBadRequest)
			return
		}
		if m.Text == "" && len(m.Blocks) == 0 {
			http.Error(w, "no_text", http.StatusBadRequest)
			return
		}
		got = m.Text
		if got == "" {
			got = string(m.Blocks)
		}
	} else if !json.Valid(body) {
		http.Error(w, "want JSON", http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	r.got = append(r.got, got)
	r.distinct[got] = true
	close(r.notify)
	r.notify = make(chan struct{})
	r.mu.Unlock()
	if !r.quiet.Load() {
		fmt.Fprintf(r.out, "  %-5s ← %s\n", r.kind, got)
	}
	if r.kind == "slack" {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "ok")
		return
	}
	w.WriteHeader(http.StatusOK)
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// bodySize is the size of every generated order, in bytes.
const bodySize = 200

// loadTarget is where the load clients POST.
type loadTarget struct {
	url string // full URL
	// urls, when set, are several nodes' URLs (-nodes): client i posts
	// to urls[i%len(urls)], url is then unused.
	urls    []string
	clients int
	timeout time.Duration // per request
	// wantID makes the clients read the accepted message's id (the
	// Vrsky-Msg-Id header, else the JSON body's "id") and keep it.
	wantID bool
	// namedIDs makes each request carry Idempotency-Key o-<order_id>, so
	// that a batch sink, which sees payloads only, knows the ids.
	namedIDs bool
	// rate, when positive, caps the requests per second of all clients
	// together: request k is not sent before start + k/rate.
	rate float64
	// batch, when positive, makes each request carry this many orders as
	// NDJSON (a webhook with batch.format ndjson); accepted counts
	// messages, and their ids come from the answer's "ids", or are
	// o-<order_id> with namedIDs (what a batch sink finds again).
	batch int
}

// pacer hands out send times at a fixed rate; a nil pacer never waits.
type pacer struct {
	start    int64 // clock ns
	interval float64
	n        atomic.Int64
}

// wait blocks until the next slot, or returns false when ctx ends or the
// slot falls after deadline.
func (p *pacer) wait(ctx context.Context, clk *clock, deadline int64) bool {
	if p == nil {
		return true
	}
	due := p.start + int64(float64(p.n.Add(1)-1)*p.interval)
	if due >= deadline {
		return false
	}
	if d := time.Duration(due - clk.now()); d > 0 {
		pause(ctx, d)
	}
	return ctx.Err() == nil
}

// acceptance is one accepted message: its id and when the 2xx arrived.
type acceptance struct {
	id string
	at int64 // clock ns
}

// loadResult sums what the clients saw.
type loadResult struct {
	start, end    int64 // clock ns: first request sent, last client stopped
	accepted      int64
	rejected      map[int]int64 // non-2xx answers by status
	transportErrs int64
	noID          int64    // 2xx without a message id
	errSamples    []string // a few distinct transport errors
	latency       hist     // request start → 2xx
	accepts       []acceptance
	cpuPerReq     float64 // the HTTP hop reference's CPU seconds per request (clients and handler), 0 when not measured
}

// Elapsed is the wall time the load ran.
func (r *loadResult) Elapsed() time.Duration { return time.Duration(r.end - r.start) }

// Rate is accepted requests per second over the run.
func (r *loadResult) Rate() float64 {
	if r.end <= r.start {
		return 0
	}
	return float64(r.accepted) / r.Elapsed().Seconds()
}

// Rejected sums the non-2xx answers.
func (r *loadResult) Rejected() int64 {
	var n int64
	for _, c := range r.rejected {
		n += c
	}
	return n
}

// RejectedString lists the non-2xx answers as "429×12 503×3".
func (r *loadResult) RejectedString() string {
	if len(r.rejected) == 0 {
		return "none"
	}
	codes := make([]int, 0, len(r.rejected))
	for c := range r.rejected {
		codes = append(codes, c)
	}
	sort.Ints(codes)
	var b bytes.Buffer
	for i, c := range codes {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%d×%d", c, r.rejected[c])
	}
	return b.String()
}

// newHostClient builds a keep-alive client for target's host with one
// connection per load client.
func newHostClient(target loadTarget) (*fasthttp.HostClient, error) {
	u, err := url.Parse(target.url)
	if err != nil {
		return nil, fmt.Errorf("load target %q: %w", target.url, err)
	}
	if u.Scheme != "http" {
		return nil, fmt.Errorf("load target %q: only http is supported", target.url)
	}
	if len(target.urls) > 0 { // each node's client has its share of the clients
		target.clients = (target.clients + len(target.urls) - 1) / len(target.urls)
	}
	return &fasthttp.HostClient{
		Addr:                          u.Host,
		Name:                          "vrsky-bench",
		MaxConns:                      target.clients,
		MaxIdleConnDuration:           time.Minute,
		ReadTimeout:                   target.timeout,
		WriteTimeout:                  target.timeout,
		MaxConnWaitTimeout:            target.timeout,
		DisableHeaderNamesNormalizing: true,
		ReadBufferSize:                8 << 10,
	}, nil
}

// runLoad drives target with target.clients closed-loop clients for d (or
// until ctx ends): each client sends one unique order, waits for the answer,
// and sends the next (paced by target.rate when set). seq numbers the
// orders across calls.
func runLoad(ctx context.Context, clk *clock, target loadTarget, d time.Duration, seq *atomic.Int64) (*loadResult, error) {
	urls := target.urls
	if len(urls) == 0 {
		urls = []string{target.url}
	}
	hcs := make([]*fasthttp.HostClient, len(urls))
	for i, u := range urls {
		t := target
		t.url = u
		hc, err := newHostClient(t)
		if err != nil {
			return nil, err
		}
		defer hc.CloseIdleConnections()
		hcs[i] = hc
	}

	res := &loadResult{rejected: map[int]int64{}, start: clk.now()}
	deadline := res.start + int64(d)
	var pc *pacer
	if target.rate > 0 {
		pc = &pacer{start: res.start, interval: float64(time.Second) / target.rate}
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range target.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := target
			t.url = urls[i%len(urls)]
			w := runClient(ctx, clk, hcs[i%len(hcs)], t, deadline, seq, pc)
			mu.Lock()
			defer mu.Unlock()
			res.merge(w)
		}()
	}
	wg.Wait()
	res.end = clk.now()
	return res, nil
}

func (r *loadResult) merge(w *loadResult) {
	r.accepted += w.accepted
	r.transportErrs += w.transportErrs
	r.noID += w.noID
	for c, n := range w.rejected {
		r.rejected[c] += n
	}
	for _, e := range w.errSamples {
		if len(r.errSamples) < 5 && !contains(r.errSamples, e) {
			r.errSamples = append(r.errSamples, e)
		}
	}
	r.latency.Merge(&w.latency)
	r.accepts = append(r.accepts, w.accepts...)
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// runClient is one closed-loop client.
func runClient(ctx context.Context, clk *clock, hc *fasthttp.HostClient, target loadTarget, deadline int64, seq *atomic.Int64, pc *pacer) *loadResult {
	w := &loadResult{rejected: map[int]int64{}}
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(target.url)
	req.Header.SetMethod(fasthttp.MethodPost)
	req.Header.SetContentType("application/json")
	per := max(1, target.batch)
	body := make([]byte, 0, per*(bodySize+1))
	var key []byte
	for ctx.Err() == nil && clk.now() < deadline {
		if !pc.wait(ctx, clk, deadline) {
			break
		}
		n := seq.Add(int64(per)) - int64(per) + 1 // this request's first order
		body = body[:0]
		for k := range int64(per) {
			body = appendOrder(body, n+k)
			if target.batch > 0 {
				body = append(body, '\n')
			}
		}
		req.SetBody(body)
		if target.namedIDs && target.batch == 0 {
			key = strconv.AppendInt(append(key[:0], "o-"...), n, 10)
			req.Header.SetBytesV("Idempotency-Key", key)
		}
		t0 := time.Now()
		err := hc.DoTimeout(req, resp, target.timeout)
		lat := time.Since(t0)
		if err != nil {
			w.transportErrs++
			if len(w.errSamples) < 5 && !contains(w.errSamples, err.Error()) {
				w.errSamples = append(w.errSamples, err.Error())
			}
			pause(ctx, 10*time.Millisecond) // do not spin on a dead server
			continue
		}
		code := resp.StatusCode()
		if code < 200 || code > 299 {
			w.rejected[code]++
			if code == fasthttp.StatusTooManyRequests || code == fasthttp.StatusServiceUnavailable {
				pause(ctx, 5*time.Millisecond)
			}
			continue
		}
		at := clk.now()
		w.accepted += int64(per)
		w.latency.Record(lat)
		if !target.wantID {
			continue
		}
		if target.batch > 0 {
			w.acceptBatch(resp.Body(), n, per, target.namedIDs, at)
			continue
		}
		id := string(resp.Header.Peek("Vrsky-Msg-Id"))
		if id == "" {
			var out struct {
				ID string `json:"id"`
			}
			_ = json.Unmarshal(resp.Body(), &out)
			id = out.ID
		}
		if id == "" {
			w.noID++
			continue
		}
		w.accepts = append(w.accepts, acceptance{id: id, at: at})
	}
	return w
}

// acceptBatch records the per messages of an accepted batch whose first
// order is first: as o-<order_id> with named (a batch sink's key), else
// by the ids of the answer body, {"ids":[…]}.
func (w *loadResult) acceptBatch(body []byte, first int64, per int, named bool, at int64) {
	if named {
		for k := range int64(per) {
			w.accepts = append(w.accepts, acceptance{id: "o-" + strconv.FormatInt(first+k, 10), at: at})
		}
		return
	}
	var out struct {
		IDs []string `json:"ids"`
	}
	_ = json.Unmarshal(body, &out)
	if len(out.IDs) != per {
		w.noID += int64(per)
		return
	}
	for _, id := range out.IDs {
		w.accepts = append(w.accepts, acceptance{id: id, at: at})
	}
}

func pause(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// appendOrder appends order number n as a JSON object of exactly bodySize
// bytes. Its amount × qty is always ≥ 10, so every order passes the bench
// integration's filter (total >= 10).
func appendOrder(b []byte, n int64) []byte {
	start := len(b)
	b = append(b, `{"order_id":`...)
	b = strconv.AppendInt(b, n, 10)
	b = append(b, `,"amount":`...)
	b = strconv.AppendInt(b, 10+n%90, 10)
	b = append(b, '.')
	cents := n % 100
	if cents < 10 {
		b = append(b, '0')
	}
	b = strconv.AppendInt(b, cents, 10)
	b = append(b, `,"qty":`...)
	b = strconv.AppendInt(b, 1+n%5, 10)
	b = append(b, `,"currency":"EUR","customer":{"name":"Customer `...)
	b = strconv.AppendInt(b, n%100000, 10)
	b = append(b, `","tier":"gold"},"note":"`...)
	for len(b)-start < bodySize-2 {
		b = append(b, 'x')
	}
	return append(b, `"}`...)
}

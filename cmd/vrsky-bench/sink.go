package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

const sinkShards = 64

// sink is the bench's own HTTP endpoint that VRSky's http sink delivers to.
// It records each message id (the Idempotency-Key header, else
// Vrsky-Msg-Id) once, with the time of its first receipt, and counts
// repeated deliveries of an id as duplicates.
type sink struct {
	clock  *clock
	ln     net.Listener
	srv    *fasthttp.Server
	seed   maphash.Seed
	shards [sinkShards]sinkShard

	unique    atomic.Int64
	dups      atomic.Int64
	missingID atomic.Int64
	lastAt    atomic.Int64 // clock ns of the latest first receipt
	served    chan error
}

type sinkShard struct {
	mu   sync.Mutex
	seen map[string]int64 // id → clock ns of first receipt
}

// startSink listens on a free loopback port and serves until close.
func startSink(c *clock) (*sink, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("sink listen: %w", err)
	}
	s := &sink{clock: c, ln: ln, seed: maphash.MakeSeed(), served: make(chan error, 1)}
	for i := range s.shards {
		s.shards[i].seen = make(map[string]int64, 1<<14)
	}
	s.srv = &fasthttp.Server{
		Handler:                       s.handle,
		Name:                          "vrsky-bench-sink",
		ReadTimeout:                   30 * time.Second,
		IdleTimeout:                   60 * time.Second,
		DisableHeaderNamesNormalizing: true,
		NoDefaultDate:                 true,
		NoDefaultContentType:          true,
		Concurrency:                   64 * 1024,
	}
	go func() { s.served <- s.srv.Serve(ln) }()
	return s, nil
}

// URL is where VRSky's http sink should POST.
func (s *sink) URL() string { return "http://" + s.ln.Addr().String() + "/" }

func (s *sink) handle(ctx *fasthttp.RequestCtx) {
	now := s.clock.now()
	if len(ctx.Request.Header.Peek("Vrsky-Batch-Size")) > 0 {
		// A JSON array of payloads (-sink-batch): each message's id is
		// o-<order_id>, the Idempotency-Key its client sent. The steps'
		// jq turns order_id into id.
		var orders []struct {
			OrderID *int64 `json:"order_id"`
			ID      *int64 `json:"id"`
		}
		if err := json.Unmarshal(ctx.Request.Body(), &orders); err != nil {
			ctx.SetStatusCode(fasthttp.StatusBadRequest)
			return
		}
		for _, o := range orders {
			n := o.OrderID
			if n == nil {
				n = o.ID
			}
			if n == nil {
				s.missingID.Add(1)
				continue
			}
			s.record("o-"+strconv.FormatInt(*n, 10), now)
		}
		ctx.SetStatusCode(fasthttp.StatusOK)
		return
	}
	id := ctx.Request.Header.Peek("Idempotency-Key")
	if len(id) == 0 {
		id = ctx.Request.Header.Peek("Vrsky-Msg-Id")
	}
	if len(id) == 0 {
		s.missingID.Add(1)
		ctx.SetStatusCode(fasthttp.StatusOK)
		return
	}
	s.record(string(id), now)
	ctx.SetStatusCode(fasthttp.StatusOK)
}

// record counts a receipt of message key at now: its first, or a
// duplicate.
func (s *sink) record(key string, now int64) {
	sh := &s.shards[maphash.String(s.seed, key)%sinkShards]
	sh.mu.Lock()
	_, dup := sh.seen[key]
	if !dup {
		sh.seen[key] = now
	}
	sh.mu.Unlock()
	if dup {
		s.dups.Add(1)
	} else {
		s.unique.Add(1)
		for {
			last := s.lastAt.Load()
			if now <= last || s.lastAt.CompareAndSwap(last, now) {
				break
			}
		}
	}
}

// Unique is the number of distinct ids received so far.
func (s *sink) Unique() int64 { return s.unique.Load() }

// snapshot copies every received id with its receipt time.
func (s *sink) snapshot() map[string]int64 {
	out := make(map[string]int64, s.unique.Load())
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		for k, v := range sh.seen {
			out[k] = v
		}
		sh.mu.Unlock()
	}
	return out
}

// Close stops the server.
func (s *sink) Close() error {
	err := s.srv.Shutdown()
	if serr := <-s.served; serr != nil && !errors.Is(serr, net.ErrClosed) && err == nil {
		err = serr
	}
	return err
}

// clock measures time since the bench started, from the monotonic clock, so
// the load clients and the sink share one time base.
type clock struct{ start time.Time }

func newClock() *clock { return &clock{start: time.Now()} }

// now is the time since start in nanoseconds.
func (c *clock) now() int64 { return int64(time.Since(c.start)) }

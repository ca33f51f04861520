package api

import (
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// Failed-authentication throttling.
//
// Every credential the API is shown and refuses (a malformed Authorization
// header, a malformed or unknown key, a wrong secret; not a request without
// the header, which guesses nothing) is charged to the client's address. A
// wrong secret for a key id that exists is charged to that key id as well,
// so that an attack on one key from many addresses is slowed too. Unknown
// ids are not tracked: there is nothing to guess behind them, and tracking
// them would let anyone fill the table.
//
// Each address and each key id has a token bucket of failures: a burst of
// Config.AuthFailureBurst, refilled by one every Config.AuthFailureRefill.
// Once it is empty, authenticate answers 429 too_many_auth_failures with
// Retry-After, before it looks at the key at all: a correct key is refused
// too until the bucket refills, or the difference between a 429 and a 200
// would tell a guesser which guess was right (fail2ban, sshd's
// PerSourcePenalties and most API gateways do the same). Successful
// authentications neither consume the budget nor reset it: with a reset,
// the holder of any valid key could interleave it with guesses at the admin
// key and never be slowed.
//
// The client address is fiber's c.IP(). The server sets no ProxyHeader, so
// that is the TCP peer, and X-Forwarded-For is never trusted: a client
// cannot pick the address it is charged to. Behind a reverse proxy every
// client therefore shares the proxy's budget; rate-limit failed
// authentications at the proxy instead, or give it a budget to match.
// IPv6 clients are charged per /64, which is what one host or site is
// usually given, so that walking through a prefix buys nothing.

// Defaults for Config's failed-authentication zero values.
const (
	// DefaultAuthFailureBurst is how many failed authentications an address
	// or a key id may make in a row: room for someone mistyping a key or a
	// script retrying a stale one a few times, while a guesser gets ten
	// tries, not thousands a second.
	DefaultAuthFailureBurst = 10
	// DefaultAuthFailureRefill is how often one more failure is allowed once
	// the burst is spent: 1 a second sustained, 3,600 an hour per address,
	// which is nothing against a tenant key's 256-bit secret and slows
	// guessing a chosen --admin-key by several orders of magnitude, while a
	// client that retries a wrong key every few seconds is never refused.
	DefaultAuthFailureRefill = time.Second
	// DefaultAuthFailureTrack caps how many addresses, and separately how
	// many key ids, are remembered: about 140 bytes each (measured, with
	// IPv6 keys), so at most 9 MiB a table under an attack from any number
	// of addresses. An entry is dropped once its bucket is full again
	// (burst × refill after its last failure: 10s by default), so the cap
	// holds every address failing at up to 6,500 new ones a second; past
	// the cap the least recently failing is forgotten first.
	DefaultAuthFailureTrack = 1 << 16
)

// throttled is the 429 for a client or key id whose budget is spent, for
// wait more.
func throttled(wait time.Duration, whose string) *Error {
	e := newError(http.StatusTooManyRequests, CodeTooManyAuthFailures, "Authorization",
		"too many failed authentications %s: retry after %ds (until then every key is refused, a correct one too)",
		whose, retrySeconds(wait))
	e.retryAfter = wait
	return e
}

// retrySeconds is d as a Retry-After value: whole seconds, rounded up, at
// least 1.
func retrySeconds(d time.Duration) int {
	return max(1, int((d+time.Second-1)/time.Second))
}

// clientKey is what a client's failures are charged to: its IPv4 address,
// or its IPv6 /64.
func clientKey(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	a = a.Unmap()
	if a.Is6() {
		if p, err := a.WithZone("").Prefix(64); err == nil {
			return p.String()
		}
	}
	return a.String()
}

// authFailed charges a refused credential to the client and, for a wrong
// secret of a key that exists, to its key id, and logs when that spends
// a budget.
func (s *Server) authFailed(client, id string) {
	if wait := s.addrFails.fail(client); wait > 0 {
		s.log.Warn("failed authentications throttled", "client", client, "retry_after", wait)
	}
	if id == "" {
		return
	}
	if wait := s.idFails.fail(id); wait > 0 {
		s.log.Warn("failed authentications throttled", "key_id", id, "client", client, "retry_after", wait)
	}
}

// failLimiter is a table of token buckets of failures, one per key (an
// address or a key id), bounded in size and safe for concurrent use.
//
// A bucket is kept as the time it is full again (GCRA): each failure pushes
// that time refill further into the future (from now at the earliest), and
// the key is throttled while it is more than (burst-1) × refill away. A
// bucket that is full again is the same as none, so it is dropped.
//
// The check (wait) and the charge (fail) are separate, so that successful
// requests take nothing and concurrent ones never refuse each other.
// Concurrent failures that pass the check together are all charged: they
// can stretch one burst, but not the sustained rate.
type failLimiter struct {
	burst  int
	refill time.Duration
	max    int
	now    func() time.Time

	mu sync.Mutex
	m  map[string]*failEntry
	// The entries from the most recently failing (head) to the least (tail).
	head, tail *failEntry
}

type failEntry struct {
	key        string
	full       time.Time // when the bucket is full again
	prev, next *failEntry
}

func newFailLimiter(burst int, refill time.Duration, maxEntries int) *failLimiter {
	return &failLimiter{
		burst:  max(1, burst),
		refill: max(time.Nanosecond, refill),
		max:    max(1, maxEntries),
		now:    time.Now,
		m:      make(map[string]*failEntry),
	}
}

// wait reports how long key must wait before its next attempt; 0 means it
// may try now.
func (l *failLimiter) wait(key string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.m[key]
	if e == nil {
		return 0
	}
	now := l.now()
	if !e.full.After(now) {
		l.remove(e)
		return 0
	}
	return l.over(e, now)
}

// fail charges one failure to key and returns how long it must then wait
// (0 while it is within its burst).
func (l *failLimiter) fail(key string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	l.sweep(now)
	e := l.m[key]
	if e == nil {
		if len(l.m) >= l.max {
			l.remove(l.tail)
		}
		e = &failEntry{key: strings.Clone(key), full: now}
		l.m[e.key] = e
	} else {
		l.unlink(e)
	}
	l.pushFront(e)
	if e.full.Before(now) {
		e.full = now
	}
	e.full = e.full.Add(l.refill)
	return l.over(e, now)
}

// len is how many keys are tracked.
func (l *failLimiter) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.m)
}

// over is how far e's bucket is past empty: the wait before its next try.
func (l *failLimiter) over(e *failEntry, now time.Time) time.Duration {
	return max(0, e.full.Sub(now)-time.Duration(l.burst-1)*l.refill)
}

// sweep drops the least recently failing entries that are full again. Each
// entry is dropped once, so this costs O(1) per failure amortised; entries
// that expire out of order wait for the next sweep or for eviction.
func (l *failLimiter) sweep(now time.Time) {
	for l.tail != nil && !l.tail.full.After(now) {
		l.remove(l.tail)
	}
}

func (l *failLimiter) remove(e *failEntry) {
	l.unlink(e)
	delete(l.m, e.key)
}

func (l *failLimiter) unlink(e *failEntry) {
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		l.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		l.tail = e.prev
	}
	e.prev, e.next = nil, nil
}

func (l *failLimiter) pushFront(e *failEntry) {
	e.next = l.head
	if l.head != nil {
		l.head.prev = e
	}
	l.head = e
	if l.tail == nil {
		l.tail = e
	}
}

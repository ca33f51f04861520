package api

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// from returns e sending its requests to base (from e.listen) over
// connections from the loopback address ip, so that the server sees
// c.IP() == ip. Linux routes all of 127.0.0.0/8 on lo; elsewhere the test
// is skipped.
func (e *testEnv) from(t *testing.T, base, ip string) *testEnv {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	local := &net.TCPAddr{IP: net.ParseIP(ip)}
	probe, err := (&net.Dialer{LocalAddr: local}).Dial("tcp", u.Host)
	if err != nil {
		t.Fatalf("cannot connect from %s (Linux routes all of 127.0.0.0/8 on lo): %v", ip, err)
	}
	_ = probe.Close()
	tr := &http.Transport{DialContext: (&net.Dialer{LocalAddr: local}).DialContext}
	t.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	c := *e
	c.t = t
	c.via = func(r *http.Request) (*http.Response, error) {
		r.RequestURI = "" // set by httptest.NewRequest; clients must not
		r.URL.Scheme, r.URL.Host = u.Scheme, u.Host
		return client.Do(r)
	}
	return &c
}

// throttleEnv is a server on a real listener that allows burst failed
// authentications, refilled every refill, with a tenant "acme" and two of
// its keys: good, used only correctly, and victim, whose id is attacked.
func throttleEnv(t *testing.T, burst int, refill time.Duration) (e *testEnv, base, good, victim string) {
	t.Helper()
	e = newTestEnv(t, func(c *Config) {
		c.AuthFailureBurst = burst
		c.AuthFailureRefill = refill
	})
	good = e.createTenant("acme")
	victim = e.must(http.StatusCreated, req{method: "POST", path: "/api/v1/tenants/acme/keys", key: good}).str("api_key")
	if victim == "" {
		t.Fatal("no second key")
	}
	return e, e.listen(t), good, victim
}

// wrongSecret is key with its secret replaced: a real id, a wrong key.
func wrongSecret(key string, n int) string {
	id, _ := keyID(key)
	return fmt.Sprintf("%s%s_%064x", keyPrefix, id, n+1)
}

// checkThrottled fails the test unless r is the 429 of a spent budget:
// too_many_auth_failures naming Authorization and whose (address or key
// id), with Retry-After of wantRetry seconds, matching the Error schema.
func checkThrottled(t *testing.T, r resp, whose string, wantRetry int) {
	t.Helper()
	if r.status != http.StatusTooManyRequests {
		t.Fatalf("status %d, want 429\n%s", r.status, r.raw)
	}
	if r.errField("code") != string(CodeTooManyAuthFailures) || r.errField("field") != "Authorization" ||
		!strings.Contains(r.errField("message"), whose) {
		t.Fatalf("429 body %s: want code %s, field Authorization, a message naming %q", r.raw, CodeTooManyAuthFailures, whose)
	}
	if got := r.header.Get("Retry-After"); got != strconv.Itoa(wantRetry) {
		t.Fatalf("Retry-After %q, want %d", got, wantRetry)
	}
	conforms(t, "Error", r.raw)
}

// TestAuthFailuresThrottleAnAddress: from one address, the first burst
// refused credentials of any kind answer 401, the next 429; then even a
// correct key from that address is refused, while from another address it
// works.
func TestAuthFailuresThrottleAnAddress(t *testing.T) {
	const burst = 4
	e, base, good, victim := throttleEnv(t, burst, time.Minute) // no refill within the test
	tests := []struct {
		name   string
		header string
	}{
		{"not bearer", "Basic " + good},
		{"admin key guess", "Bearer " + testAdminKey + "x"},
		{"malformed key", "Bearer vrsk_nothex"},
		{"unknown key id", "Bearer " + keyPrefix + "0123456789abcdef_" + strings.Repeat("0", 64)},
		{"wrong secret", "Bearer " + wrongSecret(victim, 0)},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			attacker := e.from(t, base, fmt.Sprintf("127.0.0.%d", 10+i))
			bad := req{method: "GET", path: "/api/v1/integrations", header: map[string]string{"Authorization": tc.header}}
			for n := range burst {
				r := attacker.must(http.StatusUnauthorized, bad)
				if r.errField("code") != string(CodeUnauthorized) {
					t.Fatalf("failure %d: %s", n+1, r.raw)
				}
			}
			checkThrottled(t, attacker.do(bad), "from this address", 60)
			checkThrottled(t, attacker.do(req{method: "GET", path: "/api/v1/integrations", key: good}), "from this address", 60)
			e.from(t, base, fmt.Sprintf("127.0.0.%d", 100+i)).must(http.StatusOK, req{method: "GET", path: "/api/v1/integrations", key: good})
		})
	}
}

// TestAuthFailuresThrottleAKeyID: wrong secrets for one key id from many
// addresses, one each, spend the id's budget: then the id is refused from
// anywhere (its correct key too), other keys are not, and the addresses
// have spent only their own one failure.
func TestAuthFailuresThrottleAKeyID(t *testing.T) {
	const burst = 4
	e, base, good, victim := throttleEnv(t, burst, time.Minute)
	list := req{method: "GET", path: "/api/v1/integrations"}
	withKey := func(key string) req { r := list; r.key = key; return r }
	var addrs []*testEnv
	for n := range burst {
		a := e.from(t, base, fmt.Sprintf("127.0.1.%d", n+1))
		a.must(http.StatusUnauthorized, withKey(wrongSecret(victim, n)))
		addrs = append(addrs, a)
	}
	last := e.from(t, base, fmt.Sprintf("127.0.1.%d", burst+1))
	checkThrottled(t, last.do(withKey(wrongSecret(victim, burst))), "for this key id", 60)
	checkThrottled(t, e.from(t, base, "127.0.1.200").do(withKey(victim)), "for this key id", 60)
	e.from(t, base, "127.0.1.201").must(http.StatusOK, withKey(good))

	// Each address failed once; one refused for the id was not charged.
	for _, a := range addrs {
		for range burst - 1 {
			a.must(http.StatusUnauthorized, withKey("vrsk_nothex"))
		}
		a.must(http.StatusTooManyRequests, withKey("vrsk_nothex"))
	}
	for range burst {
		last.must(http.StatusUnauthorized, withKey("vrsk_nothex"))
	}
}

// TestAuthFailuresRecover: once Retry-After has passed, the throttled
// address is let in with the correct key, and may fail again.
func TestAuthFailuresRecover(t *testing.T) {
	const refill = 300 * time.Millisecond
	e, base, good, _ := throttleEnv(t, 2, refill)
	a := e.from(t, base, "127.0.2.1")
	bad := req{method: "GET", path: "/api/v1/integrations", key: "vrsk_nothex"}
	// Fail until throttled; under a slow machine the bucket may refill
	// between two failures, so count none of them exactly here (the other
	// tests do, without refill).
	var throttledAt time.Time
	var retry int
	for n := 0; throttledAt.IsZero(); n++ {
		if n > 20 {
			t.Fatal("20 failures in a row and no 429")
		}
		r := a.do(bad)
		switch r.status {
		case http.StatusUnauthorized:
		case http.StatusTooManyRequests:
			throttledAt = time.Now()
			checkThrottled(t, r, "from this address", retrySeconds(refill))
			retry, _ = strconv.Atoi(r.header.Get("Retry-After"))
		default:
			t.Fatalf("status %d\n%s", r.status, r.raw)
		}
	}
	ok := req{method: "GET", path: "/api/v1/integrations", key: good}
	eventually(t, time.Duration(retry)*time.Second+time.Second, "the correct key to be let in again", func() bool {
		r := a.do(ok)
		if r.status != http.StatusOK && r.status != http.StatusTooManyRequests {
			t.Fatalf("status %d\n%s", r.status, r.raw)
		}
		return r.status == http.StatusOK
	})
	if waited := time.Since(throttledAt); waited > time.Duration(retry)*time.Second+time.Second {
		t.Fatalf("let in after %s, Retry-After was %ds", waited, retry)
	}
	a.must(http.StatusUnauthorized, bad)
}

// TestAuthSuccessNeitherConsumesNorResets: successful requests and
// requests without a key leave the failure budget as it was: neither
// spent (or a busy client would lock itself out) nor reset (or any valid
// key would buy unlimited guesses at the admin key). Through app.Test,
// so every request is from the same address.
func TestAuthSuccessNeitherConsumesNorResets(t *testing.T) {
	const burst = 4
	e := newTestEnv(t, func(c *Config) { c.AuthFailureBurst, c.AuthFailureRefill = burst, time.Minute })
	good := e.createTenant("acme")
	bad := req{method: "GET", path: "/api/v1/integrations", key: testAdminKey + "x"}
	for range burst - 1 {
		e.must(http.StatusUnauthorized, bad)
	}
	for range 3 * burst {
		e.must(http.StatusOK, req{method: "GET", path: "/api/v1/integrations", key: good})
		e.must(http.StatusOK, req{method: "GET", path: "/api/v1/tenants", key: testAdminKey})
		e.must(http.StatusUnauthorized, req{method: "GET", path: "/api/v1/integrations"}) // no key: not counted
	}
	e.must(http.StatusUnauthorized, bad)
	checkThrottled(t, e.do(bad), "from this address", 60)
	checkThrottled(t, e.do(req{method: "GET", path: "/api/v1/tenants", key: testAdminKey}), "from this address", 60)
}

// TestAuthThrottleConfig: zero values are the defaults, negative ones are
// refused.
func TestAuthThrottleConfig(t *testing.T) {
	var cfg Config
	e := newTestEnv(t, func(c *Config) { cfg = *c })
	for _, l := range []*failLimiter{e.srv.addrFails, e.srv.idFails} {
		if l.burst != DefaultAuthFailureBurst || l.refill != DefaultAuthFailureRefill || l.max != DefaultAuthFailureTrack {
			t.Fatalf("defaults: burst %d, refill %s, max %d", l.burst, l.refill, l.max)
		}
	}
	for _, tune := range []func(*Config){
		func(c *Config) { c.AuthFailureBurst = -1 },
		func(c *Config) { c.AuthFailureRefill = -time.Second },
		func(c *Config) { c.AuthFailureTrack = -1 },
	} {
		c := cfg
		tune(&c)
		if _, err := New(c); err == nil {
			t.Errorf("New accepted %+v", c)
		}
	}
}

// fakeClock is a time source tests move by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func testLimiter(burst int, refill time.Duration, maxEntries int) (*failLimiter, *fakeClock) {
	clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	l := newFailLimiter(burst, refill, maxEntries)
	l.now = clock.now
	return l, clock
}

// TestFailLimiterBucket: burst failures, then a wait of one refill per
// failure; the bucket refills one failure per refill and is forgotten once
// full.
func TestFailLimiterBucket(t *testing.T) {
	tests := []struct {
		burst  int
		refill time.Duration
	}{
		{1, time.Second},
		{DefaultAuthFailureBurst, DefaultAuthFailureRefill},
		{3, 250 * time.Millisecond},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%d per %s", tc.burst, tc.refill), func(t *testing.T) {
			l, clock := testLimiter(tc.burst, tc.refill, 100)
			for n := 1; n < tc.burst; n++ {
				if w := l.fail("a"); w != 0 {
					t.Fatalf("failure %d of %d: wait %s", n, tc.burst, w)
				}
				if w := l.wait("a"); w != 0 {
					t.Fatalf("after failure %d of %d: wait %s", n, tc.burst, w)
				}
			}
			if w := l.fail("a"); w != tc.refill {
				t.Fatalf("the failure that spends the burst: wait %s, want %s", w, tc.refill)
			}
			if w := l.wait("a"); w != tc.refill {
				t.Fatalf("spent: wait %s, want %s", w, tc.refill)
			}
			if w := l.wait("b"); w != 0 {
				t.Fatalf("another key: wait %s", w)
			}
			clock.advance(tc.refill - time.Millisecond)
			if w := l.wait("a"); w != time.Millisecond {
				t.Fatalf("almost refilled: wait %s, want 1ms", w)
			}
			clock.advance(time.Millisecond)
			if w := l.wait("a"); w != 0 {
				t.Fatalf("refilled one: wait %s", w)
			}
			if w := l.fail("a"); w != tc.refill {
				t.Fatalf("failing again: wait %s, want %s", w, tc.refill)
			}
			clock.advance(time.Duration(tc.burst) * tc.refill)
			if w := l.wait("a"); w != 0 || l.len() != 0 {
				t.Fatalf("full again: wait %s, %d entries, want 0 and none", w, l.len())
			}
		})
	}
}

func TestRetrySeconds(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want int
	}{
		{time.Nanosecond, 1},
		{999 * time.Millisecond, 1},
		{time.Second, 1},
		{time.Second + time.Nanosecond, 2},
		{59500 * time.Millisecond, 60},
		{time.Minute, 60},
	} {
		if got := retrySeconds(tc.d); got != tc.want {
			t.Errorf("retrySeconds(%s) = %d, want %d", tc.d, got, tc.want)
		}
	}
}

func TestClientKey(t *testing.T) {
	for ip, want := range map[string]string{
		"127.0.0.1":            "127.0.0.1",
		"0.0.0.0":              "0.0.0.0",
		"::ffff:10.0.0.1":      "10.0.0.1",
		"2001:db8:1:2:3:4:5:6": "2001:db8:1:2::/64",
		"2001:db8:1:2:ffff::1": "2001:db8:1:2::/64",
		"fe80::1%eth0":         "fe80::/64",
		"not an address":       "not an address",
	} {
		if got := clientKey(ip); got != want {
			t.Errorf("clientKey(%q) = %q, want %q", ip, got, want)
		}
	}
}

// TestFailLimiterBounded: 100,000 distinct addresses never make the table
// grow past its cap; the least recently failing are forgotten first, and
// entries whose bucket is full again are swept.
func TestFailLimiterBounded(t *testing.T) {
	const n = 100_000
	for _, maxEntries := range []int{1000, DefaultAuthFailureTrack} {
		t.Run(strconv.Itoa(maxEntries), func(t *testing.T) {
			l, clock := testLimiter(1, time.Second, maxEntries)
			for i := range n {
				l.fail(fmt.Sprintf("10.%d.%d.%d", i>>16, i>>8&0xff, i&0xff))
				if i%1000 == 0 && l.len() > maxEntries {
					t.Fatalf("after %d addresses: %d entries, cap %d", i+1, l.len(), maxEntries)
				}
			}
			if got := l.len(); got != maxEntries {
				t.Fatalf("%d entries, want the cap %d", got, maxEntries)
			}
			if l.wait("10.0.0.0") != 0 {
				t.Error("the first address is still remembered")
			}
			if last := n - 1; l.wait(fmt.Sprintf("10.%d.%d.%d", last>>16, last>>8&0xff, last&0xff)) == 0 {
				t.Error("the last address is forgotten")
			}
			clock.advance(time.Second)
			l.fail("192.0.2.1")
			if got := l.len(); got != 1 {
				t.Fatalf("after every bucket refilled: %d entries, want 1", got)
			}
		})
	}

	t.Run("least recently failing first", func(t *testing.T) {
		l, _ := testLimiter(1, time.Second, 3)
		for _, k := range []string{"a", "b", "c", "a", "d"} {
			l.fail(k)
		}
		for k, kept := range map[string]bool{"a": true, "b": false, "c": true, "d": true} {
			if got := l.wait(k) > 0; got != kept {
				t.Errorf("%s remembered: %v, want %v", k, got, kept)
			}
		}
	})
}

// TestFailLimiterConcurrent (run with -race): concurrent checks and
// failures on shared keys, with evictions, keep the table consistent and
// charge every failure.
func TestFailLimiterConcurrent(t *testing.T) {
	const (
		workers = 16
		ops     = 2000
		burst   = 5
		refill  = time.Second
	)
	churn, _ := testLimiter(burst, refill, 20)
	count, _ := testLimiter(burst, refill, 20)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range ops {
				k := strconv.Itoa((w*ops + i) % 50)
				if churn.wait(k) == 0 {
					churn.fail(k)
				}
				_ = churn.len()
				if i%10 == 0 {
					count.fail("x")
				}
			}
		})
	}
	wg.Wait()
	if n := churn.len(); n > 20 {
		t.Fatalf("%d entries, cap 20", n)
	}
	// Walk the list both ways: it must hold exactly the map's entries.
	seen := 0
	var prev *failEntry
	for e := churn.head; e != nil; e = e.next {
		if e.prev != prev || churn.m[e.key] != e {
			t.Fatalf("list broken at %q", e.key)
		}
		prev, seen = e, seen+1
	}
	if prev != churn.tail || seen != len(churn.m) {
		t.Fatalf("list holds %d entries, map %d", seen, len(churn.m))
	}
	failures := workers * ops / 10
	if got, want := count.wait("x"), time.Duration(failures-(burst-1))*refill; got != want {
		t.Fatalf("after %d concurrent failures: wait %s, want %s", failures, got, want)
	}
}

// TestKeyComparisonIsConstantTime keeps authenticate comparing keys in
// constant time: the presented key's SHA-256 sum is compared with the
// admin's and the stored key's only through subtle.ConstantTimeCompare,
// and neither the key text nor a hash is compared with ==, != or the bytes
// package.
func TestKeyComparisonIsConstantTime(t *testing.T) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "auth.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var fn *ast.FuncDecl
	for _, d := range f.Decls {
		if d, ok := d.(*ast.FuncDecl); ok && d.Name.Name == "authenticate" {
			fn = d
		}
	}
	if fn == nil {
		t.Fatal("no authenticate in auth.go")
	}
	isCall := func(n ast.Node, pkg, name string) bool {
		c, ok := n.(*ast.CallExpr)
		if !ok {
			return false
		}
		s, ok := c.Fun.(*ast.SelectorExpr)
		if !ok {
			return false
		}
		x, ok := s.X.(*ast.Ident)
		return ok && x.Name == pkg && s.Sel.Name == name
	}
	// mentions reports whether n uses the key text or a hash.
	mentions := func(n ast.Node) bool {
		found := false
		ast.Inspect(n, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.Ident:
				found = found || n.Name == "sum" || n.Name == "text" || n.Name == "adminHash"
			case *ast.SelectorExpr:
				found = found || n.Sel.Name == "Hash"
			}
			return !found
		})
		return found
	}
	var compares []string
	ast.Inspect(fn.Body, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.CallExpr:
			if isCall(n, "subtle", "ConstantTimeCompare") {
				if len(n.Args) != 2 || !mentions(n.Args[0]) || !mentions(n.Args[1]) {
					t.Errorf("%s: ConstantTimeCompare not of two hashes", fset.Position(n.Pos()))
				}
				compares = append(compares, fset.Position(n.Pos()).String())
				return false
			}
			if s, ok := n.Fun.(*ast.SelectorExpr); ok {
				if x, ok := s.X.(*ast.Ident); ok && x.Name == "bytes" && mentions(n) {
					t.Errorf("%s: bytes.%s on a key or hash", fset.Position(n.Pos()), s.Sel.Name)
				}
			}
		case *ast.BinaryExpr:
			if n.Op != token.EQL && n.Op != token.NEQ {
				return true
			}
			if isCall(n.X, "subtle", "ConstantTimeCompare") || isCall(n.Y, "subtle", "ConstantTimeCompare") {
				return true // its result, 0 or 1
			}
			empty := func(e ast.Expr) bool { l, ok := e.(*ast.BasicLit); return ok && l.Value == `""` }
			if (mentions(n.X) || mentions(n.Y)) && !empty(n.X) && !empty(n.Y) {
				t.Errorf("%s: a key or hash compared with %s", fset.Position(n.Pos()), n.Op)
			}
		}
		return true
	})
	if len(compares) != 2 {
		t.Errorf("authenticate calls subtle.ConstantTimeCompare at %v; want twice (admin key, tenant key)", compares)
	}
}

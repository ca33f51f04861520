package postgrescdc

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	httpconn "github.com/vrsky/vrsky/builtin/http"
	"github.com/vrsky/vrsky/internal/testenv/pgtest"
	"github.com/vrsky/vrsky/runtime"
	"github.com/vrsky/vrsky/runtime/runtimetest"
)

// benchTx is how many rows each benchmark transaction inserts.
const benchTx = 1000

// benchDB is a fresh database with table t, its DSN in CDC_TEST_DSN.
func benchDB(b *testing.B) *pgx.Conn {
	dsn := pgtest.New(b)
	b.Setenv("CDC_TEST_DSN", dsn)
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close(context.Background()) })
	// pgtest runs synchronous_commit=off, which lets commits wait up to
	// wal_writer_delay (200ms) before the walsender may send them: not
	// what a production server does.
	if _, err := conn.Exec(context.Background(), "SET synchronous_commit = on"); err != nil {
		b.Fatal(err)
	}
	if _, err := conn.Exec(context.Background(), "CREATE TABLE t (id int PRIMARY KEY, name text, qty int, price numeric(10,2), at timestamptz DEFAULT now())"); err != nil {
		b.Fatal(err)
	}
	return conn
}

// insertRows inserts n rows in transactions of benchTx.
func insertRows(b *testing.B, conn *pgx.Conn, n int) {
	for lo := 0; lo < n; lo += benchTx {
		hi := min(lo+benchTx, n) - 1
		if _, err := conn.Exec(context.Background(),
			"INSERT INTO t (id, name, qty, price) SELECT g, 'customer ' || g, g % 7, g * 1.25 FROM generate_series($1::int, $2::int) g", lo, hi); err != nil {
			b.Fatal(err)
		}
	}
}

func waitSlot(b *testing.B, conn *pgx.Conn) {
	deadline := time.Now().Add(wait)
	for {
		var active bool
		err := conn.QueryRow(context.Background(), `SELECT EXISTS (SELECT 1 FROM pg_replication_slots s JOIN pg_stat_replication r ON r.pid = s.active_pid
			WHERE s.slot_name = 'vrsky_acme_orders' AND r.state IN ('catchup', 'streaming'))`).Scan(&active)
		if err == nil && active {
			return
		}
		if time.Now().After(deadline) {
			b.Fatal("the source never started streaming")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// lagReceiver records, per distinct message, the time from its commit
// to its arrival.
type lagReceiver struct {
	mu   sync.Mutex
	seen map[string]bool
	lags []time.Duration
	want int
	done chan struct{}
}

func (l *lagReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	now := time.Now()
	var c struct {
		CommitTime time.Time `json:"commit_time"`
	}
	if err := json.Unmarshal(body, &c); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if id := r.Header.Get("Idempotency-Key"); !l.seen[id] {
		l.seen[id] = true
		l.lags = append(l.lags, now.Sub(c.CommitTime))
		if len(l.lags) == l.want {
			close(l.done)
		}
	}
}

func reportLags(b *testing.B, lags []time.Duration) {
	slices.Sort(lags)
	p := func(q float64) float64 { return float64(lags[int(q*float64(len(lags)-1))]) / float64(time.Millisecond) }
	b.ReportMetric(p(0.5), "lag-p50-ms")
	b.ReportMetric(p(0.99), "lag-p99-ms")
}

// BenchmarkCDCToHTTP: b.N rows inserted (transactions of 1,000) flow
// through the source, JetStream and the http sink to an HTTP server.
// Run with -benchtime=100000x for the DESIGN.md figure.
func BenchmarkCDCToHTTP(b *testing.B) {
	conn := benchDB(b)
	rcv := &lagReceiver{seen: map[string]bool{}, want: b.N, done: make(chan struct{})}
	srv := httptest.NewServer(rcv)
	b.Cleanup(srv.Close)
	h := runtimetest.Start(b, []runtime.Connector{Source, httpconn.Sink})
	h.Create(b, fmt.Sprintf(`
name: orders
source:
  connector: postgres-cdc
  config: {dsn_env: CDC_TEST_DSN, tables: [t]}
sinks:
  - name: out
    connector: http
    config: {url: %q}
`, srv.URL))
	waitSlot(b, conn)
	b.ResetTimer()
	start := time.Now()
	insertRows(b, conn, b.N)
	select {
	case <-rcv.done:
	case <-time.After(10 * time.Minute):
		b.Fatalf("only %d of %d changes arrived", len(rcv.lags), b.N)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "changes/s")
	rcv.mu.Lock()
	reportLags(b, rcv.lags)
	rcv.mu.Unlock()
}

// BenchmarkSourceAlone: the source's own ceiling. b.N rows are inserted
// while the source is stopped (its slot exists), then the source decodes
// the backlog into a recording emitter (no JetStream, no sink).
func BenchmarkSourceAlone(b *testing.B) {
	conn := benchDB(b)
	st := newState(b)
	run := func(em runtime.Emitter) (stop func()) {
		src, err := Source.NewSource(json.RawMessage(`{"dsn_env":"CDC_TEST_DSN","tables":["t"]}`),
			runtime.Env{Tenant: "acme", Integration: "orders", State: st})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); _ = src.Run(ctx, em) }()
		return func() { cancel(); <-done }
	}
	stop := run(&runtimetest.Emitter{}) // creates the slot
	waitSlot(b, conn)
	stop()
	insertRows(b, conn, b.N)
	em := &runtimetest.Emitter{}
	b.ResetTimer()
	start := time.Now()
	stop = run(em)
	defer stop()
	deadline := time.Now().Add(10 * time.Minute)
	for len(em.Messages()) < b.N {
		if time.Now().After(deadline) {
			b.Fatalf("only %d of %d changes arrived", len(em.Messages()), b.N)
		}
		time.Sleep(time.Millisecond)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "changes/s")
}

// BenchmarkCDCToHTTPPaced: the same path under a steady load of
// transactions of 50 rows every 50 ms (1,000 changes/s), to measure the
// lag when the pipeline keeps up rather than the backlog of a burst.
func BenchmarkCDCToHTTPPaced(b *testing.B) {
	conn := benchDB(b)
	rcv := &lagReceiver{seen: map[string]bool{}, want: b.N, done: make(chan struct{})}
	srv := httptest.NewServer(rcv)
	b.Cleanup(srv.Close)
	h := runtimetest.Start(b, []runtime.Connector{Source, httpconn.Sink})
	h.Create(b, fmt.Sprintf(`
name: orders
source:
  connector: postgres-cdc
  config: {dsn_env: CDC_TEST_DSN, tables: [t]}
sinks:
  - name: out
    connector: http
    config: {url: %q}
`, srv.URL))
	waitSlot(b, conn)
	b.ResetTimer()
	const per, every = 50, 50 * time.Millisecond
	tick := time.NewTicker(every)
	defer tick.Stop()
	for lo := 0; lo < b.N; lo += per {
		hi := min(lo+per, b.N) - 1
		if _, err := conn.Exec(context.Background(),
			"INSERT INTO t (id, name, qty, price) SELECT g, 'customer ' || g, g % 7, g * 1.25 FROM generate_series($1::int, $2::int) g", lo, hi); err != nil {
			b.Fatal(err)
		}
		<-tick.C
	}
	select {
	case <-rcv.done:
	case <-time.After(10 * time.Minute):
		b.Fatalf("only %d of %d changes arrived", len(rcv.lags), b.N)
	}
	b.StopTimer()
	rcv.mu.Lock()
	reportLags(b, rcv.lags)
	rcv.mu.Unlock()
}

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/valyala/fasthttp"

	"github.com/vrsky/vrsky/internal/testenv/pgcluster"
)

// The PostgreSQL modes run vrsky serve against a throwaway PostgreSQL
// cluster (pgtest: the system's binaries, fsync off, as in the tests) and
// measure the two DESIGN.md figures with PostgreSQL's own speed as the
// reference, in the same run:
//
//   -csv-rows N     a CSV file of N rows dropped in a watched folder →
//                   file source → postgres sink (COPY); rows/s from the drop
//                   until the table holds N rows. Reference: COPY FROM STDIN
//                   of the same file into the same kind of table.
//   -cdc-changes N  N rows inserted (COPY, 1,000 per transaction) →
//                   postgres-cdc → HTTP sink (JSON-array batches); changes/s
//                   from the first commit to the last arrival, and the lag
//                   from each change's commit time to its arrival at the sink.
//                   Reference: how fast PostgreSQL took the inserts.

// pgDSNEnv is in the bench tenant's secret scope (vrsky serve
// --secret-env-prefix).
const pgDSNEnv = "VRSKY_SECRET_BENCH__PG_DSN"

// pgBench is a running cluster, vrsky serve with the DSN in its
// environment, and the bench tenant's client.
type pgBench struct {
	cluster *pgcluster.Cluster
	dsn     string
	proc    *vrskyProc
	db      *pgx.Conn
}

func startPGBench(ctx context.Context, cfg *config, bin, tmp string) (*pgBench, error) {
	logf("vrsky-bench: starting a throwaway PostgreSQL cluster")
	c, err := pgcluster.StartCluster()
	if err != nil {
		return nil, err
	}
	b := &pgBench{cluster: c}
	if b.dsn, err = c.EnsureDatabase(ctx, "bench"); err != nil {
		b.close()
		return nil, err
	}
	if b.db, err = pgx.Connect(ctx, b.dsn); err != nil {
		b.close()
		return nil, fmt.Errorf("connect: %w", err)
	}
	os.Setenv(pgDSNEnv, b.dsn) // vrsky serve inherits it; specs name it in dsn_env
	adminKey := "bench-pg-admin-key-0123456789"
	flags := append([]string{"--files-root", filepath.Join(tmp, "files")}, cfg.serveFlags...)
	b.proc, err = startVrsky(bin, filepath.Join(tmp, "data"), filepath.Join(tmp, "vrsky.log"), adminKey, cfg.natsSync, flags)
	if err != nil {
		b.close()
		return nil, err
	}
	if err := b.proc.waitReady(ctx, 30*time.Second); err != nil {
		b.close()
		return nil, err
	}
	return b, nil
}

func (b *pgBench) close() {
	if b.proc != nil {
		_ = b.proc.stop(15 * time.Second)
	}
	if b.db != nil {
		_ = b.db.Close(context.Background())
	}
	_ = b.cluster.Close()
}

const csvTable = `(id bigint NOT NULL, name text NOT NULL, amount numeric(12,2) NOT NULL, day date NOT NULL)`

// writeCSV writes n rows and returns the sum of their amounts in cents.
func writeCSV(path string, n int) (int64, error) {
	f, err := os.Create(path)
	if err != nil {
		return 0, err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	fmt.Fprintln(w, "id,name,amount,day")
	var cents int64
	for i := range n {
		c := int64(i%100000) + 1
		cents += c
		fmt.Fprintf(w, "%d,customer %d,%d.%02d,2026-%02d-%02d\n", i+1, i%977, c/100, c%100, i%12+1, i%28+1)
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return 0, err
	}
	return cents, f.Close()
}

func benchCSV(ctx context.Context, cfg *config, bin, tmp string) error {
	b, err := startPGBench(ctx, cfg, bin, tmp)
	if err != nil {
		return err
	}
	defer b.close()
	n := cfg.csvRows
	src := filepath.Join(tmp, "rows.csv")
	logf("vrsky-bench: writing %d CSV rows", n)
	wantCents, err := writeCSV(src, n)
	if err != nil {
		return err
	}
	for _, t := range []string{"ref_rows", "rows"} {
		if _, err := b.db.Exec(ctx, "CREATE TABLE "+t+" "+csvTable); err != nil {
			return fmt.Errorf("create table %s: %w", t, err)
		}
	}

	// Reference: PostgreSQL's own COPY of the file.
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	start := time.Now()
	_, err = b.db.PgConn().CopyFrom(ctx, bufio.NewReaderSize(f, 1<<20), "COPY ref_rows FROM STDIN WITH (FORMAT csv, HEADER true)")
	f.Close()
	if err != nil {
		return fmt.Errorf("reference COPY: %w", err)
	}
	refRate := float64(n) / time.Since(start).Seconds()

	drop := filepath.Join(tmp, "files", benchTenant, "drop") // the tenant's file area
	if err := os.MkdirAll(drop, 0o755); err != nil {
		return err
	}
	spec, _ := json.Marshal(map[string]any{
		"name": "csv-load",
		"source": map[string]any{"connector": "file", "config": map[string]any{
			"dir": "drop", "pattern": "*.csv", "mode": "csv", "records_per_message": cfg.recordsPerMsg,
			"stable_for": "100ms", "rescan_interval": "500ms",
		}},
		"sinks": []any{map[string]any{"name": "db", "connector": "postgres", "config": map[string]any{
			"dsn_env": pgDSNEnv, "table": "rows", "mode": "insert", "batch_size": 5000,
		}}},
	})
	if _, err := setupSpec(ctx, b.proc.base, "bench-pg-admin-key-0123456789", "csv-load", spec); err != nil {
		return err
	}
	start = time.Now()
	if err := os.Rename(src, filepath.Join(drop, "rows.csv")); err != nil {
		return err
	}
	var got int64
	deadline := time.Now().Add(10 * time.Minute)
	for got < int64(n) {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("the table holds %d of %d rows after %v", got, n, time.Since(start).Round(time.Second))
		}
		time.Sleep(100 * time.Millisecond)
		if err := b.db.QueryRow(ctx, "SELECT count(*) FROM rows").Scan(&got); err != nil {
			return err
		}
	}
	took := time.Since(start)
	var cents int64
	if err := b.db.QueryRow(ctx, "SELECT (sum(amount)*100)::bigint FROM rows").Scan(&cents); err != nil {
		return err
	}
	rate := float64(n) / took.Seconds()
	fmt.Printf("VRSky CSV → PostgreSQL: %d rows (records_per_message %d) in %v: %s rows/s   target ≥ 200,000  %s\n",
		n, cfg.recordsPerMsg, took.Round(time.Millisecond), num(int64(rate)), mark(rate >= 200000))
	fmt.Printf("  reference: COPY FROM STDIN of the same file %s rows/s; VRSky is %.0f%% of it\n", num(int64(refRate)), 100*rate/refRate)
	fmt.Printf("  rows %d (want %d), amount checksum %d (want %d)  %s\n", got, n, cents, wantCents, mark(got == int64(n) && cents == wantCents))
	if got != int64(n) || cents != wantCents {
		return fmt.Errorf("the table does not hold exactly the file's rows")
	}
	return nil
}

// lagSink receives the CDC integration's JSON-array batches and records,
// per change, the lag from its commit to its arrival.
type lagSink struct {
	ln      *fasthttp.Server
	addr    string
	mu      sync.Mutex
	lags    []time.Duration
	ids     map[int64]bool
	dups    atomic.Int64
	last    atomic.Int64 // unix nanos of the latest arrival
	arrived atomic.Int64
}

func startLagSink() (*lagSink, error) {
	s := &lagSink{ids: map[int64]bool{}}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	s.addr = "127.0.0.1:" + strconv.Itoa(port)
	s.ln = &fasthttp.Server{Handler: s.handle, MaxRequestBodySize: 64 << 20}
	go func() { _ = s.ln.ListenAndServe(s.addr) }()
	return s, nil
}

func (s *lagSink) handle(ctx *fasthttp.RequestCtx) {
	now := time.Now()
	var changes []struct {
		CommitTime time.Time `json:"commit_time"`
		After      struct {
			ID int64 `json:"id"`
		} `json:"after"`
	}
	if err := json.Unmarshal(ctx.PostBody(), &changes); err != nil {
		ctx.Error(err.Error(), fasthttp.StatusBadRequest)
		return
	}
	s.mu.Lock()
	for _, c := range changes {
		if s.ids[c.After.ID] {
			s.dups.Add(1)
			continue
		}
		s.ids[c.After.ID] = true
		s.lags = append(s.lags, now.Sub(c.CommitTime))
	}
	s.mu.Unlock()
	s.arrived.Store(int64(len(s.ids)))
	s.last.Store(now.UnixNano())
	ctx.SetStatusCode(fasthttp.StatusNoContent)
}

func benchCDC(ctx context.Context, cfg *config, bin, tmp string) error {
	b, err := startPGBench(ctx, cfg, bin, tmp)
	if err != nil {
		return err
	}
	defer b.close()
	n := cfg.cdcChanges
	if _, err := b.db.Exec(ctx, "CREATE TABLE changes (id bigint PRIMARY KEY, note text NOT NULL, amount numeric(12,2) NOT NULL)"); err != nil {
		return err
	}
	sink, err := startLagSink()
	if err != nil {
		return err
	}
	defer sink.ln.Shutdown()
	spec, _ := json.Marshal(map[string]any{
		"name":   "cdc",
		"source": map[string]any{"connector": "postgres-cdc", "config": map[string]any{"dsn_env": pgDSNEnv, "tables": []string{"public.changes"}}},
		"sinks": []any{map[string]any{"name": "api", "connector": "http", "config": map[string]any{
			"url": "http://" + sink.addr + "/", "batch": map[string]any{"max_messages": 500, "max_wait": "20ms"},
		}}},
	})
	if _, err := setupSpec(ctx, b.proc.base, "bench-pg-admin-key-0123456789", "cdc", spec); err != nil {
		return err
	}
	time.Sleep(2 * time.Second) // the source creates its slot once it holds the lease

	perTx := 1000
	var tick time.Duration
	if cfg.cdcRate > 0 { // paced: transactions of 100 rows, spread evenly
		perTx = 100
		tick = time.Duration(float64(time.Second) * float64(perTx) / float64(cfg.cdcRate))
	}
	start := time.Now()
	for i := 0; i < n; i += perTx {
		if tick > 0 {
			time.Sleep(time.Until(start.Add(time.Duration(i/perTx) * tick)))
		}
		rows := make([][]any, 0, perTx)
		for j := i; j < min(i+perTx, n); j++ {
			rows = append(rows, []any{int64(j + 1), "change " + strconv.Itoa(j), fmt.Sprintf("%d.%02d", j%1000, j%100)})
		}
		if _, err := b.db.CopyFrom(ctx, pgx.Identifier{"changes"}, []string{"id", "note", "amount"}, pgx.CopyFromRows(rows)); err != nil {
			return fmt.Errorf("insert changes: %w", err)
		}
	}
	inserted := time.Since(start)
	deadline := time.Now().Add(10 * time.Minute)
	for sink.arrived.Load() < int64(n) {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("%d of %d changes arrived", sink.arrived.Load(), n)
		}
		time.Sleep(50 * time.Millisecond)
	}
	took := time.Unix(0, sink.last.Load()).Sub(start)
	sink.mu.Lock()
	lags := append([]time.Duration(nil), sink.lags...)
	sink.mu.Unlock()
	sort.Slice(lags, func(i, j int) bool { return lags[i] < lags[j] })
	p := func(q float64) time.Duration { return lags[min(len(lags)-1, int(q*float64(len(lags))))] }
	rate := float64(n) / took.Seconds()
	how := "as fast as PostgreSQL takes them (1,000 per transaction)"
	if cfg.cdcRate > 0 {
		how = fmt.Sprintf("paced at %d/s (100 per transaction)", cfg.cdcRate)
	}
	target := "   target ≥ 20,000  " + mark(rate >= 20000)
	if cfg.cdcRate > 0 { // the pacing sets the rate: the figure is the lag
		target = ""
	}
	fmt.Printf("VRSky PostgreSQL CDC → HTTP sink: %d changes inserted %s, delivered in %v: %s changes/s%s\n",
		n, how, took.Round(time.Millisecond), num(int64(rate)), target)
	fmt.Printf("  lag commit → sink: p50 %s, p99 %s, max %s   target p99 ≤ 1 s  %s\n", ms(p(0.5)), ms(p(0.99)), ms(lags[len(lags)-1]), mark(p(0.99) <= time.Second))
	fmt.Printf("  reference: PostgreSQL took the inserts at %s rows/s; duplicates at the sink %d\n", num(int64(float64(n)/inserted.Seconds())), sink.dups.Load())
	return nil
}

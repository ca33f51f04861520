// Command vrsky-bench is VRSky's end-to-end load driver (`make bench`).
//
// It starts `vrsky serve` as a subprocess on a temp data dir, creates a
// tenant and an integration (http-webhook → [jq → filter] → http sink)
// through the REST API, drives the webhook with concurrent keep-alive
// clients posting unique 200-byte JSON orders, and receives the deliveries on
// an HTTP sink of its own. It reports the ingest rate and latency, the
// delivered rate, the end-to-end latency, and lost and duplicated messages,
// next to two references measured in the same run on the same machine: the
// raw JetStream publish+consume rate of an embedded nats-server configured
// like VRSky's, and a plain HTTP hop (the same clients against a trivial
// net/http handler). It also reports the CPU each process spent per
// message (vrsky serve's over the window and drain; the references' per
// message they moved), which the machine's other load moves far less than
// rates. The targets come from DESIGN.md ("Benchmarks").
//
// Usage:
//
//	go run ./cmd/vrsky-bench [-duration 30s] [-clients 64] [-rate N] [-steps] [-sink-batch N] [-nats-sync interval|always]
//	    [-vrsky bin/vrsky] [-serve-flag=--flag=value] [-json] [-skip-reference] [-v]
//	go run ./cmd/vrsky-bench -accounts [-account-rounds 3] [-account-tenants 10] [-ref-duration 5s]
//	go run ./cmd/vrsky-bench -nodes 3 [-duration 20s] [-clients 64]
//
// -accounts measures, instead, what an account per tenant costs per
// message: the raw JetStream reference's work through the platform
// account's connection and through tenant accounts' (accounts.go).
//
// -nodes measures scale-out: the delivered rate with 1, 2, … N vrsky serve
// nodes on one 3-node NATS cluster, and its ratio to one node (nodes.go).
//
// The figures are not pass/fail; the exit status is 1 when the run failed or
// lost an accepted message, 2 when the integration could not be created
// (for example -steps without the jq and filter connectors).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// config holds the flags.
type config struct {
	duration       time.Duration
	warmup         time.Duration
	drain          time.Duration
	refDuration    time.Duration
	clients        int
	rate           float64
	steps          bool
	sinkBatch      int
	ingestBatch    int
	rounds         int
	natsSync       string
	vrsky          string
	jsonOut        bool
	skipReference  bool
	keep           bool
	verbose        bool
	serveFlags     multiFlag
	payloadMiB     int
	csvRows        int
	recordsPerMsg  int
	cdcChanges     int
	cdcRate        int
	accounts       bool
	accountRounds  int
	accountTenants int
	nodes          int
}

// multiFlag is a repeatable string flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, " ") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func parseFlags(args []string) (*config, error) {
	c := &config{}
	fs := flag.NewFlagSet("vrsky-bench", flag.ContinueOnError)
	fs.DurationVar(&c.duration, "duration", 30*time.Second, "measured load window")
	fs.DurationVar(&c.warmup, "warmup", 3*time.Second, "load before the measured window (its messages count for lost, not for rates)")
	fs.DurationVar(&c.drain, "drain", 45*time.Second, "how long to wait after the window for the sink to receive every accepted message")
	fs.DurationVar(&c.refDuration, "ref-duration", 5*time.Second, "length of each reference measurement")
	fs.IntVar(&c.clients, "clients", 64, "concurrent keep-alive load clients")
	fs.Float64Var(&c.rate, "rate", 0, "cap the offered load at this many requests/s in all (0: as fast as the clients go); shows whether delivery keeps up at a given rate")
	fs.IntVar(&c.sinkBatch, "sink-batch", 0, "give the integration's http sink batch.max_messages N (JSON arrays of up to N payloads a request); the clients then name each message by an Idempotency-Key the bench sink finds again in the array's order_id fields")
	fs.IntVar(&c.ingestBatch, "ingest-batch", 0, "give the integration's webhook batch {format: ndjson, max_messages: N} and have each client request carry N orders, one per line; rates count messages, the ingest latency is the request's")
	fs.IntVar(&c.rounds, "rounds", 1, "run the load test (and its references) this many times, each on a fresh vrsky serve, and end with the medians")
	fs.BoolVar(&c.steps, "steps", false, "add the Wasm jq and filter steps of DESIGN.md to the integration (with -payload-mib: the csv converter, reading the payload by reference)")
	fs.StringVar(&c.natsSync, "nats-sync", "interval", "vrsky serve --nats-sync (interval or always); the JetStream reference uses the same")
	fs.StringVar(&c.vrsky, "vrsky", "bin/vrsky", "the vrsky binary (built with go build into a temp dir when the default is missing)")
	fs.BoolVar(&c.jsonOut, "json", false, "also print one machine-readable JSON line")
	fs.BoolVar(&c.skipReference, "skip-reference", false, "skip the JetStream and HTTP hop references")
	fs.BoolVar(&c.keep, "keep", false, "keep the temp dir (vrsky's data and log)")
	fs.Var(&c.serveFlags, "serve-flag", "extra flag for vrsky serve, e.g. -serve-flag=--tracking=false (repeatable)")
	fs.BoolVar(&c.verbose, "v", false, "print a per-second timeline and the server's counters")
	fs.IntVar(&c.payloadMiB, "payload-mib", 0, "instead of the load test, send one payload of this many MiB end to end and report vrsky serve's peak memory growth")
	fs.IntVar(&c.csvRows, "csv-rows", 0, "instead of the load test, drop a CSV file of this many rows in a watched folder and measure rows/s into PostgreSQL (file source → postgres sink)")
	fs.IntVar(&c.recordsPerMsg, "records-per-message", 1000, "with -csv-rows: the file source's records_per_message")
	fs.IntVar(&c.cdcChanges, "cdc-changes", 0, "instead of the load test, insert this many rows and measure PostgreSQL CDC → HTTP sink changes/s and commit-to-sink lag")
	fs.IntVar(&c.cdcRate, "cdc-rate", 0, "with -cdc-changes: insert at this many rows/s (0: as fast as PostgreSQL takes them), to see the lag at a sustained rate")
	fs.BoolVar(&c.accounts, "accounts", false, "instead of the load test, measure raw JetStream publish+consume on one embedded operator-mode server through the platform account's connection vs tenant accounts' (each measurement -ref-duration long)")
	fs.IntVar(&c.accountRounds, "account-rounds", 3, "with -accounts: alternating rounds of each way (medians are reported)")
	fs.IntVar(&c.accountTenants, "account-tenants", 10, "with -accounts: tenants publishing at once in the many-tenants shape")
	fs.IntVar(&c.nodes, "nodes", 0, "instead of the load test, measure the delivered rate with 1, 2, … this many vrsky serve nodes on one 3-node NATS cluster (each round -duration long)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	switch {
	case fs.NArg() > 0:
		return nil, fmt.Errorf("unexpected arguments: %v", fs.Args())
	case c.duration <= 0 || c.warmup < 0 || c.drain <= 0 || c.refDuration <= 0:
		return nil, errors.New("-duration, -drain and -ref-duration must be positive, -warmup not negative")
	case c.rate < 0:
		return nil, errors.New("-rate must not be negative")
	case c.payloadMiB < 0 || c.payloadMiB > 64:
		return nil, errors.New("-payload-mib must be between 1 and 64 (the webhook's default limit)")
	case c.csvRows < 0 || c.cdcChanges < 0 || c.recordsPerMsg < 1 || c.recordsPerMsg > 10000:
		return nil, errors.New("-csv-rows and -cdc-changes must not be negative, -records-per-message between 1 and 10000")
	case c.csvRows > 0 && c.cdcChanges > 0:
		return nil, errors.New("-csv-rows and -cdc-changes are separate runs")
	case c.accountRounds < 1 || c.accountTenants < 1:
		return nil, errors.New("-account-rounds and -account-tenants must be at least 1")
	case c.accounts && (c.csvRows > 0 || c.cdcChanges > 0 || c.payloadMiB > 0):
		return nil, errors.New("-accounts is a separate run")
	case c.nodes < 0 || c.nodes > 5:
		return nil, errors.New("-nodes must be between 1 and 5")
	case c.nodes > 0 && (c.accounts || c.csvRows > 0 || c.cdcChanges > 0 || c.payloadMiB > 0):
		return nil, errors.New("-nodes is a separate run")
	case c.sinkBatch < 0 || c.sinkBatch > 10000:
		return nil, errors.New("-sink-batch must be between 0 (no batching) and 10000")
	case c.ingestBatch < 0 || c.ingestBatch > 1000:
		return nil, errors.New("-ingest-batch must be between 0 (one message a request) and 1000 (the webhook's most)")
	case c.ingestBatch > 0 && (c.csvRows > 0 || c.cdcChanges > 0 || c.payloadMiB > 0 || c.accounts):
		return nil, errors.New("-ingest-batch applies to the webhook load test and -nodes")
	case c.rounds < 1 || c.rounds > 9:
		return nil, errors.New("-rounds must be between 1 and 9")
	case c.clients < 1:
		return nil, errors.New("-clients must be at least 1")
	case c.natsSync != "interval" && c.natsSync != "always":
		return nil, fmt.Errorf("-nats-sync %q: want interval or always", c.natsSync)
	}
	return c, nil
}

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	cfg, err := parseFlags(args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(os.Stderr, "vrsky-bench:", err)
		return 2
	}
	sigCtx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	tmp, err := os.MkdirTemp("", "vrsky-bench-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "vrsky-bench:", err)
		return 1
	}
	if cfg.keep {
		fmt.Fprintln(os.Stderr, "vrsky-bench: keeping", tmp)
	} else {
		defer os.RemoveAll(tmp)
	}

	if cfg.accounts {
		// Needs no vrsky binary: the server runs in this process.
		budget := time.Duration(4*cfg.accountRounds)*(cfg.refDuration+15*time.Second) + time.Minute
		ctx, cancel := context.WithTimeout(sigCtx, budget)
		defer cancel()
		logf("vrsky-bench: accounts: %d rounds of %v, %d tenants, nats-sync=%s, load avg %s",
			cfg.accountRounds, cfg.refDuration, cfg.accountTenants, cfg.natsSync, loadAvg())
		if err := benchAccounts(ctx, cfg, tmp); err != nil {
			fmt.Fprintln(os.Stderr, "vrsky-bench:", err)
			return 1
		}
		return 0
	}
	bin, err := resolveVrsky(sigCtx, cfg.vrsky, tmp)
	if err != nil {
		fmt.Fprintln(os.Stderr, "vrsky-bench:", err)
		return 1
	}
	if cfg.nodes > 0 {
		ctx, cancel := context.WithTimeout(sigCtx, time.Duration(cfg.nodes)*(cfg.warmup+cfg.duration+cfg.drain+2*time.Minute))
		defer cancel()
		if err := benchNodes(ctx, cfg, bin, tmp); err != nil {
			fmt.Fprintln(os.Stderr, "vrsky-bench:", err)
			return 1
		}
		return 0
	}
	// Nothing may hang: a watchdog bounds the run (the build above aside).
	budget := cfg.warmup + cfg.duration + cfg.drain + 2*cfg.refDuration + 45*time.Second
	ctx, cancel := context.WithTimeout(sigCtx, budget)
	defer cancel()
	rep := &report{cfg: cfg, bin: describeBinary(ctx, bin), cores: numCPU(), loadBefore: loadAvg()}
	logf("vrsky-bench: %s, %d clients, %v (+%v warm-up), steps=%v, nats-sync=%s, serve flags %q, load avg %s",
		rep.bin, cfg.clients, cfg.duration, cfg.warmup, cfg.steps, cfg.natsSync, cfg.serveFlags, rep.loadBefore)

	if cfg.rounds > 1 && cfg.csvRows == 0 && cfg.cdcChanges == 0 && cfg.payloadMiB == 0 {
		var reps []*report
		code := 0
		for i := range cfg.rounds {
			logf("vrsky-bench: round %d of %d", i+1, cfg.rounds)
			dir := filepath.Join(tmp, fmt.Sprintf("round%d", i+1))
			if err := os.MkdirAll(dir, 0o700); err != nil {
				fmt.Fprintln(os.Stderr, "vrsky-bench:", err)
				return 1
			}
			rctx, rcancel := context.WithTimeout(sigCtx, budget)
			r := &report{cfg: cfg, bin: rep.bin, cores: rep.cores, loadBefore: loadAvg()}
			code = max(code, loadRound(rctx, cfg, bin, dir, r))
			rcancel()
			reps = append(reps, r)
			if sigCtx.Err() != nil {
				break
			}
		}
		printMedians(os.Stdout, cfg, reps)
		return code
	}

	if cfg.csvRows > 0 || cfg.cdcChanges > 0 {
		ctx, cancel := context.WithTimeout(sigCtx, 15*time.Minute)
		defer cancel()
		bench := benchCSV
		if cfg.cdcChanges > 0 {
			bench = benchCDC
		}
		if err := bench(ctx, cfg, bin, tmp); err != nil {
			fmt.Fprintln(os.Stderr, "vrsky-bench:", err)
			return 1
		}
		return 0
	}
	if cfg.payloadMiB > 0 {
		if err := benchPayload(ctx, cfg, bin, tmp); err != nil {
			fmt.Fprintln(os.Stderr, "vrsky-bench:", err)
			return 1
		}
		return 0
	}
	return loadRound(ctx, cfg, bin, tmp, rep)
}

// loadRound runs the load test and its references once, with data under
// tmp, prints rep and returns the exit code.
func loadRound(ctx context.Context, cfg *config, bin, tmp string, rep *report) int {
	code := 0
	if err := benchVrsky(ctx, cfg, bin, tmp, rep); err != nil {
		fmt.Fprintln(os.Stderr, "vrsky-bench:", err)
		if errors.Is(err, errUnknownConnector) {
			fmt.Fprintln(os.Stderr, "vrsky-bench: the catalogue of this vrsky build lacks a connector the bench needs"+
				" (-steps needs the Wasm jq and filter connectors; build them with `make build`), so nothing was measured")
			return 2
		}
		if rep.vrsky == nil {
			return 1
		}
		code = 1 // report what was measured anyway
	}
	rep.loadAfter = loadAvg()

	if !cfg.skipReference && ctx.Err() == nil {
		logf("vrsky-bench: reference: raw JetStream publish+consume (%v)", cfg.refDuration)
		js, err := jsReference(ctx, tmp, cfg.natsSync == "always", cfg.refDuration, 10*time.Second, 4096)
		if err != nil {
			fmt.Fprintln(os.Stderr, "vrsky-bench:", err)
			code = 1
		}
		rep.js = js
		logf("vrsky-bench: reference: plain HTTP hop (%v)", cfg.refDuration)
		var seq atomic.Int64
		cpu0 := procCPU(os.Getpid())
		hop, err := httpHopReference(ctx, newClock(), cfg.clients, cfg.refDuration, &seq)
		if err != nil {
			fmt.Fprintln(os.Stderr, "vrsky-bench:", err)
			code = 1
		} else if hop.accepted > 0 {
			hop.cpuPerReq = (procCPU(os.Getpid()) - cpu0) / float64(hop.accepted)
		}
		rep.hop = hop
	}
	if ctx.Err() != nil {
		fmt.Fprintf(os.Stderr, "vrsky-bench: stopped early: %v\n", context.Cause(ctx))
		code = 1
	}
	rep.print(os.Stdout)
	if cfg.jsonOut {
		rep.printJSON(os.Stdout)
	}
	if rep.vrsky != nil && (rep.vrsky.Lost > 0 || rep.vrsky.Interrupted) {
		code = 1
	}
	return code
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
}

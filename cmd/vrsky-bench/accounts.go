package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/vrsky/vrsky/platform/natsx"
	"github.com/vrsky/vrsky/platform/store"
	"github.com/vrsky/vrsky/platform/tenancy"
)

// The -accounts mode measures what an account per tenant (issue 13) costs
// per message: the JetStream reference's work (async publish with acks into
// a work-queue stream, a pull consumer acking) on one embedded
// operator-mode server started as vrsky serve starts it (natsx.Connect
// with a DataDir), through the platform account's connection (where every
// tenant's streams lived before) and through a tenant account's
// connection (tenancy.Manager.Conn), alternating, in rounds:
//
//   - one stream: one connection publishing and consuming, as the engine
//     uses a tenant's one connection;
//   - N tenants: N streams published and consumed concurrently, through
//     one platform connection, or each through its tenant's own
//     connection (the realistic shape).
//
// Each shape's two ways swap order every round, so neither always runs
// on a warmer server.

// acctMeasure is one measurement: one way, one shape, one round.
type acctMeasure struct {
	res      jsRefResult // summed over the streams; rates over the common time base
	cpuBench float64     // CPU seconds of this process (server and clients)
	cpuOther float64     // CPU seconds of the rest of the machine
}

func (m acctMeasure) cores() float64 { return m.cpuBench / max(m.res.Elapsed.Seconds(), 1e-9) }
func (m acctMeasure) usPerMsg() float64 {
	return 1e6 * m.cpuBench / float64(max(m.res.Consumed, 1))
}

// acctShape is one shape's measurements: [way][round], way 0 shared, 1 tenant.
type acctShape struct {
	name    string
	streams int
	m       [2][]acctMeasure
}

var acctWays = [2]string{"shared account", "tenant account"}

func benchAccounts(ctx context.Context, cfg *config, tmp string) error {
	conn, err := natsx.Connect(ctx, natsx.Options{
		DataDir: filepath.Join(tmp, "accounts"), SyncAlways: cfg.natsSync == "always", Name: "vrsky-bench-accounts",
	})
	if err != nil {
		return err
	}
	defer conn.Close()
	st, err := store.NewNATS(ctx, conn.JS, conn.Replicas)
	if err != nil {
		return err
	}
	mgr := tenancy.New(conn, st, nil)
	defer mgr.Close()
	n := cfg.accountTenants
	tenants := make([]string, n)
	tconns := make([]*nats.Conn, n)
	for i := range tenants {
		tenants[i] = fmt.Sprintf("bench%02d", i+1)
		if _, err := st.CreateTenant(ctx, store.Tenant{Name: tenants[i]}); err != nil {
			return fmt.Errorf("tenant %s: %w", tenants[i], err)
		}
		c, err := mgr.Conn(ctx, tenants[i])
		if err != nil {
			return err
		}
		tconns[i] = c.NC
	}
	platform := make([]*nats.Conn, n)
	for i := range platform {
		platform[i] = conn.NC // before: every tenant on the platform's one connection
	}
	conns := [2][]*nats.Conn{platform, tconns}

	d, drain := cfg.refDuration, 10*time.Second
	const window = 4096 // the reference's; N streams share it
	logf("vrsky-bench: accounts: warm-up (%v, not counted)", min(d, time.Second))
	if _, err := acctRun(ctx, conns[0][:1], tenants[:1], min(d, time.Second), drain, window); err != nil {
		return err
	}
	shapes := []*acctShape{{name: "one stream", streams: 1}}
	if n > 1 {
		shapes = append(shapes, &acctShape{name: fmt.Sprintf("%d tenants", n), streams: n})
	}
	for r := range cfg.accountRounds {
		for _, sh := range shapes {
			for k := range 2 {
				way := (r + k) % 2 // shared first in even rounds, tenant first in odd ones
				logf("vrsky-bench: accounts: round %d/%d, %s, %s (%v)", r+1, cfg.accountRounds, sh.name, acctWays[way], d)
				m, err := acctRun(ctx, conns[way][:sh.streams], tenants[:sh.streams], d, drain, max(window/sh.streams, 64))
				if err != nil {
					return err
				}
				sh.m[way] = append(sh.m[way], m)
			}
		}
	}
	printAccounts(os.Stdout, cfg, shapes)
	if cfg.jsonOut {
		printAccountsJSON(os.Stdout, cfg, shapes)
	}
	return nil
}

// acctRun runs the reference's work on len(ncs) streams at once, stream i
// through ncs[i] on tenant i's subjects (each with its own publish window),
// and sums the results: rates are all messages over the time from the
// common start to the last ack anywhere.
func acctRun(ctx context.Context, ncs []*nats.Conn, tenants []string, d, drain time.Duration, window int) (acctMeasure, error) {
	pcs := make([]*pubConsumer, len(ncs))
	for i, nc := range ncs {
		t := tenants[i]
		pc, err := newPubConsumer(ctx, nc, nc, "VRSKY_"+strings.ToUpper(t)+"_BENCH", "vrsky."+t+".bench.in", window)
		if err != nil {
			return acctMeasure{}, fmt.Errorf("accounts: %s: %w", t, err)
		}
		defer pc.stop()
		pcs[i] = pc
	}
	results := make([]*jsRefResult, len(pcs))
	errs := make([]error, len(pcs))
	cpuB0, cpuM0 := procCPU(os.Getpid()), machineCPU()
	clk := newClock()
	var wg sync.WaitGroup
	for i, pc := range pcs {
		wg.Go(func() { results[i], errs[i] = pc.run(ctx, clk, d, drain) })
	}
	wg.Wait()
	var m acctMeasure
	m.cpuBench = procCPU(os.Getpid()) - cpuB0
	m.cpuOther = max(machineCPU()-cpuM0-m.cpuBench, 0)
	var pubEnd time.Duration
	for i, r := range results {
		if errs[i] != nil {
			return m, fmt.Errorf("accounts: %s: %w", tenants[i], errs[i])
		}
		m.res.Published += r.Published
		m.res.Consumed += r.Consumed
		m.res.PubErrors += r.PubErrors
		m.res.Elapsed = max(m.res.Elapsed, r.Elapsed)
		if r.PubRate > 0 {
			pubEnd = max(pubEnd, time.Duration(float64(time.Second)*float64(r.Published)/r.PubRate))
		}
		if m.res.ErrSample == "" {
			m.res.ErrSample = r.ErrSample
		}
	}
	if pubEnd > 0 {
		m.res.PubRate = float64(m.res.Published) / pubEnd.Seconds()
	}
	if m.res.Elapsed > 0 {
		m.res.ConsumeRate = float64(m.res.Consumed) / m.res.Elapsed.Seconds()
	}
	return m, nil
}

// median of the values f takes on ms.
func median(ms []acctMeasure, f func(acctMeasure) float64) float64 {
	v := make([]float64, len(ms))
	for i, m := range ms {
		v[i] = f(m)
	}
	return medianOf(v)
}

func rate(m acctMeasure) float64 { return m.res.ConsumeRate }

func printAccounts(w io.Writer, cfg *config, shapes []*acctShape) {
	fmt.Fprintf(w, "\nVRSky accounts bench: raw JetStream publish+consume, platform account vs tenant accounts\n")
	fmt.Fprintf(w, "  one embedded operator-mode nats-server (natsx.Connect, as vrsky serve), 200-byte messages, nats-sync %s\n", cfg.natsSync)
	fmt.Fprintf(w, "  %d rounds of %v per way and shape, alternating (order swapped every round); figures are consumed+acked msg/s\n", cfg.accountRounds, cfg.refDuration)
	fmt.Fprintf(w, "  machine: %d cores, load average %s\n\n", numCPU(), loadAvg())
	for _, sh := range shapes {
		fmt.Fprintf(w, "  %s (%d stream(s), each with its own publisher and pull consumer):\n", sh.name, sh.streams)
		for way := range 2 {
			var runs []string
			for _, m := range sh.m[way] {
				runs = append(runs, fmt.Sprintf("%s (%.1f µs)", num(int64(m.res.ConsumeRate)), m.usPerMsg()))
			}
			ms := sh.m[way]
			fmt.Fprintf(w, "    %-15s median %s msg/s, %.1f µs CPU/msg, %.2f cores; other processes %.2f cores   rounds %s\n",
				acctWays[way], num(int64(median(ms, rate))), median(ms, acctMeasure.usPerMsg), median(ms, acctMeasure.cores),
				median(ms, func(m acctMeasure) float64 { return m.cpuOther / max(m.res.Elapsed.Seconds(), 1e-9) }), strings.Join(runs, ", "))
			for _, m := range ms {
				if m.res.PubErrors > 0 || m.res.Consumed != m.res.Published {
					fmt.Fprintf(w, "    %-15s   a round: %s published, %s consumed, %d publish errors %s\n", "",
						num(m.res.Published), num(m.res.Consumed), m.res.PubErrors, m.res.ErrSample)
				}
			}
		}
		fmt.Fprintf(w, "    %-15s tenant/shared msg/s %.3f (medians; per round %s), CPU per message %.3f (per round %s)\n\n", "ratio",
			ratio(sh, rate), ratios(sh, rate), ratio(sh, acctMeasure.usPerMsg), ratios(sh, acctMeasure.usPerMsg))
	}
	fmt.Fprintf(w, "  (µs CPU/msg: this process's CPU, nats-server and clients together, per message consumed; the vrsky-bench process\n")
	fmt.Fprintf(w, "  is the server here, so on a busy machine it is the steadier figure; adjacent rounds' ratios share the machine's state)\n")
	for _, sh := range shapes {
		fmt.Fprintf(w, "\naccounts %s  shared %s msg/s  tenant %s msg/s  tenant/shared %.3f  CPU/msg tenant/shared %.3f", sh.name,
			num(int64(median(sh.m[0], rate))), num(int64(median(sh.m[1], rate))), ratio(sh, rate), ratio(sh, acctMeasure.usPerMsg))
	}
	fmt.Fprintln(w)
}

// ratio is tenant over shared of f's medians.
func ratio(sh *acctShape, f func(acctMeasure) float64) float64 {
	return median(sh.m[1], f) / max(median(sh.m[0], f), 1e-9)
}

// ratios lists tenant over shared of f, round by round.
func ratios(sh *acctShape, f func(acctMeasure) float64) string {
	var q []string
	for r := range min(len(sh.m[0]), len(sh.m[1])) {
		q = append(q, fmt.Sprintf("%.3f", f(sh.m[1][r])/max(f(sh.m[0][r]), 1e-9)))
	}
	return strings.Join(q, ", ")
}

func printAccountsJSON(w io.Writer, cfg *config, shapes []*acctShape) {
	type shapeJSON struct {
		Shape        string    `json:"shape"`
		Streams      int       `json:"streams"`
		SharedRates  []float64 `json:"shared_rates"`
		TenantRates  []float64 `json:"tenant_rates"`
		SharedMedian float64   `json:"shared_median"`
		TenantMedian float64   `json:"tenant_median"`
		Ratio        float64   `json:"tenant_over_shared"`
		SharedUsMsg  float64   `json:"shared_cpu_us_per_msg"`
		TenantUsMsg  float64   `json:"tenant_cpu_us_per_msg"`
	}
	out := struct {
		Bench     string      `json:"bench"`
		Rounds    int         `json:"rounds"`
		DurationS float64     `json:"duration_s"`
		NATSSync  string      `json:"nats_sync"`
		Cores     int         `json:"cores"`
		Shapes    []shapeJSON `json:"shapes"`
	}{Bench: "accounts", Rounds: cfg.accountRounds, DurationS: cfg.refDuration.Seconds(), NATSSync: cfg.natsSync, Cores: numCPU()}
	for _, sh := range shapes {
		j := shapeJSON{Shape: sh.name, Streams: sh.streams,
			SharedMedian: median(sh.m[0], rate), TenantMedian: median(sh.m[1], rate),
			SharedUsMsg: median(sh.m[0], acctMeasure.usPerMsg), TenantUsMsg: median(sh.m[1], acctMeasure.usPerMsg)}
		j.Ratio = j.TenantMedian / max(j.SharedMedian, 1e-9)
		for _, m := range sh.m[0] {
			j.SharedRates = append(j.SharedRates, m.res.ConsumeRate)
		}
		for _, m := range sh.m[1] {
			j.TenantRates = append(j.TenantRates, m.res.ConsumeRate)
		}
		out.Shapes = append(out.Shapes, j)
	}
	b, _ := json.Marshal(out)
	fmt.Fprintf(w, "%s\n", b)
}

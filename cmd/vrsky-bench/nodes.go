package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/vrsky/vrsky/platform/natsx/natsxtest"
)

// The -nodes mode measures scale-out: the delivered rate of the bench's
// integration with 1, 2, … -nodes `vrsky serve` nodes on one 3-node NATS
// cluster (started in this process, in operator mode, as production runs
// it) and its NATS KV control plane, the load clients spread over the
// nodes' webhooks. Each round has its own tenant and a fresh sink; the
// previous round's nodes are stopped first. The rates are for this
// machine: the nodes, the NATS servers, the clients and the sink share
// its cores, so the ratio to one node says how much a node adds here,
// and the CPU per message (the nodes' summed) what a message costs.

// nodesRound is one round's measurement.
type nodesRound struct {
	nodes int
	res   *vrskyResult
	// cpuNodes is the CPU seconds of every node together, from the
	// window's start until the sink had its messages.
	cpuNodes float64
	// cpuBench is this process's: load clients, sink and NATS servers.
	cpuBench float64
	// shares are the messages each node's sink delivered in the round.
	shares []uint64
}

func benchNodes(ctx context.Context, cfg *config, bin, tmp string) error {
	cluster, err := natsxtest.NewCluster(filepath.Join(tmp, "nats"), 3)
	if err != nil {
		return fmt.Errorf("NATS cluster: %w", err)
	}
	defer cluster.Shutdown()
	keyBytes := make([]byte, 16)
	_, _ = rand.Read(keyBytes)
	adminKey := "bench-" + hex.EncodeToString(keyBytes)
	var rounds []nodesRound
	for k := 1; k <= cfg.nodes; k++ {
		logf("vrsky-bench: nodes: %d of %d on the 3-node cluster (%v + %v warm-up), load avg %s", k, cfg.nodes, cfg.duration, cfg.warmup, loadAvg())
		r, err := nodesRun(ctx, cfg, bin, tmp, cluster, adminKey, k)
		if err != nil {
			return fmt.Errorf("%d nodes: %w", k, err)
		}
		rounds = append(rounds, r)
	}
	printNodes(os.Stdout, cfg, rounds)
	return nil
}

// nodesRun starts k nodes, drives them and stops them.
func nodesRun(ctx context.Context, cfg *config, bin, tmp string, cluster *natsxtest.Cluster, adminKey string, k int) (r nodesRound, err error) {
	r.nodes = k
	clk := newClock()
	snk, err := startSink(clk)
	if err != nil {
		return r, err
	}
	defer snk.Close()
	dir := filepath.Join(tmp, fmt.Sprintf("nodes%d", k))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return r, err
	}
	procs := make([]*vrskyProc, 0, k)
	defer func() {
		for _, p := range procs {
			if serr := p.stop(15 * time.Second); serr != nil && err == nil {
				err = serr
			}
			if err != nil {
				fmt.Fprintf(os.Stderr, "vrsky-bench: last lines of %s:\n%s\n", p.logPath, p.tail(20))
			}
		}
	}()
	extra := append([]string{"--nats-url", cluster.URL(), "--nats-keys", cluster.KeysFile}, cfg.serveFlags...)
	for i := range k {
		p, err := startVrsky(bin, filepath.Join(dir, fmt.Sprintf("node%d", i)), filepath.Join(dir, fmt.Sprintf("node%d.log", i)), adminKey, cfg.natsSync, extra)
		if err != nil {
			return r, err
		}
		procs = append(procs, p)
	}
	for _, p := range procs {
		if err := p.waitReady(ctx, 60*time.Second); err != nil {
			return r, err
		}
	}
	tenant := fmt.Sprintf("nodes%d", k)
	tc, err := setupTenantSpec(ctx, procs[0].base, adminKey, tenant, benchIntegration, integrationSpec(snk.URL(), cfg.steps, cfg.sinkBatch, cfg.ingestBatch))
	if err != nil {
		return r, err
	}
	defer func() {
		_ = tc.do(context.WithoutCancel(ctx), http.MethodPost, "/api/v1/integrations/"+benchIntegration+"/stop", "", nil, nil)
	}()
	// The other nodes start it at their next reconcile.
	clients := make([]*apiClient, k)
	target := loadTarget{clients: cfg.clients, timeout: 10 * time.Second, wantID: true, rate: cfg.rate, namedIDs: cfg.sinkBatch > 0, batch: cfg.ingestBatch}
	for i, p := range procs {
		clients[i] = &apiClient{base: p.base, key: tc.key, hc: tc.hc}
		target.urls = append(target.urls, p.base+"/hooks/"+tenant+"/"+benchHookPath)
		if err := waitRunning(ctx, clients[i], 60*time.Second); err != nil {
			return r, fmt.Errorf("node %d: %w", i, err)
		}
	}
	target.url = target.urls[0]
	delivered := func() []uint64 {
		out := make([]uint64, k)
		for i, c := range clients {
			if st, err := getStatus(ctx, c); err == nil {
				for _, s := range st.Status.Sinks {
					out[i] += s.Delivered
				}
			}
		}
		return out
	}

	var seq atomic.Int64
	res := &vrskyResult{}
	if cfg.warmup > 0 {
		if res.Warmup, err = runLoad(ctx, clk, target, cfg.warmup, &seq); err != nil {
			return r, err
		}
		waitSink(ctx, snk, procs[0], int64(len(res.Warmup.accepts)), 30*time.Second)
	}
	before := delivered()
	cpu := func() (nodes float64) {
		for _, p := range procs {
			nodes += procCPU(p.cmd.Process.Pid)
		}
		return nodes
	}
	cpuN0, cpuB0 := cpu(), procCPU(os.Getpid())
	if res.Load, err = runLoad(ctx, clk, target, cfg.duration, &seq); err != nil {
		return r, err
	}
	total := int64(len(res.Load.accepts))
	if res.Warmup != nil {
		total += int64(len(res.Warmup.accepts))
	}
	res.StillArriving = waitSink(ctx, snk, procs[0], total, cfg.drain)
	r.cpuNodes, r.cpuBench = cpu()-cpuN0, procCPU(os.Getpid())-cpuB0
	res.WindowAccepted = int64(len(res.Load.accepts))
	analyse(res, snk, clk)
	for i, n := range delivered() {
		r.shares = append(r.shares, n-before[i])
	}
	r.res = res
	if ctx.Err() != nil {
		return r, fmt.Errorf("interrupted: %w", context.Cause(ctx))
	}
	if res.Lost > 0 {
		return r, fmt.Errorf("%d accepted messages were not delivered (e.g. %v)", res.Lost, res.LostSample)
	}
	return r, nil
}

// waitRunning waits until the node c calls reports the integration running.
func waitRunning(ctx context.Context, c *apiClient, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		st, err := getStatus(ctx, c)
		if err == nil && st.Status.State == "running" {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			if err == nil {
				err = errors.New(st.String())
			}
			return fmt.Errorf("integration not running after %v: %w", timeout, err)
		}
		pause(ctx, 100*time.Millisecond)
	}
}

func printNodes(w io.Writer, cfg *config, rounds []nodesRound) {
	fmt.Fprintf(w, "\nScale-out: 1 to %d vrsky serve nodes on one 3-node NATS cluster (R3 streams), %d clients spread over the nodes, %v each, %d cores\n",
		cfg.nodes, cfg.clients, cfg.duration, numCPU())
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "nodes\taccepted/s\tdelivered/s\tvs 1 node\tnodes' CPU µs/msg\tbench+NATS CPU µs/msg\tlost\tduplicates\tdelivered per node\t")
	base := 0.0
	for _, r := range rounds {
		if base == 0 {
			base = r.res.DeliveredRate
		}
		ratio := 0.0
		if base > 0 {
			ratio = r.res.DeliveredRate / base
		}
		n := float64(max(r.res.WindowAccepted, 1))
		fmt.Fprintf(tw, "%d\t%.0f\t%.0f\t%.2f×\t%.0f\t%.0f\t%d\t%d\t%v\t\n", r.nodes, r.res.Load.Rate(), r.res.DeliveredRate, ratio,
			1e6*r.cpuNodes/n, 1e6*r.cpuBench/n, r.res.Lost, r.res.Duplicates, r.shares)
	}
	_ = tw.Flush()
	fmt.Fprintln(w, "(every process shares this machine's cores: on a small machine the ratio shows what a node adds here, not what a node on its own machine would)")
}

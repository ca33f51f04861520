package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"
)

// vrskyResult is what the VRSky run measured.
type vrskyResult struct {
	Warmup, Load *loadResult
	// Delivered counts the window's accepted messages that reached the sink;
	// DeliveredRate divides it by the time from the window's first accept to
	// the last of those deliveries.
	Delivered     int64
	DeliveredRate float64
	DeliverySpan  time.Duration
	// InWindowRate is deliveries received during the window over its length.
	InWindowRate float64
	// BacklogAtEnd is accepted minus delivered when the window closed.
	BacklogAtEnd int64
	// DrainTime is how long the sink took to catch up after the window.
	DrainTime time.Duration
	E2E       hist
	// Lost counts accepted messages (warm-up included) never delivered;
	// Duplicates counts repeated deliveries of an id; Unknown counts ids
	// delivered that no client saw accepted (a request that timed out after
	// the message became durable, say).
	Lost, Duplicates, Unknown, MissingID int64
	// Interrupted tells that the run stopped before the sink could catch
	// up, so Lost counts messages not delivered yet rather than lost.
	Interrupted bool
	// StillArriving tells that the drain bound passed while deliveries were
	// still arriving: Lost may then count messages merely late.
	StillArriving bool
	LostSample    []string
	// Timeline is accepted and delivered per second of the window and drain.
	Timeline [][2]int64
	// Samples are the integration's counters, polled each second of the
	// window and drain (with -v).
	Samples []statusSample
	// CPU seconds used during the window by vrsky serve and by the bench
	// process (load clients + sink), and by the whole machine.
	CPUVrsky, CPUBench, CPUMachine float64
	// CPU seconds of vrsky serve and of the bench from the window's start
	// until the sink had every message accepted in it (or the drain gave
	// up), and that window's accepted messages: their ratio is the CPU a
	// message costs, which the machine's other load barely moves.
	CPUVrskyDrained, CPUBenchDrained float64
	WindowAccepted                   int64
	Status                           string
	ServerLogTail                    string
	ServerErr                        string
}

// resolveVrsky finds the vrsky binary. When the default bin/vrsky is
// missing it builds one into tmp, as `make build` would.
func resolveVrsky(ctx context.Context, path, tmp string) (string, error) {
	if st, err := os.Stat(path); err == nil && !st.IsDir() {
		return path, nil
	}
	if path != "bin/vrsky" {
		return "", fmt.Errorf("-vrsky %s: not found", path)
	}
	if _, err := os.Stat("cmd/vrsky"); err != nil {
		return "", errors.New("bin/vrsky is missing and ./cmd/vrsky is not here to build it: run from the repository root, after `make build`")
	}
	if _, err := os.Stat("wasm-connectors/build.sh"); err == nil {
		logf("vrsky-bench: bin/vrsky is missing; building the Wasm connectors (wasm-connectors/build.sh)")
		cmd := exec.CommandContext(ctx, "bash", "wasm-connectors/build.sh")
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return "", fmt.Errorf("wasm-connectors/build.sh: %w", err)
		}
	}
	out := filepath.Join(tmp, "vrsky")
	logf("vrsky-bench: bin/vrsky is missing; go build -o %s ./cmd/vrsky", out)
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./cmd/vrsky")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build ./cmd/vrsky: %w", err)
	}
	return out, nil
}

// describeBinary says which build bin is: its --version and modification time.
func describeBinary(ctx context.Context, bin string) string {
	desc := bin
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, bin, "--version").Output(); err == nil {
		desc += " (" + strings.TrimSpace(string(out))
		if st, err := os.Stat(bin); err == nil {
			desc += ", built " + st.ModTime().UTC().Format("2006-01-02 15:04 UTC")
		}
		desc += ")"
	}
	return desc
}

// benchVrsky runs the end-to-end measurement and fills rep.vrsky.
func benchVrsky(ctx context.Context, cfg *config, bin, tmp string, rep *report) (err error) {
	clk := newClock()
	snk, err := startSink(clk)
	if err != nil {
		return err
	}
	defer snk.Close()

	keyBytes := make([]byte, 16)
	_, _ = rand.Read(keyBytes)
	adminKey := "bench-" + hex.EncodeToString(keyBytes)
	logPath := filepath.Join(tmp, "vrsky.log")
	proc, err := startVrsky(bin, filepath.Join(tmp, "data"), logPath, adminKey, cfg.natsSync, cfg.serveFlags)
	if err != nil {
		return err
	}
	res := &vrskyResult{}
	defer func() {
		if serr := proc.stop(15 * time.Second); serr != nil {
			res.ServerErr = serr.Error()
			if err == nil {
				err = serr
			}
		}
		if err != nil && !errors.Is(err, errUnknownConnector) {
			res.ServerLogTail = proc.tail(40)
			fmt.Fprintf(os.Stderr, "vrsky-bench: last lines of vrsky serve's log (%s):\n%s\n", logPath, res.ServerLogTail)
		}
	}()

	if err := proc.waitReady(ctx, 30*time.Second); err != nil {
		return err
	}
	hookURL, tc, err := setupIntegration(ctx, proc.base, adminKey, snk.URL(), cfg.steps, cfg.sinkBatch, cfg.ingestBatch)
	if err != nil {
		return err
	}
	target := loadTarget{url: hookURL, clients: cfg.clients, timeout: 10 * time.Second, wantID: true, rate: cfg.rate, namedIDs: cfg.sinkBatch > 0, batch: cfg.ingestBatch}
	var seq atomic.Int64

	// Warm up, then let the sink catch up so the window starts clean.
	if cfg.warmup > 0 {
		logf("vrsky-bench: warming up for %v", cfg.warmup)
		res.Warmup, err = runLoad(ctx, clk, target, cfg.warmup, &seq)
		if err != nil {
			return err
		}
		t0 := time.Now()
		waitSink(ctx, snk, proc, int64(len(res.Warmup.accepts)), 10*time.Second)
		logf("vrsky-bench: warm-up: %d accepted (%.0f/s, p99 %s), %d delivered %.1fs after it",
			len(res.Warmup.accepts), res.Warmup.Rate(), ms(res.Warmup.latency.Quantile(.99)), snk.Unique(), time.Since(t0).Seconds())
	}

	logf("vrsky-bench: driving %s for %v", hookURL, cfg.duration)
	stopPoll := func() {}
	if cfg.verbose {
		stopPoll = pollStatus(ctx, tc, clk, &res.Samples)
	}
	cpuV0, cpuB0, cpuM0 := procCPU(proc.cmd.Process.Pid), procCPU(os.Getpid()), machineCPU()
	deliveredBefore := snk.Unique()
	res.Load, err = runLoad(ctx, clk, target, cfg.duration, &seq)
	if err != nil {
		return err
	}
	if v := procCPU(proc.cmd.Process.Pid); v > 0 {
		res.CPUVrsky = v - cpuV0
	}
	res.CPUBench = procCPU(os.Getpid()) - cpuB0
	res.CPUMachine = machineCPU() - cpuM0
	deliveredAtEnd := snk.Unique()
	windowAccepted := int64(len(res.Load.accepts))
	res.BacklogAtEnd = windowAccepted - (deliveredAtEnd - deliveredBefore)
	res.InWindowRate = float64(deliveredAtEnd-deliveredBefore) / res.Load.Elapsed().Seconds()

	total := windowAccepted
	if res.Warmup != nil {
		total += int64(len(res.Warmup.accepts))
	}
	logf("vrsky-bench: window done: %d accepted, %d delivered so far; waiting up to %v for the rest",
		windowAccepted, deliveredAtEnd-deliveredBefore, cfg.drain)
	drainStart := time.Now()
	res.StillArriving = waitSink(ctx, snk, proc, total, cfg.drain)
	res.DrainTime = time.Since(drainStart)
	stopPoll()
	if v := procCPU(proc.cmd.Process.Pid); v > 0 {
		res.CPUVrskyDrained = v - cpuV0
	}
	res.CPUBenchDrained = procCPU(os.Getpid()) - cpuB0
	res.WindowAccepted = windowAccepted

	if st, serr := getStatus(ctx, tc); serr == nil {
		res.Status = st.String()
	} else {
		res.Status = serr.Error()
	}
	analyse(res, snk, clk)
	res.Interrupted = ctx.Err() != nil
	rep.vrsky = res
	if res.Interrupted {
		return fmt.Errorf("interrupted: %w", context.Cause(ctx))
	}
	if exited, werr := proc.Exited(); exited {
		return fmt.Errorf("vrsky serve exited during the run: %v", werr)
	}
	if res.Lost > 0 {
		why := "the sink received nothing more for 10s"
		if res.StillArriving {
			why = "deliveries were still arriving: raise -drain to tell late from lost"
		} else if res.DrainTime >= cfg.drain {
			why = "the drain bound passed"
		}
		return fmt.Errorf("%d accepted messages were not delivered %.0fs after the window (%s; e.g. %s); server: %s",
			res.Lost, res.DrainTime.Seconds(), why, strings.Join(res.LostSample, ", "), res.Status)
	}
	return nil
}

// waitSink waits until the sink has seen want distinct ids, the process
// exits, ctx ends, nothing arrives for 10s, or bound passes. It reports
// whether deliveries were still arriving when it gave up.
func waitSink(ctx context.Context, snk *sink, proc *vrskyProc, want int64, bound time.Duration) (stillArriving bool) {
	const quiet = 10 * time.Second
	deadline := time.Now().Add(bound)
	last, lastChange := snk.Unique(), time.Now()
	for {
		n := snk.Unique()
		if n != last {
			last, lastChange = n, time.Now()
		}
		switch {
		case n >= want || ctx.Err() != nil:
			return false
		case time.Since(lastChange) > quiet:
			return false
		case time.Now().After(deadline):
			return time.Since(lastChange) < time.Second
		}
		if exited, _ := proc.Exited(); exited {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// analyse matches the accepted ids with the sink's receipts.
func analyse(res *vrskyResult, snk *sink, clk *clock) {
	got := snk.snapshot()
	// A step that emits several messages per input suffixes the id with
	// .<k>; count the input as delivered at its first output.
	delivered := make(map[string]int64, len(got))
	for id, at := range got {
		base, _, _ := strings.Cut(id, ".")
		if t, ok := delivered[base]; !ok || at < t {
			delivered[base] = at
		}
	}
	res.Duplicates = snk.dups.Load()
	res.MissingID = snk.missingID.Load()

	matched := 0
	check := func(accepts []acceptance, window bool) {
		var first, last int64 = -1, 0
		for _, a := range accepts {
			at, ok := delivered[a.id]
			if !ok {
				res.Lost++
				if len(res.LostSample) < 5 {
					res.LostSample = append(res.LostSample, a.id)
				}
				continue
			}
			matched++
			if !window {
				continue
			}
			res.Delivered++
			res.E2E.Record(time.Duration(at - a.at))
			if first < 0 || a.at < first {
				first = a.at
			}
			last = max(last, at)
		}
		if window && res.Delivered > 0 && last > first {
			res.DeliverySpan = time.Duration(last - first)
			res.DeliveredRate = float64(res.Delivered) / res.DeliverySpan.Seconds()
		}
	}
	if res.Warmup != nil {
		check(res.Warmup.accepts, false)
	}
	check(res.Load.accepts, true)
	res.Unknown = int64(len(delivered) - matched)

	// Per-second timeline from the window's start.
	start := res.Load.start
	end := clk.now()
	secs := int((end-start)/int64(time.Second)) + 1
	res.Timeline = make([][2]int64, secs)
	for _, a := range res.Load.accepts {
		if i := int((a.at - start) / int64(time.Second)); i >= 0 && i < secs {
			res.Timeline[i][0]++
		}
	}
	for _, at := range delivered {
		if i := int((at - start) / int64(time.Second)); i >= 0 && i < secs {
			res.Timeline[i][1]++
		}
	}
	for len(res.Timeline) > 0 && res.Timeline[len(res.Timeline)-1] == [2]int64{} {
		res.Timeline = res.Timeline[:len(res.Timeline)-1]
	}
}

// statusSample is the integration's counters at one time.
type statusSample struct {
	at                                         int64 // clock ns
	ingested, pending, sinkPending, sinkFlight uint64
	sinkDelivered                              uint64
}

// pollStatus polls the integration's counters each second into out until
// the returned func is called.
func pollStatus(ctx context.Context, tc *apiClient, clk *clock, out *[]statusSample) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			st, err := getStatus(ctx, tc)
			if err != nil {
				continue
			}
			s := statusSample{at: clk.now(), ingested: st.Status.Ingested, pending: st.Status.Pending}
			for _, k := range st.Status.Sinks {
				s.sinkPending += k.Pending
				s.sinkFlight += k.InFlight
				s.sinkDelivered += k.Delivered
			}
			*out = append(*out, s)
		}
	}()
	return func() { cancel(); <-done }
}

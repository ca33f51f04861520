package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The targets of DESIGN.md ("Benchmarks") for webhook → … → HTTP sink.
const (
	targetDelivered = 25000.0
	targetIngestP99 = 25 * time.Millisecond
	targetLost      = 0
)

// report gathers a run's figures and prints them.
type report struct {
	cfg                   *config
	bin                   string
	cores                 int
	loadBefore, loadAfter string
	vrsky                 *vrskyResult
	js                    *jsRefResult
	hop                   *loadResult
}

func (r *report) print(w io.Writer) {
	c := r.cfg
	steps := "webhook → JetStream → http sink"
	if c.steps {
		steps = "webhook → JetStream → Wasm jq → Wasm filter → http sink"
	}
	if c.ingestBatch > 0 {
		steps += fmt.Sprintf(" (NDJSON requests of %d messages)", c.ingestBatch)
	}
	if c.sinkBatch > 0 {
		steps += fmt.Sprintf(" (JSON-array batches of up to %d)", c.sinkBatch)
	}
	fmt.Fprintf(w, "\nVRSky end-to-end bench: %s\n", steps)
	offered := "as fast as they go"
	if c.rate > 0 {
		offered = fmt.Sprintf("paced at %s req/s", num(int64(c.rate)))
	}
	fmt.Fprintf(w, "  %s, %d clients %s, %v window (+%v warm-up), 200-byte JSON, nats-sync %s\n",
		r.bin, c.clients, offered, c.duration, c.warmup, strings.TrimSpace(c.natsSync+" "+c.serveFlags.String()))
	fmt.Fprintf(w, "  machine: %d cores, load average %s before, %s after\n\n", r.cores, r.loadBefore, r.loadAfter)

	if v := r.vrsky; v != nil {
		l := v.Load
		fmt.Fprintf(w, "  %-14s %s (%s/s)   rejected %s   transport errors %s   2xx without id %d\n",
			"accepted", num(l.accepted), num(int64(l.Rate())), l.RejectedString(), num(l.transportErrs), l.noID)
		for _, e := range l.errSamples {
			fmt.Fprintf(w, "  %-14s %s\n", "  error", e)
		}
		fmt.Fprintf(w, "  %-14s %s msg/s   (%s in %.1fs from first accept to last delivery)   target ≥ %s  %s\n",
			"delivered", num(int64(v.DeliveredRate)), num(v.Delivered), v.DeliverySpan.Seconds(), num(int64(targetDelivered)), mark(v.DeliveredRate >= targetDelivered))
		fmt.Fprintf(w, "  %-14s %s msg/s during the window; backlog at its end %s, drained in %.1fs\n",
			"", num(int64(v.InWindowRate)), num(v.BacklogAtEnd), v.DrainTime.Seconds())
		fmt.Fprintf(w, "  %-14s p50 %s  p90 %s  p99 %s  max %s   target p99 ≤ %s  %s\n",
			"ingest", ms(l.latency.Quantile(.5)), ms(l.latency.Quantile(.9)), ms(l.latency.Quantile(.99)), ms(l.latency.Max()),
			ms(targetIngestP99), mark(l.latency.Count() > 0 && l.latency.Quantile(.99) <= targetIngestP99))
		fmt.Fprintf(w, "  %-14s p50 %s  p90 %s  p99 %s  max %s   (accept → sink)\n",
			"end-to-end", ms(v.E2E.Quantile(.5)), ms(v.E2E.Quantile(.9)), ms(v.E2E.Quantile(.99)), ms(v.E2E.Max()))
		if v.Interrupted {
			fmt.Fprintf(w, "  %-14s n/a: the run was interrupted with %s accepted messages not delivered yet   duplicates %s\n",
				"lost", num(v.Lost), num(v.Duplicates))
		} else {
			fmt.Fprintf(w, "  %-14s %s   target %d  %s   duplicates %s   delivered but not seen accepted %s\n",
				"lost", num(v.Lost), targetLost, mark(v.Lost == targetLost), num(v.Duplicates), num(v.Unknown))
			if v.Lost > 0 && v.StillArriving {
				fmt.Fprintf(w, "  %-14s (deliveries were still arriving when the %v drain bound passed: late, perhaps not lost)\n", "", c.drain)
			}
		}
		if v.MissingID > 0 {
			fmt.Fprintf(w, "  %-14s %d deliveries without Idempotency-Key or Vrsky-Msg-Id\n", "", v.MissingID)
		}
		win := l.Elapsed().Seconds()
		fmt.Fprintf(w, "  %-14s vrsky serve %.2f cores, bench (clients + sink) %.2f, other processes %.2f (of %d)\n",
			"cpu", v.CPUVrsky/win, v.CPUBench/win, max(v.CPUMachine-v.CPUVrsky-v.CPUBench, 0)/win, r.cores)
		if v.WindowAccepted > 0 {
			fmt.Fprintf(w, "  %-14s vrsky serve %s per message, bench %s (window and drain, over the window's %s messages)\n",
				"cpu/msg", us(v.CPUVrskyDrained/float64(v.WindowAccepted)), us(v.CPUBenchDrained/float64(v.WindowAccepted)), num(v.WindowAccepted))
		}
		if c.verbose || v.Lost > 0 {
			fmt.Fprintf(w, "  %-14s %s\n", "server", v.Status)
		}
		if c.verbose {
			fmt.Fprintf(w, "  %-14s", "per second")
			for i, t := range v.Timeline {
				if i%6 == 0 {
					fmt.Fprintf(w, "\n    ")
				}
				fmt.Fprintf(w, "%3ds %6d→%-6d ", i, t[0], t[1])
			}
			fmt.Fprintf(w, "\n                 (accepted→delivered per second)\n")
			if len(v.Samples) > 0 {
				fmt.Fprintf(w, "  %-14s t(s)  ingested  in-pending  sink-pending  sink-in-flight  sink-delivered\n", "server polls")
				for _, s := range v.Samples {
					fmt.Fprintf(w, "  %-14s %4.0f  %8d  %10d  %12d  %14d  %14d\n", "",
						time.Duration(s.at-l.start).Seconds(), s.ingested, s.pending, s.sinkPending, s.sinkFlight, s.sinkDelivered)
				}
			}
		}
	} else {
		fmt.Fprintf(w, "  vrsky: no figures (the run failed; see above)\n")
	}

	if r.js != nil || r.hop != nil {
		fmt.Fprintf(w, "\n  reference, same machine, same run:\n")
	}
	var delivered float64
	if r.vrsky != nil {
		delivered = r.vrsky.DeliveredRate
	}
	if j := r.js; j != nil {
		fmt.Fprintf(w, "  %-26s %s msg/s consumed+acked (%s of %s published at %s/s, %d publish errors)   vrsky delivered = %s of it\n",
			"jetstream pub+consume", num(int64(j.ConsumeRate)), num(j.Consumed), num(j.Published), num(int64(j.PubRate)), j.PubErrors, pct(delivered, j.ConsumeRate))
		if j.CPUPerMsg > 0 {
			fmt.Fprintf(w, "  %-26s %s per message (publisher, consumer and server in one process)%s\n", "", us(j.CPUPerMsg), cpuRatio(r.vrsky, j.CPUPerMsg))
		}
		if j.ErrSample != "" {
			fmt.Fprintf(w, "  %-26s %s\n", "  publish error", j.ErrSample)
		}
	}
	if h := r.hop; h != nil {
		fmt.Fprintf(w, "  %-26s %s req/s  p50 %s  p99 %s (%s rejected, %s errors)   vrsky delivered = %s of it\n",
			"http hop (net/http, 202)", num(int64(h.Rate())), ms(h.latency.Quantile(.5)), ms(h.latency.Quantile(.99)),
			num(h.Rejected()), num(h.transportErrs), pct(delivered, h.Rate()))
		if h.cpuPerReq > 0 {
			fmt.Fprintf(w, "  %-26s %s per request (clients and handler in one process)\n", "", us(h.cpuPerReq))
		}
	}

	if v := r.vrsky; v != nil {
		lost := strconv.FormatInt(v.Lost, 10)
		if v.Interrupted {
			lost = "n/a (interrupted)"
		}
		fmt.Fprintf(w, "\n%s  delivered %s msg/s  ingest p50 %s p99 %s  lost %s dup %d",
			summaryName(c), num(int64(v.DeliveredRate)), ms(v.Load.latency.Quantile(.5)), ms(v.Load.latency.Quantile(.99)), lost, v.Duplicates)
		if v.WindowAccepted > 0 {
			fmt.Fprintf(w, "  cpu %s/msg", us(v.CPUVrskyDrained/float64(v.WindowAccepted)))
		}
		if r.js != nil {
			fmt.Fprintf(w, "  | jetstream %s msg/s %s/msg", num(int64(r.js.ConsumeRate)), us(r.js.CPUPerMsg))
		}
		if r.hop != nil {
			fmt.Fprintf(w, "  | http hop %s req/s", num(int64(r.hop.Rate())))
		}
		fmt.Fprintln(w)
	}
}

func summaryName(c *config) string {
	name := "vrsky webhook→http"
	if c.steps {
		name = "vrsky webhook→jq→filter→http"
	}
	if c.ingestBatch > 0 {
		name += fmt.Sprintf("[ingest %d]", c.ingestBatch)
	}
	if c.sinkBatch > 0 {
		name += "[batch]"
	}
	return name
}

// jsonReport is the -json line.
type jsonReport struct {
	Pipeline          string   `json:"pipeline"`
	Clients           int      `json:"clients"`
	OfferedRate       float64  `json:"offered_rate,omitempty"`
	DurationS         float64  `json:"duration_s"`
	NATSSync          string   `json:"nats_sync"`
	ServeFlags        []string `json:"serve_flags,omitempty"`
	Cores             int      `json:"cores"`
	LoadBefore        string   `json:"load_before"`
	LoadAfter         string   `json:"load_after"`
	Accepted          int64    `json:"accepted"`
	Rejected          int64    `json:"rejected"`
	TransportErrors   int64    `json:"transport_errors"`
	IngestRate        float64  `json:"ingest_rate"`
	DeliveredRate     float64  `json:"delivered_rate"`
	InWindowRate      float64  `json:"delivered_rate_in_window"`
	IngestP50Ms       float64  `json:"ingest_p50_ms"`
	IngestP90Ms       float64  `json:"ingest_p90_ms"`
	IngestP99Ms       float64  `json:"ingest_p99_ms"`
	E2EP50Ms          float64  `json:"e2e_p50_ms"`
	E2EP99Ms          float64  `json:"e2e_p99_ms"`
	Lost              int64    `json:"lost"`
	Duplicates        int64    `json:"duplicates"`
	Interrupted       bool     `json:"interrupted,omitempty"`
	CPUVrsky          float64  `json:"cpu_vrsky_cores"`
	CPUBench          float64  `json:"cpu_bench_cores"`
	CPUOthers         float64  `json:"cpu_other_cores"`
	CPUVrskyPerMsgUs  float64  `json:"cpu_vrsky_us_per_msg,omitempty"`
	CPUBenchPerMsgUs  float64  `json:"cpu_bench_us_per_msg,omitempty"`
	RefJetStreamCPUUs float64  `json:"ref_jetstream_cpu_us_per_msg,omitempty"`
	RefHTTPHopCPUUs   float64  `json:"ref_http_hop_cpu_us_per_req,omitempty"`
	RefJetStreamRate  float64  `json:"ref_jetstream_rate,omitempty"`
	RefHTTPHopRate    float64  `json:"ref_http_hop_rate,omitempty"`
	RefHTTPHopP99Ms   float64  `json:"ref_http_hop_p99_ms,omitempty"`
	TargetDelivered   float64  `json:"target_delivered_rate"`
	TargetIngestP99Ms float64  `json:"target_ingest_p99_ms"`
}

func (r *report) printJSON(w io.Writer) {
	c := r.cfg
	j := jsonReport{
		Pipeline: summaryName(c), Clients: c.clients, OfferedRate: c.rate, DurationS: c.duration.Seconds(), NATSSync: c.natsSync, ServeFlags: c.serveFlags,
		Cores: r.cores, LoadBefore: r.loadBefore, LoadAfter: r.loadAfter,
		TargetDelivered: targetDelivered, TargetIngestP99Ms: msf(targetIngestP99),
	}
	if v := r.vrsky; v != nil {
		l := v.Load
		win := l.Elapsed().Seconds()
		j.Accepted, j.Rejected, j.TransportErrors = l.accepted, l.Rejected(), l.transportErrs
		j.IngestRate, j.DeliveredRate, j.InWindowRate = l.Rate(), v.DeliveredRate, v.InWindowRate
		j.IngestP50Ms, j.IngestP90Ms, j.IngestP99Ms = msf(l.latency.Quantile(.5)), msf(l.latency.Quantile(.9)), msf(l.latency.Quantile(.99))
		j.E2EP50Ms, j.E2EP99Ms = msf(v.E2E.Quantile(.5)), msf(v.E2E.Quantile(.99))
		j.Lost, j.Duplicates, j.Interrupted = v.Lost, v.Duplicates, v.Interrupted
		j.CPUVrsky, j.CPUBench = v.CPUVrsky/win, v.CPUBench/win
		j.CPUOthers = max(v.CPUMachine-v.CPUVrsky-v.CPUBench, 0) / win
		if v.WindowAccepted > 0 {
			j.CPUVrskyPerMsgUs = 1e6 * v.CPUVrskyDrained / float64(v.WindowAccepted)
			j.CPUBenchPerMsgUs = 1e6 * v.CPUBenchDrained / float64(v.WindowAccepted)
		}
	}
	if r.js != nil {
		j.RefJetStreamRate = r.js.ConsumeRate
		j.RefJetStreamCPUUs = 1e6 * r.js.CPUPerMsg
	}
	if r.hop != nil {
		j.RefHTTPHopRate, j.RefHTTPHopP99Ms = r.hop.Rate(), msf(r.hop.latency.Quantile(.99))
		j.RefHTTPHopCPUUs = 1e6 * r.hop.cpuPerReq
	}
	b, _ := json.Marshal(j)
	fmt.Fprintf(w, "%s\n", b)
}

// num formats n with thousands separators.
func num(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, ch := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(ch)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func ms(d time.Duration) string {
	switch {
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.2fms", msf(d))
	case d < 100*time.Millisecond:
		return fmt.Sprintf("%.1fms", msf(d))
	case d < 10*time.Second:
		return fmt.Sprintf("%.0fms", msf(d))
	default:
		return fmt.Sprintf("%.1fs", d.Seconds())
	}
}

// us formats CPU seconds as microseconds.
func us(sec float64) string { return fmt.Sprintf("%.1fµs", 1e6*sec) }

// cpuRatio says how many times the reference's CPU per message vrsky
// serve spent, or nothing without a vrsky figure.
func cpuRatio(v *vrskyResult, ref float64) string {
	if v == nil || v.WindowAccepted == 0 || ref <= 0 {
		return ""
	}
	return fmt.Sprintf("; vrsky serve spent %.2f× that", v.CPUVrskyDrained/float64(v.WindowAccepted)/ref)
}

func msf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func pct(a, b float64) string {
	if b <= 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.1f%%", 100*a/b)
}

func mark(ok bool) string {
	if ok {
		return "✓"
	}
	return "✗ below target"
}

func numCPU() int { return runtime.NumCPU() }

// loadAvg is the first three fields of /proc/loadavg.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "n/a"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "n/a"
	}
	return strings.Join(f[:3], " ")
}

// machineCPU is the busy CPU seconds of the whole machine (all but idle
// and iowait in /proc/stat, clock ticks of 1/100 s); 0 when unknown.
func machineCPU() float64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return 0
	}
	var busy float64
	for i, v := range f[1:] {
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		if i >= 8 { // guest time is already in user
			break
		}
		x, _ := strconv.ParseFloat(v, 64)
		busy += x
	}
	return busy / 100
}

// procCPU is the user+system CPU seconds process pid has used (Linux
// /proc/PID/stat, in clock ticks of 1/100 s); 0 when unknown.
func procCPU(pid int) float64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// The command name (field 2) may hold spaces; count from its ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100
}

// printMedians ends a -rounds run: each figure's median over the rounds
// that measured it, with every round's value, and the ratios to the
// JetStream reference taken round by round (each against its own run).
func printMedians(w io.Writer, c *config, reps []*report) {
	var delivered, p99, cpu, jsRate, jsCPU, share, cpuX, benchCores, hop []float64
	var lost, dups int64
	for _, r := range reps {
		v := r.vrsky
		if v == nil {
			continue
		}
		delivered = append(delivered, v.DeliveredRate)
		p99 = append(p99, msf(v.Load.latency.Quantile(.99)))
		lost += v.Lost
		dups += v.Duplicates
		if v.WindowAccepted > 0 {
			cpu = append(cpu, 1e6*v.CPUVrskyDrained/float64(v.WindowAccepted))
		}
		if win := v.Load.Elapsed().Seconds(); win > 0 {
			benchCores = append(benchCores, v.CPUBench/win)
		}
		if r.hop != nil && r.hop.Rate() > 0 {
			hop = append(hop, r.hop.Rate())
		}
		if j := r.js; j != nil && j.ConsumeRate > 0 {
			jsRate = append(jsRate, j.ConsumeRate)
			share = append(share, 100*v.DeliveredRate/j.ConsumeRate)
			if j.CPUPerMsg > 0 && v.WindowAccepted > 0 {
				jsCPU = append(jsCPU, 1e6*j.CPUPerMsg)
				cpuX = append(cpuX, v.CPUVrskyDrained/float64(v.WindowAccepted)/j.CPUPerMsg)
			}
		}
	}
	fmt.Fprintf(w, "\n%s  medians of %d rounds (each round's value in brackets)\n", summaryName(c), len(delivered))
	line := func(name, unit string, vals []float64, format string) {
		if len(vals) == 0 {
			return
		}
		each := make([]string, len(vals))
		for i, v := range vals {
			each[i] = fmt.Sprintf(format, v)
		}
		fmt.Fprintf(w, "  %-24s %s%s  [%s]\n", name, fmt.Sprintf(format, medianOf(vals)), unit, strings.Join(each, " / "))
	}
	line("delivered", " msg/s", delivered, "%.0f")
	line("ingest p99", " ms", p99, "%.1f")
	line("vrsky serve cpu/msg", " µs", cpu, "%.1f")
	line("bench's own cpu", " cores", benchCores, "%.2f")
	line("jetstream pub+consume", " msg/s", jsRate, "%.0f")
	line("jetstream cpu/msg", " µs", jsCPU, "%.1f")
	line("delivered / jetstream", "%", share, "%.1f")
	line("http hop", " req/s", hop, "%.0f")
	line("cpu/msg / jetstream's", "×", cpuX, "%.2f")
	fmt.Fprintf(w, "  %-24s %d lost, %d duplicates over all rounds\n", "delivery", lost, dups)
}

// medianOf is the median of vals, 0 when there are none.
func medianOf(vals []float64) float64 {
	vals = slices.Sorted(slices.Values(vals))
	n := len(vals)
	if n == 0 {
		return 0
	}
	if n%2 == 1 {
		return vals[n/2]
	}
	return (vals[n/2-1] + vals[n/2]) / 2
}

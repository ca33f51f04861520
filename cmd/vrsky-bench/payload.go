package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// The large-payload mode (-payload-mib N): one N MiB message crosses
// webhook → claim-check → HTTP sink, and the figure is the peak growth of
// vrsky serve's resident memory (VmHWM after, minus VmRSS before, the peak
// reset to it through /proc/PID/clear_refs) as a
// multiple of the payload (DESIGN.md target: ≤ 2×). With -steps the payload
// is a CSV file and the Wasm csv converter turns it into one JSON array on
// the way, streaming it by reference (webhook → step → sink).

func benchPayload(ctx context.Context, cfg *config, bin, tmp string) error {
	var got atomic.Int64
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, err := io.Copy(io.Discard, r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		got.Store(n)
		w.WriteHeader(http.StatusNoContent)
	})}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()

	key := make([]byte, 16)
	_, _ = rand.Read(key)
	adminKey := "bench-" + hex.EncodeToString(key)
	proc, err := startVrsky(bin, filepath.Join(tmp, "data"), filepath.Join(tmp, "vrsky.log"), adminKey, cfg.natsSync, cfg.serveFlags)
	if err != nil {
		return err
	}
	defer func() { _ = proc.stop(15 * time.Second) }()
	if err := proc.waitReady(ctx, 30*time.Second); err != nil {
		return err
	}
	sinkURL := "http://" + ln.Addr().String() + "/"
	spec, makeBody, shape := integrationSpec(sinkURL, false, 0, 0), jsonString, "webhook → claim-check → http sink"
	if cfg.steps {
		spec, makeBody, shape = csvIntegrationSpec(sinkURL), csvFile, "webhook → csv step (by reference) → http sink"
	}
	if _, err := setupSpec(ctx, proc.base, adminKey, benchIntegration, spec); err != nil {
		return err
	}
	hook := proc.base + "/hooks/" + benchTenant + "/" + benchHookPath
	send := func(size int) error {
		got.Store(0)
		body := makeBody(size)
		want := int64(len(body))
		if cfg.steps {
			want = int64(csvJSONSize(body))
		}
		resp, err := http.Post(hook, "text/plain", bytes.NewReader(body))
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			return fmt.Errorf("webhook answered %s for %d bytes", resp.Status, size)
		}
		deadline := time.Now().Add(60 * time.Second)
		for got.Load() != want {
			if time.Now().After(deadline) || ctx.Err() != nil {
				return fmt.Errorf("the sink did not receive the %d-byte payload (last: %d bytes)", want, got.Load())
			}
			time.Sleep(20 * time.Millisecond)
		}
		return nil
	}
	// Warm the claim-check path (object store buckets, connections) first.
	if err := send(300 << 10); err != nil {
		return err
	}
	time.Sleep(2 * time.Second) // let the warm-up's garbage settle before the baseline (a measurement, not a sync)
	pid := proc.cmd.Process.Pid
	// Reset the peak to the current RSS, so the figure is this payload's
	// alone and not the warm-up's or start-up's.
	if err := os.WriteFile("/proc/"+strconv.Itoa(pid)+"/clear_refs", []byte("5"), 0); err != nil {
		return fmt.Errorf("reset the peak RSS of vrsky serve: %w", err)
	}
	base, err := procStatusKiB(pid, "VmRSS")
	if err != nil {
		return err
	}
	size := cfg.payloadMiB << 20
	start := time.Now()
	if err := send(size); err != nil {
		return err
	}
	took := time.Since(start)
	peak, err := procStatusKiB(pid, "VmHWM")
	if err != nil {
		return err
	}
	growth := float64(peak-base) / 1024
	ratio := growth / float64(cfg.payloadMiB)
	mark := "✓"
	if ratio > 2 {
		mark = "✗ above target"
	}
	fmt.Printf("VRSky large payload: %d MiB %s, delivered in %v\n", cfg.payloadMiB, shape, took.Round(time.Millisecond))
	fmt.Printf("  vrsky serve RSS %.1f MiB before, peak %.1f MiB: growth %.1f MiB = %.1f× the payload   target ≤ 2×  %s\n",
		float64(base)/1024, float64(peak)/1024, growth, ratio, mark)
	return nil
}

// csvIntegrationSpec is the bench integration with the csv converter,
// making one JSON array of the whole file.
func csvIntegrationSpec(sinkURL string) []byte {
	return []byte(`{"name":"` + benchIntegration + `",
"source":{"connector":"http-webhook","config":{"path":"` + benchHookPath + `"}},
"steps":[{"connector":"csv","config":{"split":false}}],
"sinks":[{"name":"sink","connector":"http","config":{"url":"` + sinkURL + `"}}]}`)
}

// csvFile is a CSV file of exactly size bytes: a header and rows of
// "<n>,xxxx…" (the last row padded to fit).
func csvFile(size int) []byte {
	b := make([]byte, 0, size)
	b = append(b, "id,name\n"...)
	for i := 0; ; i++ {
		row := strconv.Itoa(i) + ",name-of-row-" + strconv.Itoa(i) + "\n"
		if len(b)+len(row) > size-64 {
			pad := size - len(b) - len(strconv.Itoa(i)) - 2
			b = append(b, strconv.Itoa(i)+","...)
			b = append(b, bytes.Repeat([]byte("x"), pad)...)
			return append(b, '\n')
		}
		b = append(b, row...)
	}
}

// csvJSONSize is the size of the csv converter's JSON array for a file
// made by csvFile: each row {"id":"…","name":"…"}, comma-separated, in [].
func csvJSONSize(file []byte) int {
	rows := bytes.Split(bytes.TrimSuffix(file, []byte("\n")), []byte("\n"))[1:]
	n := 2 + len(rows) - 1
	for _, r := range rows {
		id, name, _ := bytes.Cut(r, []byte(","))
		n += len(`{"id":"","name":""}`) + len(id) + len(name)
	}
	return n
}

// jsonString is a JSON string document of exactly size bytes.
func jsonString(size int) []byte {
	b := bytes.Repeat([]byte("x"), size)
	b[0], b[size-1] = '"', '"'
	return b
}

// procStatusKiB reads one "<field>: N kB" line of /proc/<pid>/status.
func procStatusKiB(pid int, field string) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, fmt.Errorf("read process memory (Linux /proc needed): %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			return strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}

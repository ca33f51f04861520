package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// durationKeys are the log keys whose values are durations.
var durationKeys = map[string]bool{"took": true, "duration": true, "in": true, "wait": true, "backoff": true, "retry_after": true, "older_than": true}

// TestServeJSONLogs runs `vrsky serve --log-format json` through a first
// start (a generated admin key), a tenant and an integration created, one
// message delivered and one dead-lettered, and a shutdown, and parses every
// line it wrote (stdout and stderr) as a JSON record. The records keep the
// keys' convention: err for errors (never "error"), msg_id for message ids,
// tenant beside every integration (never "tenant/name" in one value),
// durations as Go duration strings.
func TestServeJSONLogs(t *testing.T) {
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if bytes.Contains(b, []byte("doomed")) {
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprintf(w, "<html>\n<head><title>400 Bad Request</title></head>\n<body>\n<h1>No</h1>\n<p>%s</p>\n</body>\n</html>\n", strings.Repeat("not this one ", 100))
		}
	}))
	t.Cleanup(sink.Close)

	var out bytes.Buffer
	addr := freeAddr(t)
	in := &instance{t: t, url: "http://" + addr, data: t.TempDir(), log: &out}
	in.cmd = exec.Command(vrskyBin, "serve", "--data", in.data, "--listen", addr, "--log-format", "json", "--log-level", "debug")
	in.cmd.Env = cleanEnv(in.data)
	in.cmd.Stdout, in.cmd.Stderr = &out, &out
	if err := in.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	in.waitReady()
	key := in.setupKey(sink.URL, readAdminKey(t, in.data))
	ok := in.post(`{"order_id": 1}`)
	doomed := in.post(`{"order_id": 2, "note": "doomed"}`)
	waitTraceState(t, in, key, ok, "delivered")
	waitTraceState(t, in, key, doomed, "dead_lettered")
	if err := in.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- in.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("vrsky serve exited with %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("vrsky serve did not stop within 30 s of SIGTERM")
	}

	seen := map[string][]map[string]any{} // by msg
	sc := bufio.NewScanner(bytes.NewReader(out.Bytes()))
	sc.Buffer(nil, 1<<20)
	lines := 0
	for sc.Scan() {
		line := sc.Bytes()
		lines++
		var rec map[string]any
		if err := json.Unmarshal(line, &rec); err != nil {
			t.Errorf("line %d is not a JSON record: %q", lines, line)
			continue
		}
		checkRecord(t, rec, line)
		if m, _ := rec["msg"].(string); m != "" {
			seen[m] = append(seen[m], rec)
		}
	}
	if lines < 5 {
		t.Fatalf("vrsky serve wrote %d lines:\n%s", lines, out.String())
	}

	want := map[string]map[string]string{
		"admin API key generated (shown once, kept in admin_key_file)": {"admin_key": readAdminKey(t, in.data)},
		"VRSky is running":      {"url": in.url},
		"integration running":   {"tenant": "acme", "integration": "orders"},
		"message dead-lettered": {"tenant": "acme", "integration": "orders", "msg_id": doomed, "stage": "sink:api"},
		"request":               {"method": "POST", "path": "/hooks/acme/orders"},
		"integration stopped":   {"tenant": "acme", "integration": "orders"},
		"shutting down: no new requests, draining pipelines": {},
	}
	for msg, attrs := range want {
		if findRecord(seen[msg], attrs) == nil {
			t.Errorf("no %q record with %v among %v", msg, attrs, seen[msg])
		}
	}
	dl := findRecord(seen["message dead-lettered"], nil)
	if id, _ := dl["trace_id"].(string); len(id) != 32 {
		t.Errorf("the dead letter's record has no trace_id: %v", dl)
	}
	if e, _ := dl["err"].(string); !strings.HasPrefix(e, "POST "+sink.URL+": 400 Bad Request: No not this one") ||
		!strings.Contains(e, "… (text/html, ") || len(e) > 300 {
		t.Errorf("the dead letter's err is not a one-line summary: %q", e)
	}
	if req := findRecord(seen["request"], nil); req == nil || req["duration"] == nil {
		t.Errorf("no request record with a duration: %v", req)
	}
	if t.Failed() {
		t.Logf("vrsky serve's output:\n%s", out.String())
	}
}

// checkRecord checks one JSON log record against the keys' convention.
func checkRecord(t *testing.T, rec map[string]any, line []byte) {
	t.Helper()
	for _, k := range []string{"time", "level", "msg"} {
		if _, ok := rec[k]; !ok {
			t.Errorf("record without %q: %s", k, line)
		}
	}
	var walk func(prefix string, m map[string]any)
	walk = func(prefix string, m map[string]any) {
		for k, v := range m {
			switch {
			case k == "error":
				t.Errorf("key %s%q: errors go under \"err\": %s", prefix, k, line)
			case k == "id":
				t.Errorf("key %s%q: a message id goes under \"msg_id\", others under a name that says what they are: %s", prefix, k, line)
			case k == "err":
				if _, ok := v.(string); !ok {
					t.Errorf("err is %T, want a string: %s", v, line)
				}
			case durationKeys[k]:
				s, ok := v.(string)
				if _, err := time.ParseDuration(s); !ok || err != nil {
					t.Errorf("%s%s = %v: want a Go duration string: %s", prefix, k, v, line)
				}
			case k == "integration":
				s, _ := v.(string)
				if _, ok := m["tenant"]; !ok || strings.Contains(s, "/") {
					t.Errorf("integration %q without its own tenant key: %s", s, line)
				}
			}
			if sub, ok := v.(map[string]any); ok {
				walk(prefix+k+".", sub)
			}
		}
	}
	walk("", rec)
}

// readAdminKey returns the admin key vrsky serve generated in data.
func readAdminKey(t *testing.T, data string) string {
	t.Helper()
	k, _, err := loadAdminKey(data, "")
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// findRecord returns the first of recs whose attrs include attrs.
func findRecord(recs []map[string]any, attrs map[string]string) map[string]any {
	for _, rec := range recs {
		match := true
		for k, v := range attrs {
			if rec[k] != v {
				match = false
			}
		}
		if match {
			return rec
		}
	}
	return nil
}

// TestServeJSONLogsStartFailure: a start that fails, with --log-format
// json, ends on a JSON record naming the error, not on a line of text.
func TestServeJSONLogsStartFailure(t *testing.T) {
	taken := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(taken.Close)
	data := t.TempDir()
	cmd := exec.Command(vrskyBin, "serve", "--data", data, "--listen", taken.Listener.Addr().String(), "--log-format", "json")
	cmd.Env = cleanEnv(data)
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("vrsky serve started on a taken address:\n%s", out)
	}
	var last map[string]any
	for i, line := range bytes.Split(bytes.TrimSpace(out), []byte("\n")) {
		last = nil
		if err := json.Unmarshal(line, &last); err != nil {
			t.Errorf("line %d is not a JSON record: %q", i+1, line)
			continue
		}
		checkRecord(t, last, line)
	}
	if e, _ := last["err"].(string); last["msg"] != "vrsky serve failed" || !strings.Contains(e, "--listen") {
		t.Errorf("the last record is %v, want the failure with its err", last)
	}
}

package main

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// demoEnv is the environment a user runs `vrsky demo` in, without VRSKY_
// settings of the test's shell.
func demoEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "VRSKY_") {
			env = append(env, kv)
		}
	}
	return env
}

// TestDemos runs each demo as a newcomer does, `vrsky demo NAME --once`,
// against the real stand-ins it starts (a Slack-compatible receiver, an
// HTTP API, a PostgreSQL cluster from the system's binaries, the CSV
// folder) and a real `vrsky serve`, with a small load run after the
// samples. The command checks what arrives itself and fails otherwise;
// the test checks that it says so: each stand-in printed what it took,
// demo 4's big order was dead-lettered after three attempts while Slack
// was down and the replay through the API delivered it, and the load run
// lost nothing.
func TestDemos(t *testing.T) {
	for _, tc := range []struct {
		name string
		want []string // lines of the output, in this order
	}{
		{"github-slack", []string{
			"vrsky ← 202 Accepted",
			"vrsky ← 401 Unauthorized (bad_signature)",
			"slack ← octocat pushed 2 commit(s) to acme/widgets main: Fix it",
			"==> demo github-slack works",
		}},
		{"csv-postgres", []string{
			"postgres ← customers: 1 | Ada | ada@example.com | UK",
			"postgres ← customers: 2 | Grace | grace@example.com | US",
			"postgres ← customers: 3 | Edsger | edsger@example.com | NL",
			"files    → customers.csv moved to incoming/processed/",
			"==> demo csv-postgres works",
		}},
		{"cdc-http", []string{
			`"event":"order.`, `"event":"order.`, `"event":"order.`,
			"==> demo cdc-http works",
		}},
		{"orders", []string{
			"==> Slack is down",
			"slack ✗ down: answered 503 to a post",
			"postgres ← orders: 5 | Grace | 80 | 1 item(s)",
			"postgres ← orders: 6 | Edsger | 450 | 1 item(s)",
			"postgres ← orders: 7 | Ada | 1200 | 1 item(s)",
			"dlq      ← sink:slack, after 3 attempts: POST slack webhook: 503 Service Unavailable",
			"==> Slack is back; replaying the dead letters",
			"slack ← :moneybag: Big order 7 from Ada: 1200 (1 items)",
			"==> demo orders works",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(vrskyBin, "demo", tc.name, "--once", "--load", "300", "--concurrency", "8")
			cmd.Env = demoEnv()
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("vrsky demo %s --once: %v\n%s", tc.name, err, out)
			}
			text := string(out)
			rest := text
			for _, w := range tc.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("the output lacks %q (after the lines before it):\n%s", w, text)
				}
				rest = rest[i+len(w):]
			}
			if strings.Count(text, "slack ← ") > 1 && tc.name == "orders" {
				t.Errorf("Slack got more than the one big order before the load run:\n%s", text)
			}
			if !regexp.MustCompile(`load ` + tc.name + `: 300 messages, \d+ deliveries expected, \d+ arrived, lost 0;`).MatchString(text) {
				t.Errorf("the load run did not report lost 0:\n%s", text)
			}
			if m := regexp.MustCompile(`working in (\S+)`).FindStringSubmatch(text); m == nil {
				t.Errorf("the output does not say where it works:\n%s", text)
			} else if _, err := os.Stat(m[1]); !os.IsNotExist(err) {
				t.Errorf("the demo's temp dir %s is still there after --once (%v)", m[1], err)
			}
		})
	}
}

// TestDemoRunsUntilInterrupted: without --once the demo keeps serving,
// prints the commands to try by hand, and stops cleanly on Ctrl-C.
func TestDemoRunsUntilInterrupted(t *testing.T) {
	cmd := exec.Command(vrskyBin, "demo", "github-slack")
	cmd.Env = demoEnv()
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	var mu sync.Mutex
	var all bytes.Buffer
	ready := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(pr)
		once := sync.Once{}
		for sc.Scan() {
			mu.Lock()
			all.WriteString(sc.Text() + "\n")
			mu.Unlock()
			if strings.Contains(sc.Text(), "Ctrl-C stops it all") {
				once.Do(func() { close(ready) })
			}
		}
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	select {
	case <-ready:
	case <-done:
		t.Fatalf("vrsky demo exited before it said it keeps running:\n%s", all.String())
	case <-time.After(3 * time.Minute):
		t.Fatalf("vrsky demo did not get to running:\n%s", all.String())
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	<-done
	if err := cmd.Wait(); err != nil {
		t.Errorf("vrsky demo after Ctrl-C: %v\n%s", err, all.String())
	}
	mu.Lock()
	defer mu.Unlock()
	for _, w := range []string{"export VRSKY_URL=http://127.0.0.1:", "X-Hub-Signature-256: $sig", "==> stopping"} {
		if !strings.Contains(all.String(), w) {
			t.Errorf("the output lacks %q:\n%s", w, all.String())
		}
	}
}

// TestDemoUnknown: a wrong name is refused with the list of demos.
func TestDemoUnknown(t *testing.T) {
	out, err := exec.Command(vrskyBin, "demo", "nope").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "no demo \"nope\": the demos are github-slack, csv-postgres, cdc-http, orders") {
		t.Errorf("vrsky demo nope: %v\n%s", err, out)
	}
}

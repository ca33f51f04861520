package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	wasmconnectors "github.com/vrsky/vrsky/wasm-connectors"
)

// TestReadmeGettingStarted runs the README's "Getting started" as a
// newcomer pastes it: every sh block of the section, in order, in one
// bash, against a real `vrsky serve` (the binary TestMain built, started
// the way the section's `make run` starts it) and the real `vrsky
// dev-sink` receivers the section starts. Only the addresses change, and
// only through what the section documents: `make run`'s LISTEN, and the
// VRSKY_URL, SINK and BIG it exports. Then it checks what the section
// promises: the message reaches the orders API, the failing receiver
// sees three attempts and the message is dead-lettered with a one-line
// error, the replay delivers it, the Wasm steps reshape the shop's order,
// and the wrong spec is refused on its field.
func TestReadmeGettingStarted(t *testing.T) {
	for _, tool := range []string{"bash", "curl", "jq"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("the README's getting started needs bash, curl and jq, and %s is missing: "+
				"install them with `apt-get install curl jq` (scripts/test-deps.sh, which make test runs, does)", tool)
		}
	}
	for _, b := range wasmconnectors.List() {
		if (b.Name == "jq" || b.Name == "filter") && b.Err != nil {
			t.Fatalf("the README's getting started uses the shipped Wasm connector %s, which is not built: run `make wasm` (%v)", b.Name, b.Err)
		}
	}
	blocks := gettingStartedBlocks(t)
	makefile, err := os.ReadFile("../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	// The test starts the server the way `make run` does, with its own LISTEN.
	if !strings.Contains(string(makefile), "./$(BIN) serve --data $(DATA) --listen $(LISTEN)") {
		t.Fatal("the Makefile's run target no longer runs `./$(BIN) serve --data $(DATA) --listen $(LISTEN)`: update this test to start vrsky serve as `make run` does")
	}

	work := t.TempDir()
	if err := os.Mkdir(filepath.Join(work, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(vrskyBin, filepath.Join(work, "bin", "vrsky")); err != nil {
		t.Fatal(err)
	}
	listen, sink, big := freeAddr(t), freeAddr(t), freeAddr(t)
	var script strings.Builder
	ranServe := false
	for i, b := range blocks {
		if strings.TrimSpace(b) == "make run" {
			// make run: DATA=./data (the default), LISTEN=listen.
			in := &instance{t: t, url: "http://" + listen, data: filepath.Join(work, "data"), log: &bytes.Buffer{}}
			in.cmd = exec.Command(vrskyBin, "serve", "--data", in.data, "--listen", listen)
			in.cmd.Dir, in.cmd.Env = work, cleanEnv(work)
			in.cmd.Stdout, in.cmd.Stderr = in.log, in.log
			if err := in.cmd.Start(); err != nil {
				t.Fatal(err)
			}
			in.waitReady()
			ranServe = true
			continue
		}
		fmt.Fprintf(&script, "echo '### block %d'\n%s\n", i, b)
	}
	if !ranServe {
		t.Fatal("the getting started has no `make run` block: this test starts vrsky serve in its place")
	}
	text := script.String()
	for name, value := range map[string]string{"VRSKY_URL": "http://" + listen, "SINK": sink, "BIG": big} {
		re := regexp.MustCompile(`\b` + name + `=[^\s]+`)
		if n := len(re.FindAllStringIndex(text, -1)); n != 1 {
			t.Fatalf("the getting started sets %s %d times, want once (in its export line)", name, n)
		}
		text = re.ReplaceAllLiteralString(text, name+"="+value)
	}
	text += `printf '\n__VARS__ KEY=%s ID=%s DLQ_ID=%s\n' "$KEY" "$ID" "$DLQ_ID"` + "\n"
	scriptPath := filepath.Join(work, "getting-started.sh")
	if err := os.WriteFile(scriptPath, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	out := runScript(t, work, scriptPath)

	// What the blocks captured.
	m := regexp.MustCompile(`__VARS__ KEY=(\S*) ID=(\S*) DLQ_ID=(\S*)`).FindStringSubmatch(out())
	if m == nil {
		t.Fatalf("the script did not finish:\n%s", out())
	}
	key, id, dlqID := m[1], m[2], m[3]
	if !strings.HasPrefix(key, "vrsk_") || id == "" || id == "null" || dlqID == "" || dlqID == "null" {
		t.Fatalf("captured KEY=%q ID=%q DLQ_ID=%q; want a tenant key, a message id and a dead letter's id:\n%s", key, id, dlqID, out())
	}
	for _, bad := range []string{"command not found", "jq: error", "parse error", "No such file", "Cannot POST"} {
		if strings.Contains(out(), bad) {
			t.Errorf("the script's output says %q:\n%s", bad, out())
		}
	}

	// The message reached the orders API; the big-orders service saw three
	// attempts, then the replay.
	order := `{"order_id": 7, "total": 1200}`
	wantBodies(t, out(), "POST /orders", sink, 200, order, 1)
	wantBodies(t, out(), "POST /big", big, 503, order, 3)
	wantBodies(t, out(), "POST /big", big, 200, order, 1)

	// The trace: delivered after the replay, with the three failed
	// attempts and the dead-lettering, each error one line.
	var tr struct {
		State  string
		Stages []struct{ Stage, Status, Error string }
	}
	getJSON(t, "http://"+listen+"/api/v1/integrations/orders/messages/"+id, key, &tr)
	if tr.State != "delivered" {
		t.Errorf("message %s is %q after the replay, want delivered: %+v", id, tr.State, tr)
	}
	// Before the replay: three failed attempts and the dead-lettering, all
	// the receiver's 503. After it: delivered (past a refused connection,
	// should the replay beat the new receiver to its port).
	want503 := "POST http://" + big + "/big: 503 Service Unavailable: vrsky dev-sink answers 503 to every request (--status)"
	var before, after []string
	replayed := false
	for _, s := range tr.Stages {
		switch {
		case s.Stage != "sink:big":
		case s.Status == "replayed":
			replayed = true
		case !replayed:
			before = append(before, s.Status)
			if s.Error != want503 {
				t.Errorf("sink:big's error is %q, want %q", s.Error, want503)
			}
		default:
			after = append(after, s.Status)
			if s.Status == "failed" && !strings.Contains(s.Error, "connection refused") {
				t.Errorf("sink:big failed after the replay: %q", s.Error)
			}
		}
	}
	if strings.Join(before, ",") != "failed,failed,failed,dead_lettered" || !replayed || len(after) == 0 || after[len(after)-1] != "delivered" {
		t.Errorf("sink:big's stages: %v, replayed %v, then %v; want three failures, dead_lettered, replayed, delivered", before, replayed, after)
	}
	var dlq struct{ Items []json.RawMessage }
	getJSON(t, "http://"+listen+"/api/v1/integrations/orders/dlq", key, &dlq)
	if len(dlq.Items) != 0 {
		t.Errorf("the DLQ still holds %d entries after the replay: %s", len(dlq.Items), dlq.Items)
	}

	// The shop's order, reshaped by the Wasm jq step and passed by filter.
	waitFor(t, 60*time.Second, "the shop's order at the orders API", func() bool {
		return strings.Contains(out(), `{"customer":"Ada","id":7,"total":25}`)
	})
	wantBodies(t, out(), "POST /orders", sink, 200, `{"customer":"Ada","id":7,"total":25}`, 1)
	if !strings.Contains(out(), `"field":"sinks[0].config.url"`) {
		t.Errorf("the wrong spec was not refused on sinks[0].config.url:\n%s", out())
	}
	if t.Failed() {
		t.Logf("the script:\n%s\nits output:\n%s", text, out())
	}
}

// gettingStartedBlocks returns the sh blocks of the README's "Getting
// started" section, in order.
func gettingStartedBlocks(t *testing.T) []string {
	t.Helper()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(readme)
	start := strings.Index(s, "\n## Getting started")
	if start < 0 {
		t.Fatal(`the README has no "## Getting started" section`)
	}
	s = s[start+1:]
	if end := strings.Index(s, "\n## "); end >= 0 {
		s = s[:end]
	}
	var blocks []string
	for _, m := range regexp.MustCompile("(?s)```sh\n(.*?)```").FindAllStringSubmatch(s, -1) {
		blocks = append(blocks, m[1])
	}
	if len(blocks) < 8 {
		t.Fatalf("found %d sh blocks in the getting started; the pattern no longer matches it", len(blocks))
	}
	return blocks
}

// cleanEnv is the environment of a newcomer's shell: no VRSKY_ variables
// from the test's own.
func cleanEnv(home string) []string {
	return []string{"PATH=" + os.Getenv("PATH"), "HOME=" + home, "LANG=C.UTF-8", "TERM=dumb"}
}

// runScript runs path with bash in dir, in a process group of its own
// that is killed at cleanup (the receivers it starts in the background
// outlive it), and waits until bash exits. The output (stdout and stderr
// of bash and of what it started) goes to a file that the receivers keep
// writing to; the returned func reads it.
func runScript(t *testing.T, dir, path string) func() string {
	t.Helper()
	outPath := filepath.Join(dir, "output")
	f, err := os.Create(outPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "--noprofile", "--norc", path)
	cmd.Dir, cmd.Env = dir, cleanEnv(dir)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pgid := cmd.Process.Pid
	t.Cleanup(func() { _ = syscall.Kill(-pgid, syscall.SIGTERM) })
	read := func() string {
		b, _ := os.ReadFile(outPath)
		return string(b)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("the getting started's commands: %v (timeout %v)\n%s", err, ctx.Err(), read())
	}
	return read
}

// wantBodies checks that out holds n dev-sink blocks for request (e.g.
// "POST /orders") received at addr, answered status, with body.
func wantBodies(t *testing.T, out, request, addr string, status int, body string, n int) {
	t.Helper()
	head := fmt.Sprintf("==> %s  (to %s, answered %d)\n", request, addr, status)
	got := 0
	for rest := out; ; {
		i := strings.Index(rest, head)
		if i < 0 {
			break
		}
		rest = rest[i+len(head):]
		_, after, _ := strings.Cut(rest, "\n\n") // the headers end
		if b, _, _ := strings.Cut(after, "\n\n"); b == body {
			got++
		}
	}
	if got != n {
		t.Errorf("%s at %s answered %d with %s: seen %d times, want %d", request, addr, status, body, got, n)
	}
}

func getJSON(t *testing.T, url, key string, out any) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}

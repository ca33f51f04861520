package main

import (
	"errors"
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestServeDataDirLocked starts a second vrsky serve on the data dir of a
// running one: the second must refuse to start, naming the first, and the
// first must not notice.
func TestServeDataDirLocked(t *testing.T) {
	data := t.TempDir()
	first := startServe(t, data, freeAddr(t))

	second := serveCmd(t, data, freeAddr(t))
	if err := second.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- second.cmd.Wait() }()
	var err error
	select {
	case err = <-exited:
	case <-time.After(15 * time.Second):
		_ = second.cmd.Process.Kill()
		<-exited
		t.Fatalf("second vrsky serve on the same --data still running after 15s:\n%s", second.log.String())
	}
	out := second.log.String()
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		t.Fatalf("second vrsky serve on the same --data: %v, want a non-zero exit:\n%s", err, out)
	}
	want := fmt.Sprintf("data dir %s is in use by another vrsky serve (pid %d)", data, first.cmd.Process.Pid)
	if !strings.Contains(out, want) {
		t.Fatalf("second vrsky serve's output does not say %q:\n%s", want, out)
	}

	resp, err := http.Get(first.url + "/healthz")
	if err != nil {
		t.Fatalf("first vrsky serve after the second was refused: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("first vrsky serve /healthz: %s, want 200", resp.Status)
	}
}

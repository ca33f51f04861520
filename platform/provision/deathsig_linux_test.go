package provision_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/vrsky/vrsky/platform/provision"
)

// TestChildDiesWithParent: when the process that provisioned an instance
// dies without stopping it (SIGKILL), the kernel's parent-death signal
// stops the child too, and its data stays.
func TestChildDiesWithParent(t *testing.T) {
	tr := newTrust(t)
	dir := t.TempDir()
	job, err := json.Marshal(parentJob{Dir: filepath.Join(dir, "tenants"), Spec: tr.spec("acme")})
	if err != nil {
		t.Fatal(err)
	}
	jobFile := filepath.Join(dir, "job.json")
	if err := os.WriteFile(jobFile, job, 0o600); err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	parent := exec.Command(exe)
	parent.Env = append(os.Environ(), parentEnv+"="+jobFile)
	out, err := parent.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := parent.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	t.Cleanup(func() {
		if !killed {
			_ = parent.Process.Kill()
			_ = parent.Wait()
		}
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("the parent said nothing: %v", err)
	}
	var pid int
	var url string
	if _, err := fmt.Sscanf(line, "pid %d %s", &pid, &url); err != nil || pid == 0 {
		t.Fatalf("the parent said %q", line)
	}

	if err := parent.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = parent.Wait()
	killed = true
	waitFor(t, 15*time.Second, func() error {
		if alive(pid) {
			return fmt.Errorf("child %d still runs after its parent was killed", pid)
		}
		return nil
	})
	closed(t, url)
	// The parent-death signal, not the child's poll of its parent pid
	// (the fallback), stopped it, and it shut down cleanly.
	log, err := os.ReadFile(filepath.Join(dir, "tenants", "acme", provision.LogFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"vrsky: terminated received", "Server Exiting"} {
		if !bytes.Contains(log, []byte(want)) {
			t.Errorf("the child's log lacks %q:\n%s", want, log)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "tenants", "acme", "jetstream")); err != nil {
		t.Errorf("the tenant's data: %v", err)
	}
}

// alive reports whether pid is a process that has not exited (a zombie
// that nobody reaped has exited).
func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// pid (comm) state …: the state follows the last ')'.
	if i := bytes.LastIndexByte(b, ')'); i >= 0 && i+2 < len(b) {
		return b[i+2] != 'Z'
	}
	return true
}

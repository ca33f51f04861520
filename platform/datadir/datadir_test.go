//go:build darwin || dragonfly || freebsd || illumos || linux || netbsd || openbsd

package datadir

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// acquire takes the lock on dir and releases it when the test ends.
func acquire(t *testing.T, dir string) *Lock {
	t.Helper()
	l, err := Acquire(dir)
	if err != nil {
		t.Fatalf("Acquire(%s): %v", dir, err)
	}
	t.Cleanup(func() {
		if err := l.Unlock(); err != nil {
			t.Error(err)
		}
	})
	return l
}

// wantLocked checks that err is a *LockedError for dir naming pid.
func wantLocked(t *testing.T, err error, dir string, pid int) {
	t.Helper()
	var le *LockedError
	if !errors.As(err, &le) {
		t.Fatalf("got error %v, want a *LockedError", err)
	}
	if le.Dir != dir || le.PID != pid {
		t.Fatalf("got LockedError{Dir: %q, PID: %d}, want {Dir: %q, PID: %d}", le.Dir, le.PID, dir, pid)
	}
	if want := fmt.Sprintf("(pid %d)", pid); !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q does not name %s", err, want)
	}
}

func TestAcquireExcludesSecondLockInProcess(t *testing.T) {
	dir := t.TempDir()
	first, err := Acquire(dir)
	if err != nil {
		t.Fatal(err)
	}
	// A second open file description in the same process conflicts too.
	_, err = Acquire(dir)
	wantLocked(t, err, dir, os.Getpid())

	if err := first.Unlock(); err != nil {
		t.Fatal(err)
	}
	if err := first.Unlock(); err != nil {
		t.Fatalf("second Unlock: %v", err)
	}
	b, err := os.ReadFile(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatalf("lock file gone after Unlock: %v", err)
	}
	if len(b) != 0 {
		t.Fatalf("lock file after Unlock holds %q, want it empty", b)
	}
	second := acquire(t, dir)
	if second.Dir() != dir {
		t.Fatalf("Dir() = %q, want %q", second.Dir(), dir)
	}
}

func TestAcquireCreatesDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	acquire(t, dir)
	if _, err := os.Stat(filepath.Join(dir, FileName)); err != nil {
		t.Fatal(err)
	}
}

func TestAcquireFailsOnUnusableDir(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for name, dir := range map[string]string{
		"dir is a file":      file,
		"dir under a file":   filepath.Join(file, "data"),
		"lock file is a dir": mkdirLockFile(t),
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Acquire(dir)
			var le *LockedError
			if err == nil || errors.As(err, &le) {
				t.Fatalf("Acquire(%s) = %v, want an error that is not a *LockedError", dir, err)
			}
			if !strings.Contains(err.Error(), dir) {
				t.Fatalf("error %q does not name %s", err, dir)
			}
		})
	}
}

// mkdirLockFile returns a data dir whose vrsky.lock is a directory.
func mkdirLockFile(t *testing.T) string {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, FileName), 0o700); err != nil {
		t.Fatal(err)
	}
	return dir
}

// deadPID returns the PID of a process that has exited.
func deadPID(t *testing.T) int {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("run %s: %v\n%s", os.Args[0], err, out)
	}
	return cmd.ProcessState.Pid()
}

func TestAcquireIgnoresStaleLockFile(t *testing.T) {
	for name, content := range map[string]string{
		"empty":                  "",
		"garbage":                "\x00\xff not a lock file\n=\npid=\n",
		"dead pid":               fmt.Sprintf("pid=%d\nhost=elsewhere\nstarted=2001-01-01T00:00:00Z\n", deadPID(t)),
		"live pid, not a holder": fmt.Sprintf("pid=%d\n", os.Getppid()),
		"our own pid":            fmt.Sprintf("pid=%d\n", os.Getpid()),
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, FileName)
			if err := os.WriteFile(path, []byte(content), 0o640); err != nil {
				t.Fatal(err)
			}
			acquire(t, dir)
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if pid, _ := parseHolder(b); pid != os.Getpid() {
				t.Fatalf("lock file names pid %d, want ours (%d):\n%s", pid, os.Getpid(), b)
			}
			if host, _ := os.Hostname(); !strings.Contains(string(b), "host="+host+"\n") {
				t.Fatalf("lock file does not name host %s:\n%s", host, b)
			}
		})
	}
}

func TestParseHolder(t *testing.T) {
	for _, tc := range []struct {
		in   string
		pid  int
		host string
	}{
		{"pid=1234\nhost=h1\nstarted=2026-01-01T00:00:00Z\n", 1234, "h1"},
		{"host=h1\npid=42\n", 42, "h1"},
		{"pid=1234\nhost=h1", 1234, ""}, // last line cut short
		{"pid=12", 0, ""},               // a write caught halfway
		{"pid=-3\n", 0, ""},
		{"pid=0\n", 0, ""},
		{"pid=x\n", 0, ""},
		{"1234\n", 0, ""},
		{"", 0, ""},
	} {
		if pid, host := parseHolder([]byte(tc.in)); pid != tc.pid || host != tc.host {
			t.Errorf("parseHolder(%q) = %d, %q; want %d, %q", tc.in, pid, host, tc.pid, tc.host)
		}
	}
}

func TestLockedErrorMessage(t *testing.T) {
	here, _ := os.Hostname()
	for _, tc := range []struct {
		err  LockedError
		want string
	}{
		{LockedError{Dir: "./data", PID: 1234}, "data dir ./data is in use by another vrsky serve (pid 1234); stop it or pass another --data"},
		{LockedError{Dir: "./data", PID: 1234, Host: here}, "data dir ./data is in use by another vrsky serve (pid 1234); stop it or pass another --data"},
		{LockedError{Dir: "/srv/vrsky", PID: 7, Host: "other-" + here}, "data dir /srv/vrsky is in use by another vrsky serve (pid 7 on host other-" + here + "); stop it or pass another --data"},
		{LockedError{Dir: "./data"}, "data dir ./data is in use by another vrsky serve (pid unknown); stop it or pass another --data"},
	} {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("%+v.Error() =\n%q, want\n%q", tc.err, got, tc.want)
		}
	}
}

// holdEnv tells the test binary, re-executed by TestAcquireHeldBySubprocess,
// to hold the lock on the directory it names.
const holdEnv = "VRSKY_DATADIR_TEST_HOLD"

// TestMain makes the test binary, re-executed by TestAcquireHeldBySubprocess
// with holdEnv set, a lock holder instead of a test run (so that nothing
// shows as a skipped test in a normal run): it takes the lock, says
// "locked" on stdout and holds the lock until stdin closes.
func TestMain(m *testing.M) {
	dir := os.Getenv(holdEnv)
	if dir == "" {
		os.Exit(m.Run())
	}
	l, err := Acquire(dir)
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(2)
	}
	fmt.Println("locked")
	_, _ = io.Copy(io.Discard, os.Stdin) // until the parent closes it or dies
	_ = l.Unlock()
	os.Exit(0)
}

func TestAcquireHeldBySubprocess(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), holdEnv+"="+dir)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Wait for "locked", or for the child to fail or to hang.
	ready := make(chan error, 1)
	go func() {
		var said []string
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if sc.Text() == "locked" {
				ready <- nil
				return
			}
			said = append(said, sc.Text())
		}
		ready <- fmt.Errorf("child's stdout ended before it said locked (%v):\n%s", sc.Err(), strings.Join(said, "\n"))
	}()
	select {
	case err = <-ready:
	case <-time.After(30 * time.Second):
		err = errors.New("child did not take the lock within 30s")
	}
	exited := make(chan struct{})
	t.Cleanup(func() {
		_ = stdin.Close()
		_ = cmd.Process.Kill()
		<-exited
	})
	if err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		close(exited)
		t.Fatal(err)
	}
	go func() {
		_, _ = io.Copy(io.Discard, stdout) // drain whatever the test framework prints
		_ = cmd.Wait()
		close(exited)
	}()

	_, err = Acquire(dir)
	wantLocked(t, err, dir, cmd.Process.Pid)

	// SIGKILL gives the child no chance to unlock: the kernel must.
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		l, err := Acquire(dir)
		if err == nil {
			if err := l.Unlock(); err != nil {
				t.Fatal(err)
			}
			break
		}
		wantLocked(t, err, dir, cmd.Process.Pid)
		if time.Now().After(deadline) {
			t.Fatalf("lock still held 10s after SIGKILL to pid %d: %v", cmd.Process.Pid, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	<-exited
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child ended with %v, want killed by SIGKILL", cmd.ProcessState)
	}
}

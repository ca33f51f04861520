// Package stale marks the temp dirs of test servers with their owner's pid
// and removes the dirs of owners that died without cleaning up (a test
// binary killed, or one whose package has no TestMain calling Main).
package stale

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const ownerFile = "owner.pid"

// Mark records the current process as the owner of dir.
func Mark(dir string) error {
	return os.WriteFile(filepath.Join(dir, ownerFile), []byte(strconv.Itoa(os.Getpid())), 0o644)
}

// Sweep removes dirs matching os.TempDir()/pattern whose owner process is
// gone and that have not changed for a minute. Errors are ignored: this is
// housekeeping.
func Sweep(pattern string) {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), pattern))
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, ownerFile))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 0 || pid == os.Getpid() || alive(pid) {
			continue
		}
		if st, err := os.Stat(d); err != nil || time.Since(st.ModTime()) < time.Minute {
			continue
		}
		_ = os.RemoveAll(d)
	}
}

func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// Package datadir keeps two `vrsky serve` processes from using one data
// directory at once. Two embedded NATS servers on one JetStream store, or two
// nodes sweeping one payload directory, corrupt each other's state; the
// second process must refuse to start instead.
//
// Acquire takes an exclusive flock(2) on DIR/vrsky.lock and writes the
// holder's PID, host and start time into the file, so that the process
// refused can say who holds the directory. The kernel drops the lock when
// the holder exits, however it exits (SIGKILL and crashes included), so a
// lock file left behind by a dead process, whatever it contains, never
// blocks a start: only a live holder of the flock does. The file itself is
// never removed, since removing it would let two processes lock two
// different files of the same name.
package datadir

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// FileName is the name of the lock file inside the data directory.
const FileName = "vrsky.lock"

// errHeld is what tryLock returns when another open file holds the lock.
var errHeld = errors.New("lock held")

// Lock is an exclusive lock on a data directory, held until Unlock or
// until the process exits.
type Lock struct {
	dir  string
	f    *os.File
	once sync.Once
	err  error
}

// LockedError is returned by Acquire when another process holds the lock
// on Dir.
type LockedError struct {
	// Dir is the data directory, as passed to Acquire.
	Dir string
	// PID is the holder's process ID, 0 if it could not be read (the
	// holder has not written it yet, or the file is unreadable).
	PID int
	// Host is the holder's host name, empty if unknown.
	Host string
}

// Error names the directory and its holder and says what to do.
func (e *LockedError) Error() string {
	holder := "pid unknown"
	if e.PID > 0 {
		holder = "pid " + strconv.Itoa(e.PID)
	}
	if host, _ := os.Hostname(); e.Host != "" && e.Host != host {
		holder += " on host " + e.Host
	}
	return fmt.Sprintf("data dir %s is in use by another vrsky serve (%s); stop it or pass another --data", e.Dir, holder)
}

// Acquire creates dir if it is missing and takes an exclusive lock on it,
// without waiting. If another process (or another Lock in this process)
// holds it, Acquire returns a *LockedError naming the holder.
func Acquire(dir string) (*Lock, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("data dir %s: %w", dir, err)
	}
	path := filepath.Join(dir, FileName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("data dir lock: %w", err)
	}
	if err := tryLock(f); err != nil {
		f.Close()
		if errors.Is(err, errHeld) {
			pid, host := readHolder(path)
			return nil, &LockedError{Dir: dir, PID: pid, Host: host}
		}
		return nil, fmt.Errorf("data dir lock %s: %w", path, err)
	}
	if err := writeHolder(f); err != nil {
		f.Close() // releases the lock
		return nil, fmt.Errorf("data dir lock %s: write holder: %w", path, err)
	}
	return &Lock{dir: dir, f: f}, nil
}

// Dir is the locked data directory, as passed to Acquire.
func (l *Lock) Dir() string { return l.dir }

// Unlock empties the lock file and releases the lock. It is safe to call
// more than once; later calls return the first call's result.
func (l *Lock) Unlock() error {
	l.once.Do(func() {
		// Clear the holder first, so that nobody reads a PID that no
		// longer holds the lock. The file stays: see the package comment.
		terr := l.f.Truncate(0)
		uerr := unlock(l.f)
		cerr := l.f.Close()
		if err := errors.Join(terr, uerr, cerr); err != nil {
			l.err = fmt.Errorf("data dir unlock %s: %w", l.dir, err)
		}
	})
	return l.err
}

// writeHolder replaces the content of f with the holder's description.
func writeHolder(f *os.File) error {
	host, _ := os.Hostname()
	content := fmt.Sprintf("pid=%d\nhost=%s\nstarted=%s\n", os.Getpid(), host, time.Now().UTC().Format(time.RFC3339))
	if err := f.Truncate(0); err != nil {
		return err
	}
	_, err := f.WriteAt([]byte(content), 0)
	return err
}

// readHolder reads the holder's PID and host from the lock file at path. A
// holder that has just taken the lock may not have written them yet, so it
// retries for a moment before giving up with 0 and "".
func readHolder(path string) (pid int, host string) {
	deadline := time.Now().Add(200 * time.Millisecond)
	for {
		b, err := os.ReadFile(path)
		if err == nil {
			if pid, host = parseHolder(b); pid > 0 {
				return pid, host
			}
		}
		if time.Now().After(deadline) {
			return 0, ""
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// parseHolder parses what writeHolder wrote; unknown or malformed lines are
// ignored, and so is an unterminated last line (a write caught halfway).
func parseHolder(b []byte) (pid int, host string) {
	b = b[:bytes.LastIndexByte(b, '\n')+1]
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if !ok {
			continue
		}
		switch k {
		case "pid":
			if n, err := strconv.Atoi(v); err == nil && n > 0 {
				pid = n
			}
		case "host":
			host = v
		}
	}
	return pid, host
}

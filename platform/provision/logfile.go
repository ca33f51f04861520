package provision

import (
	"errors"
	"io/fs"
	"os"
	"time"
)

// LogFile is the name, in a tenant's folder, of the file its instance's
// stdout and stderr go to. Each start moves the previous run's to
// LogFile+".1"; a run whose log grows past logLimit starts it over.
const LogFile = "nats.log"

// logLimit bounds LogFile, checked every logCheck.
const (
	logLimit = 8 << 20
	logCheck = time.Second
)

// openLog keeps the log at path as path+".1" and opens a new one, for a
// child's stdout and stderr. The child writes the file itself (it is its
// fd 1 and 2, not a pipe), so that its last words, and its clean shutdown,
// do not depend on its parent being alive to copy them; it opens with
// O_APPEND, so that the child can truncate it (boundLog).
func openLog(path string) (*os.File, error) {
	if err := os.Rename(path, path+".1"); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	return os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|os.O_APPEND, 0o600)
}

// boundLog empties f whenever it has grown past limit, checking every
// period, forever; it is meant for the child's stderr when that is a
// regular file.
func boundLog(f *os.File, limit int64, period time.Duration) {
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		return
	}
	for {
		time.Sleep(period)
		trimLog(f, limit)
	}
}

// trimLog empties f if it holds more than limit bytes. Writes after that
// start again at the file's beginning, as f is in append mode.
func trimLog(f *os.File, limit int64) {
	if st, err := f.Stat(); err == nil && st.Size() > limit {
		_ = f.Truncate(0)
	}
}

package provision

import (
	"errors"
	"io/fs"
	"os"
)

// LogFile is the name, in a tenant's folder, of the file its instance's
// stdout and stderr go to; the previous run's, or the part of this run's
// that outgrew logLimit, is in LogFile+".1".
const LogFile = "nats.log"

// logLimit bounds LogFile: past it the file moves to LogFile+".1" and a new
// one starts, so a tenant's logs take at most twice this.
const logLimit = 8 << 20

// logFile is a size-bounded log file that a child's output is copied to.
// One goroutine at a time writes it (exec.Cmd copies stdout and stderr
// through one goroutine when both are the same writer).
type logFile struct {
	path string
	f    *os.File
	n    int64
}

// openLog keeps the previous run's log as path+".1" and opens a new one.
func openLog(path string) (*logFile, error) {
	w := &logFile{path: path}
	if err := w.rotate(); err != nil {
		return nil, err
	}
	return w, nil
}

func (w *logFile) rotate() error {
	if w.f != nil {
		_ = w.f.Close()
		w.f = nil
	}
	if err := os.Rename(w.path, w.path+".1"); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	f, err := os.OpenFile(w.path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	w.f, w.n = f, 0
	return nil
}

// Write writes p, first rotating the file if p would take it past
// logLimit. A failure to write is not the child's: p is dropped, so that
// a full disk does not stall the child on a blocked pipe.
func (w *logFile) Write(p []byte) (int, error) {
	if w.n > 0 && w.n+int64(len(p)) > logLimit {
		if err := w.rotate(); err != nil {
			return len(p), nil
		}
	}
	if w.f == nil {
		return len(p), nil
	}
	n, _ := w.f.Write(p)
	w.n += int64(n)
	return len(p), nil
}

// Close closes the file.
func (w *logFile) Close() error {
	if w.f == nil {
		return nil
	}
	err := w.f.Close()
	w.f = nil
	return err
}

//go:build !(darwin || dragonfly || freebsd || illumos || linux || netbsd || openbsd)

package datadir

import "os"

// tryLock does nothing on systems without flock(2): the lock file is still
// written, but it does not exclude a second process.
func tryLock(*os.File) error { return nil }

// unlock does nothing on systems without flock(2).
func unlock(*os.File) error { return nil }

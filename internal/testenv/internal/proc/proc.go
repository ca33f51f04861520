// Package proc starts test servers as child processes that die with the
// test binary.
package proc

import (
	"os/exec"
	"runtime"
	"syscall"
)

// Start starts cmd with sig as its parent-death signal and returns a
// channel closed when it has exited.
//
// Linux sends the parent-death signal when the thread that forked the
// child ends, not the process. The Go runtime ends threads, for example
// when a goroutine that locked one exits, so cmd is started, and waited
// for, on a thread locked for its whole life.
func Start(cmd *exec.Cmd, sig syscall.Signal) (<-chan struct{}, error) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = sig
	started := make(chan error, 1)
	done := make(chan struct{})
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with this goroutine
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		_ = cmd.Wait()
		close(done)
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return done, nil
}

//go:build unix

package host

import (
	"os/exec"
	"syscall"
)

// dataHeadroom is added to the memory bound for the kernel's data limit,
// which counts the runtime's own mappings too: it is the backstop for one
// huge request, while watchMemory keeps the bound itself.
const dataHeadroom = 512 << 20

// limitData sets the child's RLIMIT_DATA (private writable memory), except
// under the race detector, whose shadow memory would pass any bound.
func limitData(memory int64) {
	if raceEnabled || memory <= 0 {
		return
	}
	lim := uint64(memory) + dataHeadroom
	_ = syscall.Setrlimit(syscall.RLIMIT_DATA, &syscall.Rlimit{Cur: lim, Max: lim})
}

// ownGroup starts the child in a process group of its own, so that a
// signal sent to the server's group (Ctrl-C) does not reach it first.
func ownGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}

// nice lowers the calling process's scheduling priority, so that a child
// compiling yields the CPU to the server it serves.
func nice() { _ = syscall.Setpriority(syscall.PRIO_PROCESS, 0, 10) }

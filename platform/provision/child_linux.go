//go:build linux

package provision

import "syscall"

// childAttr makes the kernel send the child SIGTERM when its parent dies,
// so that dedicated instances do not outlive VRSky (the child's SIGTERM
// handler shuts the server down cleanly). Linux delivers it when the
// thread that started the child ends, not only the process. Go ends a
// thread only when a goroutine locked to it (runtime.LockOSThread) returns
// without unlocking, which the provisioner never does; should another part
// of the process do so on the thread that started a child, that child
// would stop and its supervisor restart it, counted as a restart.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}

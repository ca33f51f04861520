//go:build !linux

package provision

import "syscall"

// childAttr sets nothing where there is no parent-death signal: the child
// notices that its parent is gone by polling its parent pid (watchParent).
func childAttr() *syscall.SysProcAttr { return nil }

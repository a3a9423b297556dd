//go:build !linux

package procs

import "syscall"

func sysProcAttr(group, _ bool) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: group}
}

//go:build !linux

package bench

import "syscall"

// sysProcAttr puts a benchmark's child in its own process group, so
// Ctrl-C reaches only the benchmark, which stops its children in order.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}

//go:build !linux

package main

import "syscall"

// benchSysProcAttr puts a benchmark's child in its own process group, so
// Ctrl-C reaches only the benchmark, which stops its children in order.
func benchSysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}

package bench

import "syscall"

// sysProcAttr puts a benchmark's child in its own process group (so
// Ctrl-C reaches only the benchmark, which stops its children in order)
// and has the kernel SIGKILL it if the benchmark itself dies without
// stopping it (a crash, or SIGKILL): a leftover region would hold the
// benchmark's addresses and answer the next run's readiness checks.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

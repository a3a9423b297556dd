package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// Every child process a benchmark starts is started, killed, stopped and
// waited for here (and in sysProcAttr): the regions of a cluster, and the
// pinned servers of bench redirect. It is one place to swap for the
// project's process package.

// proc is a running child: a region of a cluster.
type proc struct {
	name string // region name
	dir  string // its state directory
	cmd  *exec.Cmd
	done chan struct{} // closed once it has exited and err is set
	err  error
}

// start starts region i (again, after a kill: same arguments, same state),
// its output appended to its log.
func (b *cluster) start(i int) error {
	r := b.regions[i]
	rdir := filepath.Join(b.dir, r.Name)
	if err := os.MkdirAll(rdir, 0o755); err != nil {
		return err
	}
	logf, err := os.OpenFile(b.logPath(i), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(b.self, b.args(i)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Ctrl-C reaches only the benchmark, which stops the children itself.
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start %s: %w", r.Name, err)
	}
	c := &proc{name: r.Name, dir: rdir, cmd: cmd, done: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		logf.Close()
		close(c.done)
	}()
	b.procs[i] = c
	return nil
}

// kill SIGKILLs region i and waits until it is gone.
func (b *cluster) kill(i int) {
	c := b.procs[i]
	_ = c.cmd.Process.Kill()
	<-c.done
}

// stop stops every running child: SIGTERM, SIGKILL after 10 s.
func (b *cluster) stop() {
	var running []*proc
	for _, c := range b.procs {
		if c != nil {
			running = append(running, c)
		}
	}
	stopProcs(b.progress, running)
}

// stopProcs sends SIGTERM to every child and SIGKILL to those still
// running after 10 s.
func stopProcs(out io.Writer, procs []*proc) {
	for _, c := range procs {
		_ = c.cmd.Process.Signal(syscall.SIGCONT) // a paused region could not stop
		_ = c.cmd.Process.Signal(syscall.SIGTERM)
	}
	deadline := time.After(10 * time.Second)
	for _, c := range procs {
		select {
		case <-c.done:
		case <-deadline:
			fmt.Fprintf(out, "%s did not stop in 10s: killing it\n", c.name)
			_ = c.cmd.Process.Kill()
			<-c.done
		}
		_ = os.Remove(filepath.Join(c.dir, "pid"))
	}
}

// startPinned starts the binary self with args and extra environment env,
// limited to one core (GOMAXPROCS=1) and, when taskset is not empty, pinned
// to CPU 0; its output goes to stderr. bench redirect stops what it starts
// with stopPinned.
func startPinned(self, taskset string, args, env []string, stderr io.Writer) (*exec.Cmd, error) {
	argv := append([]string{self}, args...)
	if taskset != "" {
		argv = append([]string{taskset, "-c", "0"}, argv...)
	}
	c := exec.Command(argv[0], argv[1:]...)
	c.Env = append(append(os.Environ(), "GOMAXPROCS=1"), env...)
	c.Stderr = stderr
	if err := c.Start(); err != nil {
		return nil, err
	}
	return c, nil
}

// stopPinned sends SIGTERM to each of what startPinned started and waits
// for it, one after the other.
func stopPinned(procs []*exec.Cmd) {
	for _, p := range procs {
		_ = p.Process.Signal(syscall.SIGTERM)
		_ = p.Wait()
	}
}

// waitHTTPReady polls url until it answers 200, the process ends (exited)
// or the timeout passes.
func waitHTTPReady(ctx context.Context, url string, exited <-chan struct{}, timeout time.Duration) error {
	return waitHTTP(ctx, url, exited, timeout, http.StatusOK)
}

// waitHTTP polls url until it answers want.
func waitHTTP(ctx context.Context, url string, exited <-chan struct{}, timeout time.Duration, want int) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client := &http.Client{Timeout: time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == want {
				return nil
			}
		}
		select {
		case <-exited:
			return fmt.Errorf("exited before it was ready")
		case <-ctx.Done():
			return fmt.Errorf("not ready after %s", timeout)
		case <-t.C:
		}
	}
}

package procs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Spec says how to start a process.
type Spec struct {
	// Name names the process in errors and logs (a region name, "switch").
	Name string
	// Bin is the executable, Args its arguments, Env what is added to this
	// process's environment.
	Bin  string
	Args []string
	Env  []string
	// Dir, when set, is created before the start.
	Dir string
	// Log is the file (appended to) that gets the process's stdout and
	// stderr; when empty, Output does (nil: discarded).
	Log    string
	Output io.Writer
	// PIDFile, when set, gets the process's pid; Stop and Kill remove it.
	PIDFile string
	// Group puts the process in a process group of its own, so that a
	// Ctrl-C in the terminal reaches only the parent, which stops its
	// children in order; Kill then kills the whole group.
	Group bool
	// DieWithParent has the kernel SIGKILL the process when its parent
	// dies without stopping it (Linux only; ignored elsewhere).
	DieWithParent bool
}

// Proc is a started child process.
type Proc struct {
	name    string
	pidFile string
	group   bool
	cmd     *exec.Cmd
	done    chan struct{}
	err     error
}

// Start starts the process of spec. The returned Proc's Done is closed once
// the process has exited.
func Start(spec Spec) (*Proc, error) {
	if spec.Dir != "" {
		if err := os.MkdirAll(spec.Dir, 0o755); err != nil {
			return nil, err
		}
	}
	cmd := exec.Command(spec.Bin, spec.Args...)
	cmd.Env = append(inherited(os.Environ()), spec.Env...)
	var logf *os.File
	if spec.Log != "" {
		var err error
		logf, err = os.OpenFile(spec.Log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			return nil, err
		}
		cmd.Stdout, cmd.Stderr = logf, logf
	} else if spec.Output != nil {
		cmd.Stdout, cmd.Stderr = spec.Output, spec.Output
	}
	cmd.SysProcAttr = sysProcAttr(spec.Group, spec.DieWithParent)
	if err := cmd.Start(); err != nil {
		if logf != nil {
			logf.Close()
		}
		return nil, fmt.Errorf("start %s: %w", spec.Name, err)
	}
	if spec.PIDFile != "" {
		_ = os.WriteFile(spec.PIDFile, []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o644)
	}
	p := &Proc{name: spec.Name, pidFile: spec.PIDFile, group: spec.Group, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		if logf != nil {
			logf.Close()
		}
		close(p.done)
	}()
	return p, nil
}

// Name is the process's name in its Spec.
func (p *Proc) Name() string { return p.name }

// PID is the process's id.
func (p *Proc) PID() int { return p.cmd.Process.Pid }

// Done is closed once the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Err is how the process ended (nil for exit status 0); valid once Done is
// closed.
func (p *Proc) Err() error {
	<-p.done
	return p.err
}

// State is how the process exited (its exit code or signal); it waits
// for the exit.
func (p *Proc) State() *os.ProcessState {
	<-p.done
	return p.cmd.ProcessState
}

// Running reports whether the process has not exited yet.
func (p *Proc) Running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Signal sends sig to the process (SIGSTOP pauses it, SIGCONT resumes it).
func (p *Proc) Signal(sig syscall.Signal) error { return p.cmd.Process.Signal(sig) }

// ErrStillRunning is returned when a process outlives a SIGKILL's wait.
var ErrStillRunning = errors.New("still running after SIGKILL")

// Kill SIGKILLs the process (a crash, not a shutdown; its whole group when
// it has one) and waits up to wait for it to be gone.
func (p *Proc) Kill(wait time.Duration) error {
	p.kill()
	select {
	case <-p.done:
	case <-time.After(wait):
		return fmt.Errorf("%s (pid %d) %w for %s", p.name, p.PID(), ErrStillRunning, wait)
	}
	p.removePIDFile()
	return nil
}

func (p *Proc) kill() {
	if p.group {
		_ = syscall.Kill(-p.PID(), syscall.SIGKILL)
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
}

// Stop asks the process to shut down with SIGTERM and waits up to wait for
// it to exit; a process still running then is SIGKILLed and forced is true.
func (p *Proc) Stop(wait time.Duration) (forced bool, err error) {
	return p.Terminate(syscall.SIGTERM, wait)
}

// Terminate is Stop with another signal (SIGINT for a supervisor, which
// stops its own children on it).
func (p *Proc) Terminate(sig syscall.Signal, wait time.Duration) (forced bool, err error) {
	if err := p.Signal(sig); err != nil && p.Running() {
		return false, err
	}
	select {
	case <-p.done:
		p.removePIDFile()
		return false, nil
	case <-time.After(wait):
	}
	return true, p.Kill(10 * time.Second)
}

func (p *Proc) removePIDFile() {
	if p.pidFile != "" {
		_ = os.Remove(p.pidFile)
	}
}

// StopAll stops every process at once: SIGCONT (a paused process could not
// stop), SIGTERM, and SIGKILL for those still running after wait, saying so
// on out.
func StopAll(out io.Writer, procs []*Proc, wait time.Duration) {
	for _, p := range procs {
		_ = p.Signal(syscall.SIGCONT)
		_ = p.Signal(syscall.SIGTERM)
	}
	deadline := time.Now().Add(wait) // one deadline for all: a channel from time.After would fire for one process only
	for _, p := range procs {
		select {
		case <-p.done:
		case <-time.After(time.Until(deadline)):
			fmt.Fprintf(out, "%s did not stop in %s: killing it\n", p.name, wait)
			p.kill()
			<-p.done
		}
		p.removePIDFile()
	}
}

// WaitReady polls url (a region's /readyz) until it answers 200, the
// process exits, ctx ends or timeout passes.
func (p *Proc) WaitReady(ctx context.Context, url string, timeout time.Duration) error {
	return WaitHTTP(ctx, url, p.done, timeout, http.StatusOK)
}

// WaitHTTP polls url until it answers want, exited (may be nil) is closed,
// ctx ends or timeout passes. Redirects are not followed.
func WaitHTTP(ctx context.Context, url string, exited <-chan struct{}, timeout time.Duration, want int) error {
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

// RegionFlagEnv names the environment variables a region reads its flags
// from (SHORTENER_HTTP for --http, ...): cmd/shortener fills it from the
// region command's flags at start. A child does not inherit them (see
// inherited); empty, nothing is dropped.
var RegionFlagEnv = map[string]bool{}

// inherited is the environment a child gets from this process: all of it
// but the region flags' variables (RegionFlagEnv), which are for a region
// an operator starts by hand, not for the ones a supervisor or a test
// starts with flags of its own (a stray SHORTENER_GLOBAL_HOST would put
// every dev region's global member on one host). The API key and the
// secrets folder, which every tool reads the same way, stay.
func inherited(env []string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		if RegionFlagEnv[name] && name != "SHORTENER_API_KEY" && name != "SHORTENER_SECRETS" {
			continue
		}
		out = append(out, kv)
	}
	return out
}

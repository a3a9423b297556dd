package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

// devRegion is one region of the dev cluster: region N binds 127.0.N.1 with
// the same ports in every region.
type devRegion struct {
	Name  string
	Digit byte
	Host  string
}

// devRegions is the dev topology of DESIGN.md. "Region core" runs the first
// one; "Three regions" runs all three.
var devRegions = []devRegion{
	{Name: "us-east", Digit: '1', Host: "127.0.1.1"},
	{Name: "eu-west", Digit: '2', Host: "127.0.2.1"},
	{Name: "ap-south", Digit: '3', Host: "127.0.3.1"},
}

func devCmd() *cobra.Command {
	var dir, fsync, durability string
	var count int
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run the dev cluster (what make run starts): regions as child processes, state under var/dev",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if count < 1 || count > len(devRegions) {
				return usageError{fmt.Errorf("--regions must be 1 to %d", len(devRegions))}
			}
			return runDev(cmd.Context(), cmd.OutOrStdout(), devOptions{dir: dir, fsync: fsync, durability: durability}, devRegions[:count])
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "var/dev", "state directory of the dev cluster")
	cmd.Flags().StringVar(&fsync, "fsync", "always", "JetStream fsync: always or interval")
	cmd.Flags().IntVar(&count, "regions", 3, "how many regions to run (1 to 3)")
	cmd.Flags().StringVar(&durability, "durability", "local", "durability of creates: local or replicated")
	return cmd
}

type child struct {
	region devRegion
	dir    string // the region's state directory
	cmd    *exec.Cmd
	done   chan struct{}
	err    error
}

type devOptions struct {
	dir, fsync, durability string
}

func runDev(ctx context.Context, out io.Writer, o devOptions, regions []devRegion) error {
	dir := o.dir
	key, err := apiKey(filepath.Join(dir, "api-key"), true)
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	var children []*child
	defer func() { stopChildren(out, children) }()
	for _, r := range regions {
		c, err := startRegionChild(self, o, key, r, regions)
		if err != nil {
			return err
		}
		children = append(children, c)
	}
	fmt.Fprintf(out, "starting %d region(s); logs under %s/<region>/region.log\n", len(regions), dir)
	for _, c := range children {
		if err := waitHTTPReady(ctx, "http://"+c.region.Host+":8080/readyz", c.done, 60*time.Second); err != nil {
			return fmt.Errorf("%s: %w (see %s)", c.region.Name, err, filepath.Join(dir, c.region.Name, "region.log"))
		}
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "REGION\tHTTP\tNATS\tGLOBAL MEMBER\tPID\tSTATE")
	for _, c := range children {
		gh := c.region.Host[:len(c.region.Host)-1] + "2"
		fmt.Fprintf(tw, "%s\thttp://%s:8080\tnats://%s:4222\tnats://%s:4222\t%d\t%s\n", c.region.Name, c.region.Host, c.region.Host, gh, c.cmd.Process.Pid, filepath.Join(dir, c.region.Name))
	}
	tw.Flush()
	fmt.Fprintf(out, "\nAPI key: %s (in %s)\n", key, filepath.Join(dir, "api-key"))
	fmt.Fprintf(out, "try:     curl -si -H \"X-Api-Key: $(cat %s)\" -d '{\"url\":\"https://example.com/\"}' http://%s:8080/api/v1/links\n", filepath.Join(dir, "api-key"), regions[0].Host)
	fmt.Fprintln(out, "Ctrl-C stops the cluster.")

	var wg sync.WaitGroup
	for _, c := range children {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case <-c.done:
				if ctx.Err() == nil {
					fmt.Fprintf(out, "region %s exited: %v (log: %s)\n", c.region.Name, c.err, filepath.Join(dir, c.region.Name, "region.log"))
				}
			case <-ctx.Done():
			}
		}()
	}
	allDone := make(chan struct{})
	go func() { wg.Wait(); close(allDone) }()
	select {
	case <-ctx.Done():
		fmt.Fprintln(out, "\nstopping")
	case <-allDone:
		return fmt.Errorf("every region exited")
	}
	return nil
}

func startRegionChild(self string, o devOptions, key string, r devRegion, all []devRegion) (*child, error) {
	rdir := filepath.Join(o.dir, r.Name)
	if err := os.MkdirAll(rdir, 0o755); err != nil {
		return nil, err
	}
	logf, err := os.OpenFile(filepath.Join(rdir, "region.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, err
	}
	args := []string{"region", "--name", r.Name, "--digit", string(r.Digit),
		"--http", r.Host + ":8080", "--data", rdir, "--fsync", o.fsync, "--durability", o.durability}
	for _, p := range all {
		if p.Name != r.Name {
			args = append(args, "--peer", p.Name+"="+p.Host)
		}
	}
	cmd := exec.Command(self, args...)
	cmd.Env = append(os.Environ(), "SHORTENER_API_KEY="+key)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // Ctrl-C reaches the supervisor, which stops children in order
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", r.Name, err)
	}
	_ = os.WriteFile(filepath.Join(rdir, "pid"), []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o644)
	c := &child{region: r, dir: rdir, cmd: cmd, done: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		logf.Close()
		close(c.done)
	}()
	return c, nil
}

// stopChildren sends SIGTERM to every child and SIGKILL to those still
// running after 10 s.
func stopChildren(out io.Writer, children []*child) {
	for _, c := range children {
		_ = c.cmd.Process.Signal(syscall.SIGTERM)
	}
	deadline := time.After(10 * time.Second)
	for _, c := range children {
		select {
		case <-c.done:
		case <-deadline:
			fmt.Fprintf(out, "region %s did not stop in 10s: killing it\n", c.region.Name)
			_ = c.cmd.Process.Kill()
			<-c.done
		}
		_ = os.Remove(filepath.Join(c.dir, "pid"))
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

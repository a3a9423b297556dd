package main

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"shortener/drills"
	"shortener/procs"
	"slices"
	"strings"
	"testing"
)

// A runbook command: the file it is in and its words (shell-split).
type runbookCmd struct {
	file string
	line string
	args []string
}

var (
	fenceRe  = regexp.MustCompile("(?s)```sh\n(.*?)```")
	inlineRe = regexp.MustCompile("`([^`]+)`")
	// The commands a runbook may use: the project's own, and a few plain
	// tools to read its state.
	runbookTools = []string{"make", "./bin/shortener", "curl", "tail", "grep", "df", "du"}
)

// runbookCommands extracts every command of docs/runbooks/*.md: the lines
// of ```sh blocks, and inline code spans that start with one of the tools.
func runbookCommands(t *testing.T) []runbookCmd {
	t.Helper()
	files, err := filepath.Glob("../../docs/runbooks/*.md")
	procs, perr := filepath.Glob("../../docs/runbooks/procedures/*.md")
	files, err = append(files, procs...), errors.Join(err, perr)
	if err != nil || len(files) < 11 {
		t.Fatalf("runbooks: %v (%d files)", err, len(files))
	}
	var out []runbookCmd
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		text := string(data)
		add := func(line string) {
			line = strings.TrimSpace(line)
			if line == "" || strings.HasPrefix(line, "#") {
				return
			}
			args, err := shellWords(line)
			if err != nil {
				t.Errorf("%s: %q: %v", filepath.Base(f), line, err)
				return
			}
			out = append(out, runbookCmd{file: filepath.Base(f), line: line, args: args})
		}
		for _, m := range fenceRe.FindAllStringSubmatch(text, -1) {
			for _, l := range strings.Split(m[1], "\n") {
				add(l)
			}
		}
		outside := fenceRe.ReplaceAllString(text, "")
		for _, m := range inlineRe.FindAllStringSubmatch(strings.ReplaceAll(outside, "\n", " "), -1) {
			if w := strings.Fields(m[1]); len(w) > 0 && slices.Contains(runbookTools, w[0]) && len(w) > 1 {
				add(m[1])
			}
		}
	}
	return out
}

// shellWords splits a command line as sh would for the simple quoting the
// runbooks use (single and double quotes, no expansions).
func shellWords(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	in, quote := false, byte(0)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			} else {
				cur.WriteByte(c)
			}
		case c == '\'' || c == '"':
			quote, in = c, true
		case c == ' ' || c == '\t':
			if in {
				words = append(words, cur.String())
				cur.Reset()
				in = false
			}
		case c == '|' || c == ';' || c == '&' || c == '$' || c == '`' || c == '>' || c == '<':
			return nil, fmt.Errorf("shell syntax %q: keep runbook commands to one plain command", c)
		default:
			cur.WriteByte(c)
			in = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("unclosed quote")
	}
	if in {
		words = append(words, cur.String())
	}
	return words, nil
}

// makeTargets returns the targets of the Makefile.
func makeTargets(t *testing.T) map[string]bool {
	t.Helper()
	data, err := os.ReadFile("../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	targets := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^([a-z][a-z0-9-]*):`).FindAllStringSubmatch(string(data), -1) {
		targets[m[1]] = true
	}
	return targets
}

// checkShortener checks that args (after "shortener") name a runnable
// subcommand and that its flags and arguments parse.
func checkShortener(args []string) error {
	root := rootCmd()
	cmd, rest, err := root.Find(args)
	if err != nil {
		return err
	}
	if !cmd.Runnable() {
		return fmt.Errorf("%q is not a command that runs (give a subcommand)", cmd.CommandPath())
	}
	if err := cmd.ParseFlags(rest); err != nil {
		return fmt.Errorf("%s: %w", cmd.CommandPath(), err)
	}
	if err := cmd.ValidateArgs(cmd.Flags().Args()); err != nil {
		return fmt.Errorf("%s: %w", cmd.CommandPath(), err)
	}
	return nil
}

// The read-only HTTP routes a runbook may curl: the region's and the
// switch admin API's GETs (the regions tier GETs each one for real).
var runbookRoutes = []string{"/healthz", "/readyz", "/metrics", "/api/v1/regions", "/status", "/status/data", "/v1/state"}

// checkRunbookCmd checks one command without running it.
func checkRunbookCmd(c runbookCmd, targets map[string]bool) error {
	a := c.args
	switch a[0] {
	case "make":
		if len(a) < 2 || !targets[a[1]] {
			return fmt.Errorf("no make target %q", strings.Join(a[1:], " "))
		}
		for _, v := range a[2:] {
			name, val, ok := strings.Cut(v, "=")
			switch {
			case !ok:
				return fmt.Errorf("make %s: %q is not VAR=value", a[1], v)
			case name == "REGION":
				if _, ok := procs.RegionNamed(devRegions, val); !ok {
					return fmt.Errorf("make %s: no dev region %q", a[1], val)
				}
			case name == "BACKUP" && a[1] == "restore":
				if !strings.HasPrefix(val, "var/backups/") {
					return fmt.Errorf("make restore: BACKUP=%q is not under var/backups", val)
				}
			case name == "NAME" && a[1] == "drill":
				if !slices.Contains(drills.Names(), val) {
					return fmt.Errorf("make drill: no drill %q", val)
				}
			case name == "DEVFLAGS" && a[1] == "run":
				if err := checkShortener(append([]string{"dev"}, strings.Fields(val)...)); err != nil {
					return err
				}
			default:
				return fmt.Errorf("make %s: unknown variable %s", a[1], name)
			}
		}
		return nil
	case "./bin/shortener":
		return checkShortener(a[1:])
	case "curl":
		var u string
		for _, w := range a[1:] {
			if strings.HasPrefix(w, "http") {
				u = w
			} else if w != "-s" && w != "-si" && w != "-i" {
				return fmt.Errorf("curl: only -s/-i and a URL (a GET), not %q", w)
			}
		}
		p, err := url.Parse(u)
		if err != nil || p.Host == "" {
			return fmt.Errorf("curl: no URL")
		}
		if !slices.Contains(runbookRoutes, p.Path) {
			return fmt.Errorf("curl: %s is not a read-only route of a region or the switch", p.Path)
		}
		return nil
	case "tail", "grep", "df", "du":
		last := a[len(a)-1]
		if !strings.HasPrefix(last, "var/dev") {
			return fmt.Errorf("%s: read only the dev cluster's state under var/dev, not %q", a[0], last)
		}
		return nil
	}
	return fmt.Errorf("%q is not a command a runbook may use (%s)", a[0], strings.Join(runbookTools, ", "))
}

// TestRunbookCommandsExist checks every command in every runbook: a make
// target of the Makefile (with a dev region), a shortener subcommand whose
// flags and arguments parse, a GET of a real read-only route, or a look at
// var/dev. The regions tier runs the read-only ones against live regions.
func TestRunbookCommandsExist(t *testing.T) {
	cmds := runbookCommands(t)
	targets := makeTargets(t)
	seen := map[string]bool{}
	for _, c := range cmds {
		if err := checkRunbookCmd(c, targets); err != nil {
			t.Errorf("%s: %s: %v", c.file, c.line, err)
		}
		seen[c.args[0]] = true
	}
	for _, want := range []string{"make", "./bin/shortener", "curl"} {
		if !seen[want] {
			t.Errorf("no runbook uses %s: is the extraction broken?", want)
		}
	}
	if len(cmds) < 40 {
		t.Errorf("only %d commands found in the runbooks", len(cmds))
	}
}

// The checker itself refuses what does not exist.
func TestRunbookCheckerRefuses(t *testing.T) {
	targets := map[string]bool{"status": true, "region-up": true}
	for _, line := range []string{
		"make nosuchtarget",
		"make region-up REGION=mars",
		"./bin/shortener nosuch",
		"./bin/shortener switch",
		"./bin/shortener status --nosuchflag",
		"./bin/shortener switch override us-east",
		"curl -s http://127.0.1.1:8080/nosuch",
		"kubectl get pods",
		"tail /etc/passwd",
	} {
		args, err := shellWords(line)
		if err != nil {
			t.Fatal(err)
		}
		if err := checkRunbookCmd(runbookCmd{line: line, args: args}, targets); err == nil {
			t.Errorf("%q passed the check", line)
		}
	}
	if _, err := shellWords("make status | tee x"); err == nil {
		t.Error("a pipe passed the check")
	}
}

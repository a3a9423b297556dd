package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"testing"
	"time"

	"shortener/procs"
)

// TestMain lets tests run this binary as a child process: with
// SHORTENER_CHILD=1 the test binary is the shortener command.
func TestMain(m *testing.M) {
	if os.Getenv("SHORTENER_CHILD") == "1" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// startTestProc starts this test binary as the shortener command with
// args, its output appended to log; the test's cleanup SIGKILLs it.
func startTestProc(t *testing.T, name, log string, args []string) (*procs.Proc, error) {
	p, err := procs.Start(procs.Spec{Name: name, Bin: os.Args[0], Args: args, Env: []string{"SHORTENER_CHILD=1"}, Log: log})
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { _ = p.Kill(time.Minute) })
	return p, nil
}

func decodeJSON(resp *http.Response, v any) error {
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

package main

import (
	"os"
	"testing"
)

// TestMain lets tests run this binary as a child process: with
// SHORTENER_CHILD=1 the test binary is the shortener command.
func TestMain(m *testing.M) {
	if os.Getenv("SHORTENER_CHILD") == "1" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

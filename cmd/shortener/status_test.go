package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestStatusFlags: a --region that is not NAME=URL is a usage error (the
// table itself is package status's, tested there).
func TestStatusFlags(t *testing.T) {
	var out, errb bytes.Buffer
	code := run([]string{"status", "--switch", "", "--region", "ap-south"}, &out, &errb)
	if code != 2 || !strings.Contains(errb.String(), `--region "ap-south": want NAME=http://host:port`) {
		t.Fatalf("exit %d: %s%s", code, out.String(), errb.String())
	}
}

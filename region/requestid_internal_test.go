package region

import (
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// New request ids are unique across blocks and goroutines, numbered from 1
// in base 36 after the process's prefix; a sane incoming one is kept, any
// other replaced.
func TestRequestIDs(t *testing.T) {
	tel, err := newTelemetry("us-east", slog.New(slog.DiscardHandler), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	const workers, each = 4, 3 * requestIDBlock
	got := make([][]string, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for range each {
				got[w] = append(got[w], tel.requestID(http.Header{})...)
			}
		})
	}
	wg.Wait()
	seen := map[uint64]bool{}
	for _, ids := range got {
		for _, id := range ids {
			prefix, num, ok := strings.Cut(id, "-")
			n, err := strconv.ParseUint(num, 36, 64)
			if !ok || prefix != tel.idPrefix || err != nil || n == 0 || n > workers*each || seen[n] {
				t.Fatalf("request id %q: a duplicate or malformed (prefix %q)", id, tel.idPrefix)
			}
			seen[n] = true
		}
	}
	if len(seen) != workers*each {
		t.Fatalf("%d distinct ids, want %d", len(seen), workers*each)
	}
	for in, kept := range map[string]bool{"req-42": true, "": false, "has space": false, strings.Repeat("a", 129): false} {
		h := http.Header{}
		if in != "" {
			h.Set("X-Request-Id", in)
		}
		out := tel.requestID(h)
		if len(out) != 1 || (out[0] == in) != kept || out[0] == "" {
			t.Errorf("incoming %q: answered %q (kept: want %v)", in, out, kept)
		}
		if grown := append(out, "x"); &grown[0] == &out[0] { // cap 1: an append must not write into what others share
			t.Errorf("incoming %q: the answer can be appended to in place", in)
		}
	}
}

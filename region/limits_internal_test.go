package region

import (
	"strings"
	"testing"
	"unicode/utf8"
	"unsafe"
)

// TestTruncated: a header a click keeps is at most maxClickHeader bytes,
// cut at a character boundary, a copy of its own when cut and the header
// itself when short.
func TestTruncated(t *testing.T) {
	short := "Mozilla/5.0"
	if got := truncated(short); got != short {
		t.Errorf("short: %q", got)
	}
	for _, long := range []string{strings.Repeat("a", 5000), strings.Repeat("é", 3000), "x" + strings.Repeat("日本", 1000)} {
		got := truncated(long)
		if len(got) > maxClickHeader || len(got) < maxClickHeader-3 || !utf8.ValidString(got) || !strings.HasPrefix(long, got) {
			t.Errorf("%d bytes of %q...: kept %d bytes, valid %t", len(long), long[:4], len(got), utf8.ValidString(got))
		}
		if len(got) > 0 && unsafe.StringData(got) == unsafe.StringData(long) {
			t.Error("the kept part shares the header's memory")
		}
	}
}

package region

import (
	"net/netip"
	"strings"
	"testing"
	"time"
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

// TestFullLimiterStartsNewAddressesLow: with the buckets of limitedClients
// addresses kept, a new address gets one miss, not a burst, so that a
// client cycling through more addresses than that (IPv6 /64s of a /48)
// cannot evict its own buckets back to full ones; before the table is
// full a new address gets the whole burst.
func TestFullLimiterStartsNewAddressesLow(t *testing.T) {
	m := newMissLimiter(Limits{PerSecond: 0.001, Burst: 5})
	now := time.Now()
	first := netip.MustParseAddr("2001:db8::1")
	for i := range 5 {
		if ok, _ := m.allowAddr(first, now); !ok {
			t.Fatalf("miss %d of a new address in an empty table refused", i)
		}
	}
	if ok, wait := m.allowAddr(first, now); ok || wait <= 0 {
		t.Fatalf("the 6th miss: allowed %t, wait %v", ok, wait)
	}
	if ok, _ := m.allowAddr(netip.MustParseAddr("2001:db8::2"), now); ok {
		t.Fatal("another address of the same /64 has a bucket of its own")
	}
	for i := range limitedClients {
		var b [16]byte
		b[0], b[1], b[2], b[3] = 0x20, 0x01, 0x0d, 0xb9
		b[4], b[5], b[6], b[7] = byte(i>>24), byte(i>>16), byte(i>>8), byte(i)
		m.allowAddr(netip.AddrFrom16(b), now)
	}
	fresh := netip.MustParseAddr("2001:db8:ffff:ffff::1")
	if ok, _ := m.allowAddr(fresh, now); !ok {
		t.Fatal("a new address's first miss with the table full refused")
	}
	if ok, _ := m.allowAddr(fresh, now); ok {
		t.Fatal("a new address's second miss with the table full allowed: it started with a full bucket")
	}
}

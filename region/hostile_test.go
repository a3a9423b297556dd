package region_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"shortener/region"
	"shortener/region/regiontest"
)

// hostileMarker is in every made-up method, path, header and address of
// the hostile traffic: a label value holding it is a client's input.
const hostileMarker = "zqx"

// The kinds of hostile request: a method (the last one made up anew each
// time), a path, with or without a (wrong) API key, and from a new
// address or from the scanner's one.
var (
	hostileMethods = []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPatch, http.MethodDelete, http.MethodOptions, ""}
	hostilePaths   = 7
)

// hostileRequest is request i of the hostile traffic, of the kind (m, p,
// key, scanner): made-up and real methods, unknown codes and paths, and
// headers a client chooses freely (User-Agent and Referer up to 4 KB,
// request ids of every shape, a wrong API key, X-Forwarded-For naming a
// new address each time, believed since the test's loopback is a trusted
// proxy). What varies at random within a kind (lengths, digits) does not
// change which route, method label and status it gets.
func hostileRequest(rng *rand.Rand, base, code string, i, m, p int, key, scanner bool) *http.Request {
	method := hostileMethods[m]
	if method == "" {
		method = fmt.Sprintf("%s%08X", strings.ToUpper(hostileMarker), rng.Uint32())
	}
	var path string
	switch p {
	case 0:
		path = "/" + code // served: its click is recorded with the headers below
	case 1:
		path = fmt.Sprintf("/%s%05x", hostileMarker, rng.Uint32()>>12) // a well-formed code no link has
	case 2:
		path = fmt.Sprintf("/api/v1/links/%s%05x", hostileMarker, rng.Uint32()>>12)
	case 3:
		path = fmt.Sprintf("/api/v1/%s%08x/x", hostileMarker, rng.Uint32())
	case 4:
		path = fmt.Sprintf("/status/%s%08x", hostileMarker, rng.Uint32())
	case 5:
		path = "/" + hostileMarker + "/" + strings.Repeat("a/", 1+rng.IntN(200))
	default:
		path = "/" + code + "?" + hostileMarker + "=" + strings.Repeat("q", rng.IntN(2000))
	}
	var body io.Reader
	if method == http.MethodPost || method == http.MethodPatch {
		body = bytes.NewReader([]byte(`{"url":"https://` + hostileMarker + `.example/","` + hostileMarker + `":1}`))
	}
	req, _ := http.NewRequest(method, base+path, body)
	long := func(n int) string {
		return hostileMarker + strings.Repeat(string(rune('a'+i%26)), rng.IntN(n)) + fmt.Sprint(i)
	}
	req.Header.Set("User-Agent", long(4000))
	req.Header.Set("Referer", "https://"+hostileMarker+fmt.Sprint(rng.Uint32())+".example/"+long(4000))
	switch rng.IntN(3) {
	case 0:
		req.Header.Set("X-Request-Id", long(300))
	case 1:
		req.Header.Set("X-Request-Id", hostileMarker+"<\xff\xfe \"{}>"+fmt.Sprint(i)) // not a token: replaced by an id of the region's
	}
	if key {
		req.Header.Set("X-Api-Key", hostileMarker+fmt.Sprint(rng.Uint64()))
	}
	// A new address each time, or the scanner's one (spent: it gets 429s
	// on misses). About 30,000 of the new addresses miss: the limiter's
	// 65,536 buckets do not fill here (TestFullLimiterStartsNewAddressesLow
	// covers a full one).
	a := [4]byte{11, 0, 0, 1}
	if !scanner {
		r := rng.Uint32()
		a[1], a[2], a[3] = byte(r>>16), byte(r>>8), 2+byte(r)%250
	}
	req.Header.Set("X-Forwarded-For", netip.AddrFrom4(a).String())
	return req
}

// seriesKeys is the scrape's series (name and labels), and whether any
// label value holds hostileMarker.
func seriesKeys(t *testing.T, base string) (map[string]bool, []string) {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]bool{}
	var hostile []string
	for _, l := range strings.Split(string(b), "\n") {
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		key := l[:strings.LastIndexByte(l, ' ')]
		keys[key] = true
		if strings.Contains(strings.ToLower(key), hostileMarker) {
			hostile = append(hostile, key)
		}
	}
	return keys, hostile
}

func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// 100,000 hostile requests (made-up methods, unknown codes and paths, long
// and ever-new headers, an address of their own each, or a scanner's)
// leave the region's metric series as one request of each kind left them,
// with no label holding a client's input, and the heap within 50 MB of
// where it started. Every label is from a closed set and every queue and
// memo is bounded; before, 500 made-up methods grew the series from about
// 200 to over 9,000.
func TestHostileTrafficLeavesSeriesAndHeapBounded(t *testing.T) {
	n := 100_000
	if raceEnabled {
		n = 10_000 // the race detector makes each request about ten times dearer
	}
	cfg := regiontest.Config("us-east", t.TempDir())
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	withMetrics(t, &cfg)
	cfg.SwitchAdmin = ""
	cfg.ClickCommitEvery = time.Second // the freshness wait below
	// Five misses per address, then one per 100 s: the scanner is spent
	// for the whole test, a new address never is.
	cfg.Limits = region.Limits{PerSecond: 0.01, Burst: 5, TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}
	reg := regiontest.Start(t, cfg)
	code := mustCreate(t, regiontest.NewClient(reg.URL), "https://example.com/hostile").Str("code")

	transport := &http.Transport{MaxIdleConnsPerHost: 16}
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	var statuses [600]atomic.Int64
	var failed atomic.Int64
	var firstErr atomic.Pointer[error]
	do := func(req *http.Request) {
		resp, err := client.Do(req)
		if err != nil {
			failed.Add(1)
			firstErr.CompareAndSwap(nil, &err)
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode > 0 && resp.StatusCode < len(statuses) {
			statuses[resp.StatusCode].Add(1)
		}
	}

	seriesKeys(t, reg.URL) // the scrape's own series (GET /metrics 200) are in the next
	heapBefore := heapInUse()
	// One request of every kind (two of the scanner's, whose first misses
	// spend its bucket), then wait for the click counts' gauge, which
	// appears once the first clicks are committed.
	rng := rand.New(rand.NewPCG(1, 2))
	for m := range hostileMethods {
		for p := range hostilePaths {
			for _, key := range []bool{false, true} {
				do(hostileRequest(rng, reg.URL, code, 0, m, p, key, false))
				for range 6 {
					do(hostileRequest(rng, reg.URL, code, 0, m, p, key, true))
				}
			}
		}
	}
	regiontest.WaitFor(t, 15*time.Second, func() error {
		if keys, _ := seriesKeys(t, reg.URL); !slices.ContainsFunc(slices.Collect(maps.Keys(keys)), func(k string) bool {
			return strings.HasPrefix(k, "shortener_analytics_freshness_seconds")
		}) {
			return errors.New("no click counted yet")
		}
		return nil
	})
	before, hostile := seriesKeys(t, reg.URL)

	var wg sync.WaitGroup
	var next atomic.Int64
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 3))
			for i := int(next.Add(1)); i <= n; i = int(next.Add(1)) {
				do(hostileRequest(rng, reg.URL, code, i, rng.IntN(len(hostileMethods)), rng.IntN(hostilePaths), rng.IntN(2) == 0, rng.IntN(8) == 0))
			}
		}()
	}
	wg.Wait()
	after, hostileAfter := seriesKeys(t, reg.URL)
	heapAfter := heapInUse()

	answered := map[int]int64{}
	var total int64
	for s := range statuses {
		if v := statuses[s].Load(); v > 0 {
			answered[s] = v
			total += v
		}
	}
	t.Logf("%d requests: answers by status %v, %d failed; series %d after one of each kind, %d after all; heap %d MB before, %d MB after",
		n, answered, failed.Load(), len(before), len(after), heapBefore>>20, heapAfter>>20)
	if e := firstErr.Load(); e != nil {
		t.Logf("first failed request: %v", *e)
	}
	if total < int64(n)*9/10 {
		t.Fatalf("only %d of %d requests answered: the check saw too little", total, n)
	}
	for _, s := range []int{http.StatusFound, http.StatusNotFound, http.StatusUnauthorized, http.StatusMethodNotAllowed, http.StatusTooManyRequests} {
		if answered[s] == 0 {
			t.Errorf("no %d among the answers: the traffic did not reach that path", s)
		}
	}
	if hostile = append(hostile, hostileAfter...); len(hostile) > 0 {
		t.Errorf("%d series carry a client's input in a label, e.g. %s", len(hostile), hostile[0])
	}
	var grown []string
	for k := range after {
		if !before[k] {
			grown = append(grown, k)
		}
	}
	if len(grown) > 0 {
		t.Errorf("%d series appeared after one request of each kind, e.g. %v", len(grown), grown[:min(5, len(grown))])
	}
	if heapAfter > heapBefore+50<<20 {
		t.Errorf("heap grew from %d MB to %d MB (bound: 50 MB more)", heapBefore>>20, heapAfter>>20)
	}
}

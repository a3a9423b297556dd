package regiontest

import (
	"net/http"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Metrics are the metric families of one scrape.
type Metrics map[string]*dto.MetricFamily

// Scrape GETs base + "/metrics" and parses it.
func Scrape(t testing.TB, base string) Metrics {
	t.Helper()
	return ScrapeWith(t, http.DefaultClient, base)
}

// ScrapeWith is Scrape through client (one that trusts a region's HTTPS
// certificate, say).
func ScrapeWith(t testing.TB, client *http.Client, base string) Metrics {
	t.Helper()
	resp, err := client.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s/metrics: %s", base, resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return fams
}

// series returns the first series of family name whose labels include want.
func (m Metrics) series(name string, want map[string]string) *dto.Metric {
	f := m[name]
	if f == nil {
		return nil
	}
next:
	for _, s := range f.GetMetric() {
		got := map[string]string{}
		for _, l := range s.GetLabel() {
			got[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if got[k] != v {
				continue next
			}
		}
		return s
	}
	return nil
}

// Value returns the value of the series of family name whose labels
// include want (a counter, a gauge, or a histogram's count), and whether
// there is one.
func (m Metrics) Value(name string, want map[string]string) (float64, bool) {
	s := m.series(name, want)
	switch {
	case s == nil:
		return 0, false
	case s.Counter != nil:
		return s.GetCounter().GetValue(), true
	case s.Gauge != nil:
		return s.GetGauge().GetValue(), true
	case s.Histogram != nil:
		return float64(s.GetHistogram().GetSampleCount()), true
	}
	return 0, false
}

// Bucket returns the cumulative count of the histogram series at upper
// bound le.
func (m Metrics) Bucket(name string, want map[string]string, le float64) (uint64, bool) {
	s := m.series(name, want)
	for _, b := range s.GetHistogram().GetBucket() {
		if b.GetUpperBound() == le {
			return b.GetCumulativeCount(), true
		}
	}
	return 0, false
}

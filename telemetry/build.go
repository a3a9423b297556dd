package telemetry

import (
	"runtime"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
)

// BuildInfo is what the binary knows of its own build: the module version
// (v1.2.3 when built from a tag through the module proxy, "(devel)" from a
// checkout), the commit and whether the tree had changes (from the VCS
// stamp go build adds in a git checkout; empty without one), and Go's
// version.
type BuildInfo struct {
	Version  string `json:"version"`
	Revision string `json:"revision"`
	Time     string `json:"time"`
	Modified bool   `json:"modified"`
	Go       string `json:"go"`
}

// Build reads the running binary's BuildInfo.
func Build() BuildInfo {
	b := BuildInfo{Version: "(unknown)", Go: runtime.Version()}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return b
	}
	b.Version = info.Main.Version
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			b.Revision = s.Value
		case "vcs.time":
			b.Time = s.Value
		case "vcs.modified":
			b.Modified = s.Value == "true"
		}
	}
	return b
}

// String is the one line shortener version prints: the version, the
// commit (short, "-dirty" when the tree had changes) and its time, and Go.
func (b BuildInfo) String() string {
	s := "shortener " + b.Version
	if b.Revision != "" {
		rev := b.Revision
		if len(rev) > 12 {
			rev = rev[:12]
		}
		if b.Modified {
			rev += "-dirty"
		}
		s += " " + rev
		if b.Time != "" {
			s += " " + b.Time
		}
	}
	return s + " " + b.Go
}

// buildInfoGauge is shortener_build_info: always 1, its labels saying
// which build is running (one series per process).
func buildInfoGauge(b BuildInfo) prometheus.Gauge {
	modified := "false"
	if b.Modified {
		modified = "true"
	}
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "shortener_build_info",
		Help:        "Always 1; the labels say which build of shortener is running (version, commit, whether the tree had changes, Go).",
		ConstLabels: prometheus.Labels{"version": b.Version, "revision": b.Revision, "modified": modified, "goversion": b.Go},
	})
	g.Set(1)
	return g
}

package drills

import (
	"context"
	"strings"
	"time"

	"shortener/procs"
)

// DevCluster is the dev cluster of package procs (make run) running on dir
// with topology topo and API key key, as the drills see it: its regions
// (their clients on PREFIX.N.10), its switch, and Down, Stop,
// ResetProjection and Up asked of its supervisor over the control socket,
// as make region-down, region-stop and region-up do. The caller adds
// Drain, SwitchAnswer, Verify and BackupRestore. It does no I/O.
func DevCluster(dir string, topo procs.Topology, key string) *Cluster {
	c := &Cluster{Zone: topo.Zone, SwitchDNS: topo.SwitchDNS, APIKey: key}
	for _, r := range topo.Regions {
		c.Regions = append(c.Regions, Region{Name: r.Name, URL: r.URL(),
			ClientAddr: strings.TrimSuffix(r.Host, ".1") + ".10"})
	}
	c.Down = func(ctx context.Context, name string) (time.Time, error) {
		p, err := procs.Control(ctx, dir, "/down/"+name)
		return p.At, err
	}
	c.Stop = func(ctx context.Context, name string) (time.Time, time.Duration, bool, error) {
		p, err := procs.Control(ctx, dir, "/stop/"+name)
		return p.At, p.Exited.Sub(p.At), p.Forced, err
	}
	c.ResetProjection = func(ctx context.Context, name string) error {
		_, err := procs.Control(ctx, dir, "/reset-projection/"+name)
		return err
	}
	c.Up = func(ctx context.Context, name string) (time.Time, error) {
		p, err := procs.Control(ctx, dir, "/up/"+name)
		return p.At, err
	}
	return c
}

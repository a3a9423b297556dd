package bench

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// A peak-throughput round measures the server only when the server's core
// was saturated: when the load client cannot send fast enough, the server
// idles between requests and the round measures the client. The check
// reads /proc, two samples around the round: how busy the measured CPU was
// (/proc/stat), how much CPU time the server process got
// (/proc/<pid>/stat), and how long its threads wanted a CPU, running or
// waiting for one (/proc/<pid>/task/*/schedstat). On a machine shared with
// other work the core is busy whatever the server does: then only the
// server's demand tells whether it was waiting for requests.

// minBusy is the share of the round's time the measured core (or, without
// pinning, the server process) must have been busy for a peak to count.
const minBusy = 0.95

// cpuTimes is one CPU's line of /proc/stat, in USER_HZ ticks.
type cpuTimes struct {
	idle  uint64 // idle + iowait
	irq   uint64 // irq + softirq: the kernel's network work, whoever caused it
	total uint64 // every field but guest and guest_nice (already in user and nice)
}

// parseProcStat returns the per-CPU lines ("cpu0", "cpu1", ...) of a
// /proc/stat text by CPU number; the aggregate "cpu" line is left out.
// Fields: user nice system idle iowait irq softirq steal [guest guest_nice].
func parseProcStat(text string) (map[int]cpuTimes, error) {
	out := map[int]cpuTimes{}
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20) // the intr line is long
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || !strings.HasPrefix(f[0], "cpu") || f[0] == "cpu" {
			continue
		}
		n, err := strconv.Atoi(strings.TrimPrefix(f[0], "cpu"))
		if err != nil || n < 0 {
			return nil, fmt.Errorf("/proc/stat: bad CPU name %q", f[0])
		}
		if len(f) < 5 {
			return nil, fmt.Errorf("/proc/stat: %s has %d fields, want at least 4", f[0], len(f)-1)
		}
		var t cpuTimes
		for i, s := range f[1:min(len(f), 9)] { // up to steal
			v, err := strconv.ParseUint(s, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("/proc/stat: %s field %d: %q is not a count", f[0], i+1, s)
			}
			t.total += v
			switch i {
			case 3, 4: // idle, iowait
				t.idle += v
			case 5, 6: // irq, softirq
				t.irq += v
			}
		}
		out[n] = t
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("/proc/stat: %w", err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("/proc/stat: no per-CPU line")
	}
	return out, nil
}

// readCPU reads CPU cpu's times from /proc/stat.
func readCPU(cpu int) (cpuTimes, error) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuTimes{}, err
	}
	all, err := parseProcStat(string(data))
	if err != nil {
		return cpuTimes{}, err
	}
	t, ok := all[cpu]
	if !ok {
		return cpuTimes{}, fmt.Errorf("/proc/stat: no cpu%d", cpu)
	}
	return t, nil
}

// busyShare is the share of the time between two samples of one CPU that
// it was not idle, and the share it spent in interrupts (irq, softirq),
// each in [0, 1]; an error when no time passed or the counters went back
// (not two samples of the same CPU).
func busyShare(before, after cpuTimes) (busy, irq float64, err error) {
	if after.total < before.total || after.idle < before.idle || after.irq < before.irq {
		return 0, 0, fmt.Errorf("/proc/stat went back: %+v then %+v", before, after)
	}
	dt := after.total - before.total
	if dt == 0 {
		return 0, 0, fmt.Errorf("/proc/stat: no time passed between the samples")
	}
	di, dq := after.idle-before.idle, after.irq-before.irq
	if di+dq > dt {
		return 0, 0, fmt.Errorf("/proc/stat: idle and interrupts grew by %d of %d ticks", di+dq, dt)
	}
	return float64(dt-di) / float64(dt), float64(dq) / float64(dt), nil
}

// userHZ is the unit of /proc's CPU times: USER_HZ, 100 on every Linux
// architecture Go supports (part of the kernel's ABI, whatever CONFIG_HZ).
const userHZ = 100

// parseProcessCPU returns utime + stime, in USER_HZ ticks, of a
// /proc/<pid>/stat text. The second field (the command name, in
// parentheses) may itself hold spaces and parentheses: the fields are
// counted after the last ')'.
func parseProcessCPU(text string) (uint64, error) {
	i := strings.LastIndexByte(text, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/<pid>/stat: no command name in %q", text)
	}
	f := strings.Fields(text[i+1:])
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/<pid>/stat: %d fields after the command name, want at least 13", len(f))
	}
	var sum uint64
	for _, s := range f[11:13] {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/<pid>/stat: %q is not a count", s)
		}
		sum += v
	}
	return sum, nil
}

// readProcessCPU reads process pid's CPU time (user and system, all its
// threads) in USER_HZ ticks.
func readProcessCPU(pid int) (uint64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseProcessCPU(string(data))
}

// parseSchedstat returns the time on a CPU plus the time waiting on a run
// queue, in ns, of a /proc/<pid>/task/<tid>/schedstat text ("run wait
// timeslices"): how long the thread wanted a CPU.
func parseSchedstat(text string) (uint64, error) {
	f := strings.Fields(text)
	if len(f) < 2 {
		return 0, fmt.Errorf("schedstat %q: want run, wait and timeslices", text)
	}
	var sum uint64
	for _, s := range f[:2] {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("schedstat %q: %q is not a count", text, s)
		}
		sum += v
	}
	return sum, nil
}

// readDemand reads, per thread of process pid, how long it wanted a CPU
// (ran or was runnable), in ns; nil when the kernel keeps no schedstat.
func readDemand(pid int) (map[string]uint64, error) {
	dir := fmt.Sprintf("/proc/%d/task", pid)
	tasks, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	out := map[string]uint64{}
	for _, t := range tasks {
		data, err := os.ReadFile(dir + "/" + t.Name() + "/schedstat")
		if errors.Is(err, os.ErrNotExist) && len(out) == 0 {
			return nil, nil // no CONFIG_SCHED_INFO, or the thread just exited
		}
		if err != nil {
			continue // a thread that exited between the listing and the read
		}
		v, err := parseSchedstat(string(data))
		if err != nil {
			return nil, err
		}
		out[t.Name()] = v
	}
	return out, nil
}

// demandShare is the share of wall seconds the process's threads wanted
// a CPU, from two readDemand samples (a thread born in between started at
// 0; one that ended is lost). With GOMAXPROCS=1 only one thread serves at
// a time, but the runtime's others (sysmon, a thread in a syscall) add a
// little: the share can pass 1. -1 without samples.
func demandShare(before, after map[string]uint64, wall float64) float64 {
	if before == nil || after == nil || wall <= 0 {
		return -1
	}
	var ns uint64
	for tid, a := range after {
		if b := before[tid]; a >= b {
			ns += a - b
		}
	}
	return float64(ns) / 1e9 / wall
}

// busySample is what busyProbe reads before a round.
type busySample struct {
	cpu     cpuTimes
	process uint64
	demand  map[string]uint64 // per thread, ns ran or runnable; nil unknown
}

// busyProbe samples a server's core and process around a round.
type busyProbe struct {
	cpu int // the measured CPU; -1 when the server is not pinned
	pid int
}

func (p busyProbe) sample() (busySample, error) {
	var s busySample
	var err error
	if p.cpu >= 0 {
		if s.cpu, err = readCPU(p.cpu); err != nil {
			return s, err
		}
	}
	if s.process, err = readProcessCPU(p.pid); err != nil {
		return s, err
	}
	s.demand, err = readDemand(p.pid)
	return s, err
}

// busyRound is what the samples around one round say.
type busyRound struct {
	// Core is the share of the round the measured CPU was busy (/proc/stat);
	// -1 when the server was not pinned to one.
	Core float64 `json:"core_busy"`
	// Server is the server process's CPU time over the round's wall time
	// (utime + stime): with GOMAXPROCS=1 and one core, at most about 1.
	// Other work on the same core (a neighbour's build) lowers it.
	Server float64 `json:"server_cpu"`
	// Demand is the time the server's threads ran or waited on a run
	// queue over the wall time (/proc/<pid>/task/*/schedstat): at least
	// minBusy when the server always had requests to answer, whether or not
	// a neighbour took part of the core. -1 when the kernel keeps no
	// schedstat.
	Demand float64 `json:"server_demand"`
	// IRQ is the share of the round the measured CPU spent in interrupts
	// (irq, softirq: mostly the loopback traffic); -1 when not pinned.
	IRQ float64 `json:"core_irq"`
}

// others is the share of the measured core that did not go to the
// server: other processes (a neighbour's build); -1 when not pinned.
// Interrupts are not taken out: on a quiet machine the server's own CPU
// time already covers nearly all the core's busy time, interrupts
// included (busy 99%, interrupts 19%, server 97%), so taking them out
// would hide a neighbour as large as they are.
func (b busyRound) others() float64 {
	if b.Core < 0 {
		return -1
	}
	return max(0, b.Core-b.Server)
}

// counts reports whether a peak round with these figures measured the
// server: not the load client (the measured core busy at least minBusy,
// when pinned, and the server wanting a CPU at least minBusy of the time,
// when the kernel says; else, unpinned, its CPU time), nor a neighbour
// (other processes took at most 1 - minBusy of the core, when pinned).
func (b busyRound) counts() bool {
	return !b.clientLimited() && !b.contended()
}

func (b busyRound) clientLimited() bool {
	if b.Core >= 0 && b.Core < minBusy {
		return true
	}
	if b.Demand >= 0 {
		return b.Demand < minBusy
	}
	return b.Core < 0 && b.Server < minBusy
}

func (b busyRound) contended() bool { return b.Core >= 0 && b.others() > 1-minBusy }

// measure compares two samples taken wall seconds apart.
func (p busyProbe) measure(before, after busySample, wall float64) (busyRound, error) {
	r := busyRound{Core: -1, IRQ: -1}
	if p.cpu >= 0 {
		busy, irq, err := busyShare(before.cpu, after.cpu)
		if err != nil {
			return r, err
		}
		r.Core, r.IRQ = busy, irq
	}
	if wall <= 0 || after.process < before.process {
		return r, fmt.Errorf("server CPU time: %d then %d ticks over %.3f s", before.process, after.process, wall)
	}
	r.Server = float64(after.process-before.process) / userHZ / wall
	r.Demand = demandShare(before.demand, after.demand, wall)
	return r, nil
}

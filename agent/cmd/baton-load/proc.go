package main

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// userHZ is the unit of utime and stime in /proc/<pid>/stat (USER_HZ,
// 100 on every Linux architecture Go supports).
const userHZ = 100

// procSample is what /proc tells about a process at one moment.
type procSample struct {
	At  time.Time
	CPU time.Duration // user + system time since it started, all threads
	RSS int64         // VmRSS, bytes
	HWM int64         // VmHWM (peak RSS), bytes
	FDs int           // open file descriptors
}

// sampleProc reads /proc/<pid>/stat, status and fd.
func sampleProc(pid int) (procSample, error) {
	s := procSample{At: time.Now()}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, err
	}
	// The command name may hold spaces and parentheses: fields start after the last ')'.
	rest := string(stat[strings.LastIndexByte(string(stat), ')')+1:])
	f := strings.Fields(rest) // f[0] is field 3 (state); utime is field 14, stime 15
	if len(f) < 13 {
		return s, fmt.Errorf("/proc/%d/stat: short line", pid)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return s, fmt.Errorf("/proc/%d/stat: bad utime/stime", pid)
	}
	s.CPU = time.Duration(utime+stime) * time.Second / userHZ
	if s.RSS, s.HWM, err = memory(pid); err != nil {
		return s, err
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return s, err
	}
	s.FDs = len(fds)
	return s, nil
}

// memory reads VmRSS and VmHWM from /proc/<pid>/status.
func memory(pid int) (rss, hwm int64, err error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), ":")
		if !ok || (name != "VmRSS" && name != "VmHWM") {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(value), " kB"), 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("/proc/%d/status %s: %w", pid, name, err)
		}
		if name == "VmRSS" {
			rss = kb << 10
		} else {
			hwm = kb << 10
		}
	}
	return rss, hwm, sc.Err()
}

// openFileLimit is the soft "Max open files" of a process, as in ulimit -n.
func openFileLimit(pid int) (string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", pid))
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "Max open files"); ok {
			if f := strings.Fields(rest); len(f) > 0 {
				return f[0], nil
			}
		}
	}
	return "", fmt.Errorf("/proc/%d/limits: no Max open files", pid)
}

// selfCPU is this process's user + system time so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// usage is a process's CPU and memory over an interval.
type usage struct {
	Wall     time.Duration
	CPU      time.Duration // user + system over the interval
	RSS, HWM int64         // at its end
	FDs      int
}

// Cores is CPU time over wall time: 1.0 is one core busy all along.
func (u usage) Cores() float64 {
	if u.Wall <= 0 {
		return 0
	}
	return u.CPU.Seconds() / u.Wall.Seconds()
}

func between(a, b procSample) usage {
	return usage{Wall: b.At.Sub(a.At), CPU: b.CPU - a.CPU, RSS: b.RSS, HWM: b.HWM, FDs: b.FDs}
}

// mib prints bytes in MiB.
func mib(b int64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }

// machineBusy is the CPU time all processes have used since boot (every
// state of the /proc/stat cpu line but idle and iowait).
func machineBusy() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return 0
	}
	var busy int64
	for i, v := range f[1:] {
		n, _ := strconv.ParseInt(v, 10, 64)
		if i != 3 && i != 4 && i < 8 { // user nice system [idle iowait] irq softirq steal
			busy += n
		}
	}
	return time.Duration(busy) * time.Second / userHZ
}

// meter measures CPU over an interval: the server's, this driver's, and
// that of every other process on the machine (which skews the figures).
type meter struct {
	pid            int
	server         procSample
	driver, others time.Duration
}

func startMeter(pid int) (*meter, error) {
	s, err := sampleProc(pid)
	if err != nil {
		return nil, err
	}
	return &meter{pid: pid, server: s, driver: selfCPU(), others: machineBusy()}, nil
}

// metered is what a meter measured.
type metered struct {
	Server         usage
	Driver, Others float64 // cores
}

func (m *meter) stop() (metered, error) {
	s, err := sampleProc(m.pid)
	if err != nil {
		return metered{}, err
	}
	u := between(m.server, s)
	driver := selfCPU() - m.driver
	all := machineBusy() - m.others
	wall := u.Wall.Seconds()
	return metered{Server: u, Driver: driver.Seconds() / wall, Others: max(all-u.CPU-driver, 0).Seconds() / wall}, nil
}

func (m metered) String() string {
	return fmt.Sprintf("server CPU %.2f cores (%.1f s in %.1f s), RSS %s, peak %s; driver (agents) CPU %.2f cores; other processes %.2f cores of %d",
		m.Server.Cores(), m.Server.CPU.Seconds(), m.Server.Wall.Seconds(), mib(m.Server.RSS), mib(m.Server.HWM), m.Driver, m.Others, runtime.NumCPU())
}

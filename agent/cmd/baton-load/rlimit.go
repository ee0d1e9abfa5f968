package main

import (
	"os"
	"strconv"
	"strings"
	"syscall"
)

// raiseOpenFiles sets this process's open-file limit (soft and hard) to at
// least want when it is allowed to raise the hard limit (root,
// CAP_SYS_RESOURCE), else the soft limit to the hard one. Children started
// afterwards inherit it: an explicit Setrlimit stops Go from restoring the
// original soft limit in them. It returns the soft limit now in force.
func raiseOpenFiles(want uint64) (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	if lim.Max < want {
		raised := syscall.Rlimit{Cur: want, Max: want}
		if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised) == nil {
			return want, nil
		}
		lim.Cur = lim.Max
	} else {
		lim.Cur = max(lim.Cur, want)
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	return lim.Cur, nil
}

// ephemeralPorts is how many local ports the kernel hands out to outgoing
// connections: every agent holds two to the one server port.
func ephemeralPorts() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0
	}
	lo, err1 := strconv.Atoi(f[0])
	hi, err2 := strconv.Atoi(f[1])
	if err1 != nil || err2 != nil {
		return 0
	}
	return hi - lo + 1
}

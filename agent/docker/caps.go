package docker

import (
	"fmt"
	"slices"
	"strings"
)

// Step containers drop every capability (CapDrop ALL). The operator may give
// some back with Options.CapAdd, but only from Docker's own default set: the
// capabilities every `docker run` container has unless told otherwise. The
// others widen what a step can do to the host kernel or to other containers
// (SYS_ADMIN mounts file systems and escapes easily, SYS_PTRACE reads other
// processes, NET_ADMIN rewrites the network, SYS_MODULE loads kernel code,
// DAC_READ_SEARCH opens files by handle outside the container, ...), so they
// are refused: a job that needs them needs a dedicated machine, not a shared
// CI host.

// allowedCaps are Docker's default capabilities, the ones CapAdd may name.
var allowedCaps = []string{
	"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE",
	"NET_RAW", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
}

// linuxCaps are the other Linux capability names (capabilities(7)), known so
// that a refusal can tell a typo from a capability that is not allowed.
var linuxCaps = []string{
	"AUDIT_CONTROL", "AUDIT_READ", "BLOCK_SUSPEND", "BPF", "CHECKPOINT_RESTORE", "DAC_READ_SEARCH",
	"IPC_LOCK", "IPC_OWNER", "LEASE", "LINUX_IMMUTABLE", "MAC_ADMIN", "MAC_OVERRIDE", "NET_ADMIN",
	"NET_BROADCAST", "PERFMON", "SYSLOG", "SYS_ADMIN", "SYS_BOOT", "SYS_MODULE", "SYS_NICE", "SYS_PACCT",
	"SYS_PTRACE", "SYS_RAWIO", "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "WAKE_ALARM",
}

// AllowedCapabilities lists the capabilities Options.CapAdd may name.
func AllowedCapabilities() []string { return slices.Clone(allowedCaps) }

// NormalizeCapabilities checks capability names (CHOWN, cap_chown and
// CAP_CHOWN are one name) against the allow-list and returns them in
// Docker's CAP_ form, without duplicates.
func NormalizeCapabilities(names []string) ([]string, error) {
	var caps []string
	for _, name := range names {
		c := strings.TrimPrefix(strings.ToUpper(strings.TrimSpace(name)), "CAP_")
		switch {
		case slices.Contains(allowedCaps, c):
		case c == "ALL":
			return nil, fmt.Errorf("capability %q: ALL is never added; name each capability (allowed: %s)", name, strings.Join(allowedCaps, ", "))
		case slices.Contains(linuxCaps, c):
			return nil, fmt.Errorf("capability %q is not allowed for steps: only Docker's default capabilities may be added (%s)", name, strings.Join(allowedCaps, ", "))
		default:
			return nil, fmt.Errorf("capability %q: no such Linux capability", name)
		}
		if c = "CAP_" + c; !slices.Contains(caps, c) {
			caps = append(caps, c)
		}
	}
	return caps, nil
}

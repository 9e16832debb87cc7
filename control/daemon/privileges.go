package daemon

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Least privilege (Options.LeastPrivilege, set by `xdpsec run`): once the gateway runs, it keeps only
// what the running gateway still uses, in every thread — permitted, effective, inheritable, ambient
// and bounding sets — and sets no_new_privs. A start that fails for want of a capability says which
// (ExplainStartError). docs/security.md ("Capabilities") says what each capability is for and how the
// kept set was found; dist/systemd/xdpsec@.service grants the start set.

// Capability is one Linux capability and what the daemon needs it for.
type Capability struct {
	Number int
	Name   string
	Why    string
}

var (
	capBPF      = Capability{unix.CAP_BPF, "CAP_BPF", "create the card's maps and load its programs"}
	capPerfmon  = Capability{unix.CAP_PERFMON, "CAP_PERFMON", "the verifier accepts the card's packet-pointer arithmetic only with it"}
	capNetAdmin = Capability{unix.CAP_NET_ADMIN, "CAP_NET_ADMIN", "attach XDP; while running, have the kernel resolve next hops (RTM_NEWNEIGH with NTF_USE)"}
	capNetRaw   = Capability{unix.CAP_NET_RAW, "CAP_NET_RAW", "create the AF_XDP sockets"}
	capSetpcap  = Capability{unix.CAP_SETPCAP, "CAP_SETPCAP", "shrink the capability bounding set once the gateway runs"}
	capSysAdmin = Capability{unix.CAP_SYS_ADMIN, "CAP_SYS_ADMIN", "enter the --netns network namespace"}
)

// RunningCapabilities are what a running gateway keeps. Everything else it does after setup works
// on file descriptors it already holds (map updates and lookups, AF_XDP rings and wakeups, netlink
// reads, the API and metrics sockets), which the kernel does not check again.
var RunningCapabilities = []Capability{capNetAdmin}

// StartCapabilities are what Start needs (with a network namespace to enter: netns). CAP_SETPCAP is
// needed only while the bounding set holds more than RunningCapabilities, to shrink it.
func StartCapabilities(netns bool) []Capability {
	caps := []Capability{capBPF, capPerfmon, capNetAdmin, capNetRaw, capSetpcap}
	if netns {
		caps = append(caps, capSysAdmin)
	}
	return caps
}

// ErrMissingCapability is wrapped by errors that name a capability the process lacks.
var ErrMissingCapability = errors.New("missing capability")

// ExplainStartError adds to the error of a failed Start the start capabilities this process lacks:
// without one, setup fails at the first operation that needs it, with the kernel's bare EPERM (or
// a verifier log), which does not say what to grant.
func ExplainStartError(err error, netns bool) error {
	if err == nil || errors.Is(err, ErrMissingCapability) {
		return err
	}
	eff, _, cerr := capget()
	if cerr != nil {
		return err
	}
	var missing []string
	for _, c := range StartCapabilities(netns) {
		switch {
		case eff&bit(c.Number) != 0:
		case (c == capBPF || c == capPerfmon) && eff&bit(unix.CAP_SYS_ADMIN) != 0:
			// The kernel's bpf_capable() and perfmon_capable() accept CAP_SYS_ADMIN instead.
		case c == capSetpcap:
			// Needed by the drop only, which says so itself.
		default:
			missing = append(missing, c.Name+" ("+c.Why+")")
		}
	}
	if len(missing) == 0 {
		return err
	}
	return fmt.Errorf("%w (%w: %s)", err, ErrMissingCapability, strings.Join(missing, ", "))
}

// dropCapabilities leaves every thread of the process with exactly keep as its permitted and
// effective sets and its bounding set, nothing inheritable or ambient, and no_new_privs set, then
// reads every thread's status back to prove it.
//
// Capabilities belong to threads, and the Go runtime runs goroutines on many threads it creates as
// it likes; capset on one thread leaves the others privileged. syscall.AllThreadsSyscall stops the
// world and makes the call on every thread the runtime has (threads created later inherit from one
// of them). It needs a binary without cgo (the runtime cannot reach threads C code created): the
// Makefile builds with CGO_ENABLED=0. Dropping before the runtime starts threads is impossible: the
// setup is Go code that runs on them, and needs the capabilities.
func dropCapabilities(keep []Capability) error {
	want := mask(keep)
	last, err := lastCap()
	if err != nil {
		return err
	}
	bnd, err := boundingSet()
	if err != nil {
		return err
	}
	for c := 0; c <= last; c++ {
		if bnd&bit(c) == 0 || want&bit(c) != 0 {
			continue
		}
		if err := allThreads(unix.SYS_PRCTL, unix.PR_CAPBSET_DROP, uintptr(c), 0); err != nil {
			return fmt.Errorf("drop capability %d from the bounding set: %w", c, err)
		}
	}
	if err := allThreads(unix.SYS_PRCTL, unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0); err != nil {
		return fmt.Errorf("clear the ambient capabilities: %w", err)
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	data := [2]unix.CapUserData{
		{Effective: uint32(want), Permitted: uint32(want)},
		{Effective: uint32(want >> 32), Permitted: uint32(want >> 32)},
	}
	if err := allThreads(unix.SYS_CAPSET, uintptr(unsafe.Pointer(&hdr)), uintptr(unsafe.Pointer(&data[0])), 0); err != nil {
		return fmt.Errorf("set the capabilities: %w", err)
	}
	if err := allThreads(unix.SYS_PRCTL, unix.PR_SET_NO_NEW_PRIVS, 1, 0); err != nil {
		return fmt.Errorf("set no_new_privs: %w", err)
	}
	return checkThreads(want)
}

// allThreads makes one system call on every thread (see dropCapabilities).
func allThreads(trap, a1, a2, a3 uintptr) error {
	_, _, errno := syscall.AllThreadsSyscall(trap, a1, a2, a3)
	switch {
	case errno == syscall.ENOTSUP:
		return errors.New("this binary uses cgo, and Go changes the capabilities of every thread only in a " +
			"binary without it (syscall.AllThreadsSyscall): build it with CGO_ENABLED=0, as make build does")
	case errno == syscall.EPERM && trap == unix.SYS_PRCTL && a1 == unix.PR_CAPBSET_DROP:
		return fmt.Errorf("%w: %s (%s)", ErrMissingCapability, capSetpcap.Name, capSetpcap.Why)
	case errno != 0:
		return errno
	}
	return nil
}

// checkThreads reads /proc/self/task/*/status and refuses any thread whose sets differ from want
// (permitted, effective, bounding) or from nothing (inheritable, ambient), or without no_new_privs.
func checkThreads(want uint64) error {
	tasks, err := filepath.Glob("/proc/self/task/*/status")
	if err != nil || len(tasks) == 0 {
		return fmt.Errorf("list this process's threads: %v", err)
	}
	for _, p := range tasks {
		st, err := readStatus(p)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue // the thread exited
			}
			return err
		}
		for field, v := range map[string]uint64{"CapPrm": want, "CapEff": want, "CapBnd": want, "CapInh": 0, "CapAmb": 0, "NoNewPrivs": 1} {
			if st[field] != v {
				return fmt.Errorf("thread %s kept %s %#x after the drop, want %#x", filepath.Base(filepath.Dir(p)), field, st[field], v)
			}
		}
	}
	return nil
}

// readStatus returns the capability fields (hex) and NoNewPrivs of a /proc status file.
func readStatus(path string) (map[string]uint64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	out := map[string]uint64{}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || (!strings.HasPrefix(k, "Cap") && k != "NoNewPrivs") {
			continue
		}
		base := 16
		if k == "NoNewPrivs" {
			base = 10
		}
		n, err := strconv.ParseUint(strings.TrimSpace(v), base, 64)
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", path, k, err)
		}
		out[k] = n
	}
	return out, nil
}

// capget returns the calling thread's effective and permitted sets.
func capget() (eff, prm uint64, err error) {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return 0, 0, fmt.Errorf("read capabilities: %w", err)
	}
	return uint64(data[1].Effective)<<32 | uint64(data[0].Effective),
		uint64(data[1].Permitted)<<32 | uint64(data[0].Permitted), nil
}

// boundingSet returns the calling thread's bounding set.
func boundingSet() (uint64, error) {
	last, err := lastCap()
	if err != nil {
		return 0, err
	}
	var set uint64
	for c := 0; c <= last; c++ {
		in, err := unix.PrctlRetInt(unix.PR_CAPBSET_READ, uintptr(c), 0, 0, 0)
		if err != nil {
			return 0, fmt.Errorf("read the bounding set: %w", err)
		}
		if in == 1 {
			set |= bit(c)
		}
	}
	return set, nil
}

// lastCap is the highest capability this kernel knows.
func lastCap() (int, error) {
	b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err != nil {
		return 0, fmt.Errorf("read the last capability: %w", err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || n < 0 || n > 63 {
		return 0, fmt.Errorf("read the last capability: %q", b)
	}
	return n, nil
}

func bit(c int) uint64 { return 1 << uint(c) }

func mask(caps []Capability) uint64 {
	var m uint64
	for _, c := range caps {
		m |= bit(c.Number)
	}
	return m
}

// CapabilityNames lists caps' names, for logs and documents.
func CapabilityNames(caps []Capability) []string {
	out := make([]string, len(caps))
	for i, c := range caps {
		out[i] = c.Name
	}
	return out
}

// leastPrivilege is Start's hook after setup: drop to RunningCapabilities and say so.
func (d *Daemon) leastPrivilege() error {
	if err := dropCapabilities(RunningCapabilities); err != nil {
		return fmt.Errorf("drop capabilities: %w", err)
	}
	d.log.Info("capabilities dropped", "kept", strings.Join(CapabilityNames(RunningCapabilities), ","), "no_new_privs", true)
	return nil
}

package loader

import (
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// Loading the card and attaching it need capabilities, not a user id: a
// daemon run by systemd with AmbientCapabilities=CAP_BPF CAP_NET_ADMIN is as
// able as root, and root in a container without them is not. So Load checks
// the effective set and names what is missing, instead of failing later on an
// EPERM from somewhere inside the loader.
const (
	capNetAdmin = 12 // attach XDP, XSKMAP, netlink
	capSysAdmin = 21 // before CAP_BPF existed (5.8), it covered BPF
	capBPF      = 39 // create maps, load programs
)

// missingCaps returns the names of the capabilities the card needs that the
// effective set eff (a bit per capability) lacks.
func missingCaps(eff uint64) []string {
	has := func(c uint) bool { return eff&(1<<c) != 0 }
	var missing []string
	if !has(capBPF) && !has(capSysAdmin) {
		missing = append(missing, "CAP_BPF (or CAP_SYS_ADMIN)")
	}
	if !has(capNetAdmin) {
		missing = append(missing, "CAP_NET_ADMIN")
	}
	return missing
}

// effectiveCaps reads the calling thread's effective capability set.
func effectiveCaps() (uint64, error) {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return 0, fmt.Errorf("read capabilities: %w", err)
	}
	return uint64(data[1].Effective)<<32 | uint64(data[0].Effective), nil
}

// privilegeError wraps ErrNotRoot with the missing capabilities, or is nil.
func privilegeError(eff uint64) error {
	m := missingCaps(eff)
	if len(m) == 0 {
		return nil
	}
	return fmt.Errorf("%w: missing %s (run as root, or grant them, e.g. setcap cap_bpf,cap_net_admin+ep or systemd AmbientCapabilities)",
		ErrNotRoot, strings.Join(m, " and "))
}

// checkPrivileges fails with ErrNotRoot naming the capabilities the process lacks.
func checkPrivileges() error {
	eff, err := effectiveCaps()
	if err != nil {
		return err
	}
	return privilegeError(eff)
}

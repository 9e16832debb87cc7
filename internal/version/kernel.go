package version

import (
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/features"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/xdpsec/xdpsec/loader/xsk"
)

// Status is a probe's answer.
type Status string

const (
	Yes     Status = "yes"
	No      Status = "no"
	Unknown Status = "unknown" // the probe could not tell (Detail says why: often missing privileges)
)

// Feature is one kernel feature and what probing it found.
type Feature struct {
	Name        string `json:"name"` // stable identifier
	Description string `json:"description"`
	Status      Status `json:"status"`
	Detail      string `json:"detail,omitempty"`
}

// Kernel is the running kernel and its features.
type Kernel struct {
	Release  string    `json:"release"`
	Features []Feature `json:"features"`
}

// Names of the features, in the order ProbeKernel reports them.
const (
	FeatureBTF      = "btf"
	FeatureXDP      = "xdp"
	FeatureXDPLink  = "xdp_link"
	FeatureXDPFrags = "xdp_frags"
	FeatureAFXDP    = "af_xdp"
	FeatureAFXDPSG  = "af_xdp_multi_buffer"
	FeatureBPFLoop  = "bpf_loop"
	FeatureRingBuf  = "ringbuf"
	FeatureLRUHash  = "lru_hash"
)

// ProbeKernel probes the features the card and the workers use. Most probes load a tiny program or
// create a map; the bpf_link and multi-buffer probes attach and bind on the loopback interface of a
// network namespace made for them and gone afterwards. Without root most answers are Unknown.
func ProbeKernel() Kernel {
	k := Kernel{Release: "unknown"}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		k.Release = unix.ByteSliceToString(u.Release[:])
	}
	add := func(name, desc string, err error) {
		k.Features = append(k.Features, feature(name, desc, err))
	}
	add(FeatureBTF, "kernel BTF (/sys/kernel/btf/vmlinux)", haveKernelBTF())
	add(FeatureXDP, "XDP programs", features.HaveProgramType(ebpf.XDP))
	nsLink, nsSG := probeInNetns()
	add(FeatureXDPLink, "XDP attached through bpf_link (5.9)", nsLink)
	add(FeatureXDPFrags, "multi-buffer XDP programs (BPF_F_XDP_HAS_FRAGS, 5.18)", haveXDPFrags())
	add(FeatureAFXDP, "AF_XDP sockets and XSKMAP", haveAFXDP())
	add(FeatureAFXDPSG, "AF_XDP multi-buffer (XDP_USE_SG, 6.6)", nsSG)
	add(FeatureBPFLoop, "bpf_loop helper in XDP (5.17)", features.HaveProgramHelper(ebpf.XDP, asm.FnLoop))
	add(FeatureRingBuf, "BPF ring buffer maps (5.8)", features.HaveMapType(ebpf.RingBuf))
	add(FeatureLRUHash, "LRU hash maps (flow cache)", features.HaveMapType(ebpf.LRUHash))
	return k
}

// feature turns a probe's error into a status: nil is Yes, ebpf.ErrNotSupported is No, anything else
// (a missing privilege, an ambiguous errno) Unknown with the error as the detail.
func feature(name, desc string, err error) Feature {
	f := Feature{Name: name, Description: desc, Status: Yes}
	switch {
	case err == nil:
	case errors.Is(err, ebpf.ErrNotSupported):
		f.Status = No
	case errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES):
		f.Status, f.Detail = Unknown, "not permitted: run as root to probe"
	default:
		f.Status, f.Detail = Unknown, err.Error()
	}
	return f
}

func haveKernelBTF() error {
	_, err := os.Stat("/sys/kernel/btf/vmlinux")
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("no /sys/kernel/btf/vmlinux: %w", ebpf.ErrNotSupported)
	}
	return err
}

// passProgram is the smallest XDP program: XDP_PASS.
func passProgram(flags uint32) (*ebpf.Program, error) {
	return ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.XDP, Flags: flags, License: "Apache-2.0",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 2), asm.Return()}})
}

// haveXDPFrags loads an XDP program flagged as frags-aware: kernels before 5.18 refuse the flag.
func haveXDPFrags() error {
	if err := features.HaveProgramType(ebpf.XDP); err != nil {
		return err
	}
	p, err := passProgram(unix.BPF_F_XDP_HAS_FRAGS)
	if errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("BPF_F_XDP_HAS_FRAGS refused: %w", ebpf.ErrNotSupported)
	}
	if err != nil {
		return err
	}
	return p.Close()
}

// haveAFXDP creates an AF_XDP socket and an XSKMAP.
func haveAFXDP() error {
	fd, err := unix.Socket(unix.AF_XDP, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if errors.Is(err, unix.EAFNOSUPPORT) {
		return fmt.Errorf("socket(AF_XDP): %w", ebpf.ErrNotSupported)
	}
	if err != nil {
		return fmt.Errorf("socket(AF_XDP): %w", err)
	}
	unix.Close(fd)
	return features.HaveMapType(ebpf.XSKMap)
}

// probeInNetns runs the probes that need an interface on the loopback of a network namespace of
// their own, so that nothing on the machine's interfaces changes: an XDP bpf_link (attached and
// closed), and AF_XDP copy-mode binds without and with XDP_USE_SG. The namespace lives as long as
// the locked thread, which exits with its goroutine.
func probeInNetns() (xdpLink, sg error) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine, and the namespace with it
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			err = fmt.Errorf("create a network namespace to probe in: %w", err)
			xdpLink, sg = err, err
			return
		}
		lo, err := net.InterfaceByName("lo")
		if err != nil {
			xdpLink, sg = err, err
			return
		}
		xdpLink = probeXDPLink(lo.Index)
		sg = probeXSKSG(lo.Index)
	}()
	<-done
	return xdpLink, sg
}

func probeXDPLink(ifindex int) error {
	p, err := passProgram(0)
	if err != nil {
		return err
	}
	defer p.Close()
	l, err := link.AttachXDP(link.XDPOptions{Program: p, Interface: ifindex, Flags: link.XDPGenericMode})
	if err != nil {
		return err
	}
	return l.Close()
}

// probeXSKSG binds a copy-mode AF_XDP socket with XDP_USE_SG. When the kernel refuses, a bind without
// the flag tells whether it is the flag (no multi-buffer) or AF_XDP itself. The SG bind goes first:
// the queue stays busy for a moment after a socket closes.
func probeXSKSG(ifindex int) error {
	bind := func(sg bool) error {
		u, err := xsk.NewUMEM(xsk.UMEMConfig{FrameCount: 16})
		if err != nil {
			return err
		}
		defer u.Close()
		s, err := u.Open(xsk.SocketConfig{Ifindex: ifindex, Mode: xsk.ModeCopy, SG: sg,
			FillSize: 8, CompletionSize: 8, RXSize: 8, TXSize: 8})
		if err != nil {
			return err
		}
		return s.Close()
	}
	err := bind(true)
	if !errors.Is(err, unix.EINVAL) {
		return err
	}
	if plain := bind(false); plain != nil {
		return fmt.Errorf("%w; and without XDP_USE_SG: %w", err, plain)
	}
	return fmt.Errorf("XDP_USE_SG refused: %w", ebpf.ErrNotSupported)
}

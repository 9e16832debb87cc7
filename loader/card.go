package loader

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/features"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/xdpsec/xdpsec/bpf"
	"github.com/xdpsec/xdpsec/ipsec"
)

// Default capacities.
const (
	DefaultPolicies  = 16384
	DefaultSAs       = 65536
	DefaultFlowCache = 65536
	DefaultQueues    = 64
	DefaultPinRoot   = "/sys/fs/bpf/xdpsec"
	// MaxPolicies is the most policies a card can hold: policy IDs are 16 bits in the metadata and
	// 0xffff means none.
	MaxPolicies = 0xffff
)

// Config is what Load needs. Zero fields take the defaults.
type Config struct {
	// Instance scopes the pins: PinRoot/Instance/<map>. Empty means no pins at all (tests and
	// benchmarks): the card lives as long as the process holds it.
	Instance string
	PinRoot  string // default DefaultPinRoot

	Policies  uint32 // policy capacity (policy IDs below it), at most MaxPolicies
	SAs       uint32 // SA capacity (SA indexes below it)
	FlowCache uint32 // flow-cache entries
	Queues    uint32 // XSKMAP size per side: the highest rx queue index + 1

	// Defaults are the actions for packets that match no policy (bypass or discard).
	Defaults ipsec.Defaults
	// InNoSocketPass passes offloaded ESP to the kernel when no worker socket is bound on its queue,
	// instead of dropping it. Outbound PROTECT traffic is always dropped in that case.
	InNoSocketPass bool
	// AcquireInterval is the least time between two ACQUIRE records of one policy (default 1s).
	AcquireInterval time.Duration
	// EncapPort is the UDP destination port of ESP-in-UDP on the wire side (default 4500, RFC 3948).
	EncapPort uint16
	// Frags loads the programs as multi-buffer aware (BPF_F_XDP_HAS_FRAGS): the interfaces may then
	// carry frames larger than a page (jumbo MTU, GRO/LRO aggregates on veth), and the workers' AF_XDP
	// sockets must be bound with XDP_USE_SG to receive them. Off, such frames never reach the card.
	Frags bool
	// Guard loads the card in guard state (SetGuard): PROTECT traffic and ESP of offloaded SAs are
	// dropped until SetGuard(false). A daemon loads guarded and lifts the guard once its workers run
	// and the card holds its configuration, so that a card it adopts never forwards what no worker
	// can serve.
	Guard bool

	Logger *slog.Logger // default slog.Default()
}

func (c *Config) setDefaults() {
	if c.PinRoot == "" {
		c.PinRoot = DefaultPinRoot
	}
	if c.Policies == 0 {
		c.Policies = DefaultPolicies
	}
	if c.SAs == 0 {
		c.SAs = DefaultSAs
	}
	if c.FlowCache == 0 {
		c.FlowCache = DefaultFlowCache
	}
	if c.Queues == 0 {
		c.Queues = DefaultQueues
	}
	if c.EncapPort == 0 {
		c.EncapPort = 4500
	}
	if c.AcquireInterval == 0 {
		c.AcquireInterval = time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

func (c *Config) validate() error {
	if c.Policies > MaxPolicies {
		return fmt.Errorf("%w: policy capacity %d over %d", ErrInvalid, c.Policies, MaxPolicies)
	}
	if uint64(c.Policies)*8 > 1<<31 || c.SAs > 1<<28 {
		return fmt.Errorf("%w: capacities too large", ErrInvalid)
	}
	for _, d := range []ipsec.Action{c.Defaults.Out, c.Defaults.In} {
		if d != ipsec.ActionBypass && d != ipsec.ActionDiscard {
			return fmt.Errorf("%w: default action %s (bypass or discard only)", ErrInvalid, d)
		}
	}
	if c.Instance != "" && (strings.ContainsAny(c.Instance, "/\x00") || c.Instance == "." || c.Instance == "..") {
		return fmt.Errorf("%w: instance name %q", ErrInvalid, c.Instance)
	}
	return nil
}

// Card is a loaded card: its maps and programs, the links that attach them, and the loader's view of the
// offloaded SPD. Its methods are safe for concurrent use.
type Card struct {
	cfg  Config
	log  *slog.Logger
	objs bpf.CardObjects
	dir  string   // pin directory, "" when not pinned
	lock *os.File // flock on dir, held while open

	mu     sync.Mutex
	closed bool
	links  [2]link.Link // per Side
	modes  [2]AttachMode
	pols   map[uint32]ipsec.Policy // installed policies by ID
	// tss[dir][family] is the SPD compiled into the card's tuple space, and what each of the card's two
	// buffers holds of it, so that an SPD change writes only the buckets that differ.
	tss [2][2]tssList
	// chains[dir][buffer] allocates spd_chain entries in the region of that direction and buffer;
	// tssReset[dir][buffer] says the loader no longer knows what the buffer holds (a failed write).
	chains           [2][2]extents
	tssReset         [2][2]bool
	chainCompactions int    // buffers rewritten whole because their chain region was too fragmented
	spd              spdMem // the mmap'ed SPD arrays
	ws               *WorkerStats
	adopted          bool // Load found the instance's pins of an earlier run and reused them
}

// Load loads the card with cfg's capacities. With an Instance it pins every map under
// PinRoot/Instance and, when pins from an earlier run exist, adopts them: it reuses the maps (after
// checking they match this build and configuration: ErrIncompatiblePin otherwise) with what they
// hold, and takes over the pinned links by swapping the new programs in (BPF_LINK_UPDATE), so the
// interfaces are never left without the card across a restart. Adopted reports whether it did.
func Load(cfg Config) (*Card, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if err := checkPrivileges(); err != nil {
		return nil, err
	}
	if err := checkKernel(); err != nil {
		return nil, err
	}
	spec, err := bpf.LoadCard()
	if err != nil {
		return nil, fmt.Errorf("load card spec: %w", err)
	}
	if err := sizeSpec(spec, &cfg); err != nil {
		return nil, err
	}

	c := &Card{cfg: cfg, log: cfg.Logger, pols: make(map[uint32]ipsec.Policy)}
	opts := &ebpf.CollectionOptions{}
	if cfg.Instance != "" {
		c.dir = filepath.Join(cfg.PinRoot, cfg.Instance)
		if err := c.openPinDir(); err != nil {
			return nil, err
		}
		opts.Maps.PinPath = c.dir
		c.adopted = hasPins(c.dir)
	} else {
		for _, m := range spec.Maps {
			m.Pinning = ebpf.PinNone
		}
	}
	if err := spec.LoadAndAssign(&c.objs, opts); err != nil {
		c.unlock()
		if c.dir != "" {
			os.Remove(c.dir) // only if this attempt created it and left it empty
		}
		return nil, loadError(err, cfg.Instance)
	}
	if err := c.mapSPD(); err != nil {
		c.Close()
		return nil, err
	}
	if err := c.restore(); err != nil {
		c.Close()
		return nil, err
	}
	if err := c.writeConfig(); err != nil {
		c.Close()
		return nil, err
	}
	ws, err := newWorkerStats(c.objs.WorkerStats)
	if err != nil {
		c.Close()
		return nil, err
	}
	c.ws = ws
	if c.dir != "" {
		if err := c.adoptLinks(); err != nil {
			c.Close()
			return nil, err
		}
	}
	return c, nil
}

// kernelProbe is one kernel feature the card needs and how to probe for it.
type kernelProbe struct {
	what string
	err  func() error
}

// checkKernel names the first missing kernel feature the card needs.
func checkKernel() error { return checkProbes(kernelProbes) }

var kernelProbes = []kernelProbe{
	{"XDP programs", func() error { return features.HaveProgramType(ebpf.XDP) }},
	{"ring buffer maps (5.8)", func() error { return features.HaveMapType(ebpf.RingBuf) }},
	{"XSKMAP", func() error { return features.HaveMapType(ebpf.XSKMap) }},
	{"LRU hash maps", func() error { return features.HaveMapType(ebpf.LRUHash) }},
	{"bpf_loop (5.17)", func() error { return features.HaveProgramHelper(ebpf.XDP, asm.FnLoop) }},
	{"bpf_fib_lookup in XDP (4.18)", func() error { return features.HaveProgramHelper(ebpf.XDP, asm.FnFibLookup) }},
	{"bpf_xdp_adjust_meta (4.15)", func() error { return features.HaveProgramHelper(ebpf.XDP, asm.FnXdpAdjustMeta) }},
	{"bpf_xdp_get_buff_len (5.18)", func() error { return features.HaveProgramHelper(ebpf.XDP, asm.FnXdpGetBuffLen) }},
	{"the v3 instruction set with atomics (5.12)", features.HaveV3ISA},
}

// checkProbes runs the probes in order and maps the first failure to the
// error a user can act on.
func checkProbes(probes []kernelProbe) error {
	for _, p := range probes {
		err := p.err()
		switch {
		case err == nil:
		case errors.Is(err, ebpf.ErrNotSupported):
			return fmt.Errorf("%w: missing %s", ErrKernelTooOld, p.what)
		case errors.Is(err, unix.EPERM):
			return fmt.Errorf("probe %s: %w", p.what, ErrNotRoot)
		default:
			return fmt.Errorf("probe %s: %w", p.what, err)
		}
	}
	return nil
}

// sizeSpec applies the capacities to the map specs and the program's constants.
func sizeSpec(spec *ebpf.CollectionSpec, cfg *Config) error {
	sizes := map[string]uint32{
		bpf.CardMapSaTable:     cfg.SAs,
		bpf.CardMapSaInLookup:  cfg.SAs,
		bpf.CardMapSaStats:     cfg.SAs,
		bpf.CardMapWorkerStats: cfg.SAs,
		bpf.CardMapPolicyTable: cfg.Policies,
		bpf.CardMapPolicyStats: cfg.Policies,
		bpf.CardMapAcquireLast: cfg.Policies,
		bpf.CardMapSpdBuckets:  4 * cfg.Policies,
		bpf.CardMapSpdChain:    4 * chainRegion(cfg.Policies) / uint32(ruleBlock),
		bpf.CardMapSpdFilter:   8 << (filterBitsFor(cfg.Policies) - 6),
		bpf.CardMapFlowCache:   cfg.FlowCache,
		bpf.CardMapXsksOut:     cfg.Queues,
		bpf.CardMapXsksIn:      cfg.Queues,
	}
	for name, n := range sizes {
		m, ok := spec.Maps[name]
		if !ok {
			return fmt.Errorf("card spec lacks map %s", name)
		}
		m.MaxEntries = n
	}
	if err := spec.Variables[bpf.CardVarPolicyCapacity].Set(cfg.Policies); err != nil {
		return fmt.Errorf("set policy capacity: %w", err)
	}
	if err := spec.Variables[bpf.CardVarFilterBits].Set(uint32(filterBitsFor(cfg.Policies))); err != nil {
		return fmt.Errorf("set filter bits: %w", err)
	}
	if err := spec.Variables[bpf.CardVarEncapPort].Set(cfg.EncapPort); err != nil {
		return fmt.Errorf("set encap port: %w", err)
	}
	if cfg.Frags {
		for _, p := range spec.Programs {
			p.Flags |= unix.BPF_F_XDP_HAS_FRAGS
		}
	}
	return nil
}

// hasPins reports whether the instance directory holds anything an earlier run pinned.
func hasPins(dir string) bool {
	ents, err := os.ReadDir(dir)
	return err == nil && len(ents) > 0
}

// downHint is what to do about pins that do not fit this build or configuration.
func downHint(instance string) string {
	return fmt.Sprintf("the card pinned by an earlier run of instance %s cannot be adopted: remove it with "+
		"`xdpsec down --instance %s` (its interfaces are then without the card until this start attaches it), "+
		"or start with the build and capacities it was created with", instance, instance)
}

// loadError turns a load failure into the error a user can act on.
func loadError(err error, instance string) error {
	var ve *ebpf.VerifierError
	switch {
	case errors.As(err, &ve):
		return fmt.Errorf("%w: %+v", ErrVerifier, ve)
	case errors.Is(err, ebpf.ErrMapIncompatible):
		return fmt.Errorf("%w: %v (%s)", ErrIncompatiblePin, err, downHint(instance))
	case errors.Is(err, unix.EPERM):
		return fmt.Errorf("load card: %w: %v", ErrNotRoot, err)
	}
	return fmt.Errorf("load card: %w", err)
}

// Objects exposes the loaded programs and maps (for tests, benchmarks and bpftool-like tools). Use the
// typed methods to change tables.
func (c *Card) Objects() *bpf.CardObjects { return &c.objs }

// PinDir is the directory holding the pins, or "" for an unpinned card.
func (c *Card) PinDir() string { return c.dir }

// Adopted reports whether Load reused the pins of an earlier run (maps with what they held, and the
// links still attached) instead of creating the card afresh.
func (c *Card) Adopted() bool { return c.adopted }

// Capacities returns the policy and SA capacities the card was loaded with.
func (c *Card) Capacities() (policies, sas uint32) { return c.cfg.Policies, c.cfg.SAs }

// writeConfig stores the runtime settings.
func (c *Card) writeConfig() error {
	v := bpf.CardXdpsecConfig{
		DefaultAction:     [2]uint8{uint8(c.cfg.Defaults.Out), uint8(c.cfg.Defaults.In)},
		NoSocketVerdictIn: uint8(unixXDPDrop),
		AcquireIntervalMs: uint32(c.cfg.AcquireInterval / time.Millisecond),
	}
	if c.cfg.InNoSocketPass {
		v.NoSocketVerdictIn = uint8(unixXDPPass)
	}
	if c.cfg.Guard {
		v.Guard = 1
	}
	if err := c.objs.CardConfig.Put(uint32(0), &v); err != nil {
		return fmt.Errorf("write card config: %w", err)
	}
	return nil
}

// XDP verdicts, as in linux/bpf.h.
const (
	unixXDPDrop = 1
	unixXDPPass = 2
)

// SetDefaults changes the actions for packets that match no policy.
func (c *Card) SetDefaults(d ipsec.Defaults) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.cfg.Defaults
	c.cfg.Defaults = d
	if err := c.cfg.validate(); err != nil {
		c.cfg.Defaults = old
		return err
	}
	return c.writeConfig()
}

// SetGuard puts the card in guard state or takes it out (Config.Guard): while guarded, traffic of
// PROTECT policies is dropped and counted (OutGuard) and so is ESP of the SAs the card holds
// (InGuard); BYPASS and DISCARD policies and the default verdicts work as always, so IKE and other
// bypassed traffic keeps flowing. It takes effect with the next packet (no flow-cache entry holds
// the verdict) and needs no capability: the card's settings are written through a map the process
// already holds.
func (c *Card) SetGuard(on bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrClosed
	}
	old := c.cfg.Guard
	c.cfg.Guard = on
	if err := c.writeConfig(); err != nil {
		c.cfg.Guard = old
		return err
	}
	return nil
}

// Guarded reads whether the card is in guard state, from the card itself.
func (c *Card) Guarded() (bool, error) {
	var v bpf.CardXdpsecConfig
	if err := c.objs.CardConfig.Lookup(uint32(0), &v); err != nil {
		return false, fmt.Errorf("read card config: %w", err)
	}
	return v.Guard != 0, nil
}

// Close releases the process's hold on the card. A pinned card keeps running: its links and maps stay
// pinned and traffic flows on; the next Load of the instance takes them over. An unpinned card is
// detached and freed.
func (c *Card) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	var errs []error
	for i, l := range c.links {
		if l != nil {
			errs = append(errs, l.Close())
			c.links[i] = nil
		}
	}
	if c.ws != nil {
		errs = append(errs, c.ws.close())
	}
	errs = append(errs, c.spd.close())
	errs = append(errs, c.objs.Close())
	c.unlock()
	return errors.Join(errs...)
}

// Destroy detaches both programs, removes every pin of the instance and closes the card.
func (c *Card) Destroy() error {
	var errs []error
	c.mu.Lock()
	for i, l := range c.links {
		if l != nil {
			errs = append(errs, l.Unpin(), l.Close())
			c.links[i] = nil
		}
	}
	if c.dir != "" {
		for _, m := range c.mapsByName() {
			if m != nil && m.IsPinned() {
				errs = append(errs, m.Unpin())
			}
		}
		// Everything else in the directory is the instance's too: link pins this process did not
		// adopt, pins of an older build's maps.
		if err := os.RemoveAll(c.dir); err != nil {
			errs = append(errs, fmt.Errorf("remove pin directory: %w", err))
		}
	}
	c.mu.Unlock()
	errs = append(errs, c.Close())
	return errors.Join(errs...)
}

func (c *Card) mapsByName() map[string]*ebpf.Map {
	o := &c.objs.CardMaps
	return map[string]*ebpf.Map{
		bpf.CardMapAcquireLast: o.AcquireLast, bpf.CardMapAcquireRing: o.AcquireRing,
		bpf.CardMapCardConfig: o.CardConfig, bpf.CardMapFlowCache: o.FlowCache,
		bpf.CardMapPolicyStats: o.PolicyStats, bpf.CardMapPolicyTable: o.PolicyTable,
		bpf.CardMapReasons: o.Reasons, bpf.CardMapSaInLookup: o.SaInLookup,
		bpf.CardMapSaStats: o.SaStats, bpf.CardMapSaTable: o.SaTable,
		bpf.CardMapSpdBuckets: o.SpdBuckets, bpf.CardMapSpdChain: o.SpdChain, bpf.CardMapSpdFilter: o.SpdFilter,
		bpf.CardMapSpdState: o.SpdState, bpf.CardMapSpdTuples: o.SpdTuples,
		bpf.CardMapWorkerStats: o.WorkerStats, bpf.CardMapXsksIn: o.XsksIn, bpf.CardMapXsksOut: o.XsksOut,
		bpf.CardMapLocalAddrs: o.LocalAddrs,
	}
}

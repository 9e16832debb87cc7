package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/xdpsec/xdpsec/crypto/esp"
	"github.com/xdpsec/xdpsec/ipsec"
)

// Config is one xdpsec configuration file: one instance of the gateway, its
// two interfaces, the sizes of the card's tables, the SPD (policies) and the
// SAD (sas). Parse fills in defaults, so every field holds the value in force.
type Config struct {
	// Instance scopes the BPF pins (/sys/fs/bpf/xdpsec/<instance>/) and the
	// API socket, so several gateways can share one host.
	Instance       string         `yaml:"instance" json:"instance"`
	Interfaces     Interfaces     `yaml:"interfaces" json:"interfaces"`
	Capacities     Capacities     `yaml:"capacities" json:"capacities"`
	Dataplane      Dataplane      `yaml:"dataplane" json:"dataplane"`
	Daemon         Daemon         `yaml:"daemon" json:"daemon"`
	DefaultVerdict DefaultVerdict `yaml:"default_verdict" json:"default_verdict"`
	// StateDir keeps the durable sequence state (control/seqstate): outbound reservations and IV
	// masks, inbound high-water marks, tombstones of retired keys. Default
	// /var/lib/xdpsec/<instance>; created 0700, refused when someone else can write it.
	StateDir string `yaml:"state_dir" json:"state_dir"`
	// OnExit is what `xdpsec run` leaves when it stops (SIGTERM, SIGINT, a worker's failure): the
	// card attached and pinned in guard state (OnExitGuard, the default: nothing protected leaks
	// and the next start adopts it), or nothing (OnExitDetach: both programs detached and every pin
	// removed, for throwaway testbeds). Read at exit, so a reload changes it.
	OnExit   OnExit   `yaml:"on_exit" json:"on_exit"`
	Policies []Policy `yaml:"policies" json:"policies"`
	SAs      []SA     `yaml:"sas" json:"sas"`

	// File is the name the configuration was parsed under (for messages).
	File string `yaml:"-" json:"-"`
}

// Interfaces are the two sides of the gateway: plaintext traffic enters and
// leaves on Protected, ESP on Wire.
type Interfaces struct {
	Protected string `yaml:"protected" json:"protected"`
	Wire      string `yaml:"wire" json:"wire"`
}

// Capacities size the card's tables (BPF maps are sized before load). The card
// nacks an SA or policy that does not fit.
type Capacities struct {
	Policies  uint32 `yaml:"policies" json:"policies"`     // SPD entries per direction
	SAs       uint32 `yaml:"sas" json:"sas"`               // SAD entries offloaded
	FlowCache uint32 `yaml:"flow_cache" json:"flow_cache"` // classifier's flow → policy cache entries
}

// Dataplane tunes the card and the crypto workers.
type Dataplane struct {
	XDPMode XDPMode `yaml:"xdp_mode" json:"xdp_mode"`
	// UMEMFrames is the number of AF_XDP frames shared by both interfaces.
	UMEMFrames uint32 `yaml:"umem_frames" json:"umem_frames"`
	// FrameSize is the size of one UMEM frame (2048 or 4096).
	FrameSize uint32 `yaml:"frame_size" json:"frame_size"`
	// Workers is the number of crypto workers; 0 means one per receive queue.
	Workers uint32 `yaml:"workers" json:"workers"`
	// BusyPoll makes workers spin on their rings instead of sleeping in poll.
	BusyPoll bool `yaml:"busy_poll" json:"busy_poll"`
	// MultiBuffer loads the card frags-aware (BPF_F_XDP_HAS_FRAGS) and binds the AF_XDP
	// sockets with XDP_USE_SG, so packets larger than a frame (a host's 64 KiB GSO
	// super-packets, jumbo frames) reach the workers as descriptor chains; the workers cut TCP
	// super-packets into segments that fit the tunnel (software TSO). Off by default.
	MultiBuffer bool `yaml:"multi_buffer" json:"multi_buffer"`
	// ProtectedXDPMode, when set, overrides XDPMode for the protected-side interface. On a
	// veth only a generic-mode program leaves the peer's TSO on (native XDP on a veth turns
	// TSO off on its peer, frags-aware or not), so multi_buffer pays off on a veth with
	// protected_xdp_mode: generic.
	ProtectedXDPMode XDPMode `yaml:"protected_xdp_mode" json:"protected_xdp_mode,omitempty"`
	// ChecksumCompletion (default true) has the workers complete the TCP/UDP checksums that
	// hosts leave to the hardware (CHECKSUM_PARTIAL); false turns it off, and hosts must then
	// turn their transmit checksum offload off.
	ChecksumCompletion *bool `yaml:"checksum_completion" json:"checksum_completion,omitempty"`
	// MSSClamp lowers the MSS option of TCP SYNs going into the tunnel: a number (88-65535), or
	// "auto" for each SA's inner MTU minus the IP and TCP headers. Off (0) by default. A number
	// also caps the segments the workers cut from GSO super-packets (multi_buffer).
	MSSClamp MSSClamp `yaml:"mss_clamp" json:"mss_clamp,omitempty"`
	// MinReplayWindow is the smallest anti-replay window an inbound SA gets in the data plane,
	// whatever the SA asks for (a larger replay_window stays; 0 in the SA still turns the check
	// off). With more than one worker, packets of one SA are opened by several workers, each
	// behind its own rings, so they pass the window out of order: "auto" (the default) makes
	// the window cover what the rings can hold (daemon.ReplayWindowFloor); a number sets it;
	// 0 never widens an SA's window.
	MinReplayWindow *ReplayFloor `yaml:"min_replay_window" json:"min_replay_window,omitempty"`
}

// ReplayFloor is dataplane.min_replay_window: ReplayFloorAuto or a number of packets.
type ReplayFloor int32

// ReplayFloorAuto sizes the floor from the workers and their rings.
const ReplayFloorAuto ReplayFloor = -1

// UnmarshalYAML implements yaml.Unmarshaler.
func (f *ReplayFloor) UnmarshalYAML(n *yaml.Node) error {
	v, err := scalar(n, "min_replay_window")
	if err != nil {
		return err
	}
	if v == "auto" {
		*f = ReplayFloorAuto
		return nil
	}
	i, err := strconv.Atoi(v)
	if err != nil || i < 0 || i > esp.MaxReplayWindow {
		return typeErr(n, "min_replay_window %q: want auto, 0 (never widen) or a window of up to %d packets", v,
			esp.MaxReplayWindow)
	}
	*f = ReplayFloor(i)
	return nil
}

// ReplayWindowFloor reports dataplane.min_replay_window: auto (the default), or the floor.
func (d Dataplane) ReplayWindowFloor() (n uint32, auto bool) {
	if d.MinReplayWindow == nil || *d.MinReplayWindow == ReplayFloorAuto {
		return 0, true
	}
	return uint32(*d.MinReplayWindow), false
}

// MSSClamp is dataplane.mss_clamp: 0 off, MSSClampAuto, or the MSS to clamp to.
type MSSClamp int

// MSSClampAuto clamps to each SA's inner MTU minus the headers.
const MSSClampAuto MSSClamp = -1

// UnmarshalYAML implements yaml.Unmarshaler.
func (m *MSSClamp) UnmarshalYAML(n *yaml.Node) error {
	v, err := scalar(n, "mss_clamp")
	if err != nil {
		return err
	}
	if v == "auto" {
		*m = MSSClampAuto
		return nil
	}
	i, err := strconv.Atoi(v)
	if err != nil || (i != 0 && (i < 88 || i > 65535)) {
		return typeErr(n, "mss_clamp %q: want auto, 0 (off) or an MSS from 88 to 65535", v)
	}
	*m = MSSClamp(i)
	return nil
}

// CompletesChecksums reports the effective checksum_completion setting (default true).
func (d Dataplane) CompletesChecksums() bool {
	return d.ChecksumCompletion == nil || *d.ChecksumCompletion
}

// Daemon configures the control plane of `xdpsec run`.
type Daemon struct {
	// Socket is the API's unix socket; default /run/xdpsec/<instance>.sock.
	Socket string `yaml:"socket" json:"socket"`
	// PollInterval is how often lifetimes are updated from the card's counters.
	PollInterval Duration `yaml:"poll_interval" json:"poll_interval"`
	// Metrics is an optional host:port for Prometheus metrics: a loopback address (or none, which
	// means 127.0.0.1) unless MetricsPublic says otherwise (CheckMetricsAddr).
	Metrics string `yaml:"metrics" json:"metrics,omitempty"`
	// MetricsPublic allows Metrics to name an address other hosts can reach.
	MetricsPublic bool `yaml:"metrics_public" json:"metrics_public,omitempty"`
	// SocketGroup (a group name or number), when set, may use the API besides root and the daemon's
	// user: an IKE daemon running as another user (strongSwan's charon.user/charon.group).
	SocketGroup string `yaml:"socket_group" json:"socket_group,omitempty"`
	// EventBacklog is how many events the daemon keeps for event streams that resume (default 4096).
	EventBacklog int `yaml:"event_backlog" json:"event_backlog,omitempty"`
}

// DefaultVerdict is what happens to traffic no policy matches, per direction: bypass (the default)
// or discard.
type DefaultVerdict struct {
	In  Action `yaml:"in" json:"in"`
	Out Action `yaml:"out" json:"out"`
}

// Defaults are the verdicts as the card takes them.
func (d DefaultVerdict) Defaults() ipsec.Defaults {
	return ipsec.Defaults{Out: d.Out.Action, In: d.In.Action}
}

// Policy is one SPD entry (RFC 4301 §4.4.1): selectors, a direction, a
// priority (lower wins, as in ip xfrm) and an action. A protect policy names
// the SA it uses (out) or expects traffic through (in), by name or by reqid.
type Policy struct {
	Name     string `yaml:"name" json:"name"`
	Dir      Dir    `yaml:"dir" json:"dir"`
	Src      Prefix `yaml:"src" json:"src"`
	Dst      Prefix `yaml:"dst" json:"dst"`
	Proto    Proto  `yaml:"proto" json:"proto"`
	Sport    Ports  `yaml:"sport" json:"sport"`
	Dport    Ports  `yaml:"dport" json:"dport"`
	ICMPType *uint8 `yaml:"icmp_type" json:"icmp_type,omitempty"`
	ICMPCode *uint8 `yaml:"icmp_code" json:"icmp_code,omitempty"`
	Priority uint32 `yaml:"priority" json:"priority"`
	Action   Action `yaml:"action" json:"action"`
	SA       string `yaml:"sa" json:"sa,omitempty"`
	Reqid    uint32 `yaml:"reqid" json:"reqid,omitempty"`
	// Offload lists the interfaces this policy may be offloaded to; empty
	// means every interface of the instance.
	Offload []string `yaml:"offload" json:"offload,omitempty"`
}

// SA is one Security Association: one direction of one ESP flow. The field
// names follow ip xfrm state; keys are Key values that never print.
type SA struct {
	Name  string `yaml:"name" json:"name"`
	SPI   SPI    `yaml:"spi" json:"spi"`
	Src   Addr   `yaml:"src" json:"src"` // outer source (tunnel) or the sender (transport)
	Dst   Addr   `yaml:"dst" json:"dst"`
	Mode  Mode   `yaml:"mode" json:"mode"`
	Reqid uint32 `yaml:"reqid" json:"reqid,omitempty"`

	AEAD *AEAD `yaml:"aead" json:"aead,omitempty"`
	Enc  *Enc  `yaml:"enc" json:"enc,omitempty"`
	Auth *Auth `yaml:"auth" json:"auth,omitempty"`

	ESN bool `yaml:"esn" json:"esn"`
	// ReplayWindow is the anti-replay window in packets; 0 disables it.
	// Omitted means DefaultReplayWindow.
	ReplayWindow *uint32 `yaml:"replay_window" json:"replay_window"`
	Encap        *Encap  `yaml:"encap" json:"encap,omitempty"`
	// Seq restores state: outbound, the last sequence number already used;
	// inbound, the highest one already received. It applies when the SA is
	// added, never on a reload of an SA that already runs.
	Seq uint64 `yaml:"seq" json:"seq"`

	Lifetime Lifetime `yaml:"lifetime" json:"lifetime"`
	// Offload lists the interfaces this SA may be offloaded to; empty means
	// every interface of the instance.
	Offload []string `yaml:"offload" json:"offload,omitempty"`

	// TTL is the outer TTL / hop limit in tunnel mode (default 64).
	TTL uint8 `yaml:"ttl" json:"ttl"`
	// DF is the outer IPv4 Don't-Fragment policy in tunnel mode (default copy).
	DF DF `yaml:"df" json:"df"`
	// TFCPad pads every outbound inner packet up to this many bytes (RFC 4303
	// §2.7 traffic flow confidentiality; tunnel mode only; 0 = off).
	TFCPad uint16 `yaml:"tfc_pad" json:"tfc_pad,omitempty"`
}

// AEAD is a combined-mode algorithm. Key is key ‖ salt as ip xfrm takes it.
type AEAD struct {
	Alg     string `yaml:"alg" json:"alg"`
	Key     Key    `yaml:"key" json:"key"`
	ICVBits uint16 `yaml:"icv_bits" json:"icv_bits"`
}

// Enc is the cipher of an encrypt-then-MAC suite.
type Enc struct {
	Alg string `yaml:"alg" json:"alg"`
	Key Key    `yaml:"key" json:"key"`
}

// Auth is the integrity algorithm of an encrypt-then-MAC suite.
type Auth struct {
	Alg       string `yaml:"alg" json:"alg"`
	Key       Key    `yaml:"key" json:"key"`
	TruncBits uint16 `yaml:"trunc_bits" json:"trunc_bits"`
}

// Encap is RFC 3948 UDP encapsulation.
type Encap struct {
	Type  EncapType `yaml:"type" json:"type"`
	Sport uint16    `yaml:"sport" json:"sport"`
	Dport uint16    `yaml:"dport" json:"dport"`
}

// Lifetime holds the soft and hard limits of RFC 4301 §4.4.2.1; 0 is no
// limit. The *_add_seconds count from when the SA was added, *_use_seconds
// from its first use.
type Lifetime struct {
	SoftBytes      uint64 `yaml:"soft_bytes" json:"soft_bytes,omitempty"`
	HardBytes      uint64 `yaml:"hard_bytes" json:"hard_bytes,omitempty"`
	SoftPackets    uint64 `yaml:"soft_packets" json:"soft_packets,omitempty"`
	HardPackets    uint64 `yaml:"hard_packets" json:"hard_packets,omitempty"`
	SoftAddSeconds uint64 `yaml:"soft_add_seconds" json:"soft_add_seconds,omitempty"`
	HardAddSeconds uint64 `yaml:"hard_add_seconds" json:"hard_add_seconds,omitempty"`
	SoftUseSeconds uint64 `yaml:"soft_use_seconds" json:"soft_use_seconds,omitempty"`
	HardUseSeconds uint64 `yaml:"hard_use_seconds" json:"hard_use_seconds,omitempty"`
}

// Defaults filled in by Parse for fields left out.
const (
	DefaultInstance     = "xdpsec"
	DefaultPolicies     = 16384 // the card's default room (issue 3: at least 16,384 policies
	DefaultSAs          = 65536 // and 65,536 SAs); a few MiB of maps in all
	DefaultFlowCache    = 65536
	DefaultUMEMFrames   = 16384
	DefaultFrameSize    = 4096
	DefaultReplayWindow = 128
	DefaultTTL          = 64
	DefaultICVBits      = 128
	DefaultTruncBits    = 128
	DefaultNATTPort     = 4500 // RFC 3948 §2.1
	DefaultPollInterval = time.Second
	// DefaultEventBacklog is daemon.event_backlog's default.
	DefaultEventBacklog = 4096
	// MaxEventBacklog bounds it (an event is a few hundred bytes).
	MaxEventBacklog = 1 << 20
	// MaxFileSize bounds what Load reads: a configuration is small.
	MaxFileSize = 16 << 20
)

// Load reads, parses and validates a configuration file. A daemon uses
// LoadChecked, which also checks who can read and change the file.
func Load(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("load config: %w", err)
	}
	defer f.Close()
	return read(path, f)
}

// Parse decodes data strictly (unknown fields are errors), fills in defaults
// and validates the whole configuration. name is used in messages. On error
// it returns every problem found, joined (errors.Join), and no Config.
//
// A value that does not parse (a bad prefix, a key that is not hex) does not
// stop the checks: the rest of the file is validated as well, and what the
// broken value would make the checks say about its own field (a "missing"
// address, a key of length 0) is left out, so every problem is reported once.
// Only text that is not YAML at all stops at the first error.
func Parse(name string, data []byte) (*Config, error) {
	c, _, errs := parse(name, data)
	if len(errs) > 0 {
		if c != nil {
			c.Wipe()
		}
		return nil, errors.Join(errs...)
	}
	return c, nil
}

// parse decodes and validates data, collecting every problem. It returns the
// configuration as far as it decoded, with defaults filled in (nil when the
// text is not YAML or empty), where each field is written, and the problems.
func parse(name string, data []byte) (*Config, *positions, []error) {
	pos := &positions{}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, pos, []error{syntaxErr(name, err)}
	}
	pos.index(&root)

	c := &Config{File: name}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var errs []error
	err := dec.Decode(c)
	switch {
	case errors.Is(err, io.EOF):
		return nil, pos, []error{&Error{File: name, Err: fmt.Errorf("%w: the file is empty", ErrInvalid)}}
	case err != nil:
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			return nil, pos, []error{syntaxErr(name, err)}
		}
		// yaml.v3 decodes what it can around a value it cannot: go on with that.
		for _, msg := range te.Errors {
			errs = append(errs, pos.typeError(name, msg))
		}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		errs = append(errs, &Error{File: name, Err: fmt.Errorf("%w: more than one YAML document", ErrInvalid)})
	}
	c.setDefaults()
	if err := c.validate(pos); err != nil {
		errs = append(errs, unjoin(err)...)
	}
	sortByLine(errs)
	return c, pos, errs
}

// sortByLine puts located errors in file order (those without a line first), keeping the order
// of errors on one line.
func sortByLine(errs []error) {
	line := func(err error) int {
		var e *Error
		if errors.As(err, &e) {
			return e.Line
		}
		return 0
	}
	slices.SortStableFunc(errs, func(a, b error) int { return line(a) - line(b) })
}

// unjoin splits an errors.Join result into its errors.
func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// syntaxErr locates one of yaml.v3's syntax errors ("yaml: line 3: …").
func syntaxErr(name string, err error) *Error {
	e := &Error{File: name}
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if m := lineRE.FindStringSubmatch(msg); m != nil {
		e.Line, _ = strconv.Atoi(m[1])
		msg = m[2]
	}
	e.Err = fmt.Errorf("%w: %s", ErrSyntax, msg)
	return e
}

func (c *Config) setDefaults() {
	if c.Instance == "" {
		c.Instance = DefaultInstance
	}
	def32 := func(v *uint32, d uint32) {
		if *v == 0 {
			*v = d
		}
	}
	def32(&c.Capacities.Policies, DefaultPolicies)
	def32(&c.Capacities.SAs, DefaultSAs)
	def32(&c.Capacities.FlowCache, DefaultFlowCache)
	def32(&c.Dataplane.UMEMFrames, DefaultUMEMFrames)
	def32(&c.Dataplane.FrameSize, DefaultFrameSize)
	if c.Dataplane.XDPMode == "" {
		c.Dataplane.XDPMode = XDPAuto
	}
	if c.Daemon.Socket == "" {
		c.Daemon.Socket = DefaultSocket(c.Instance)
	}
	if c.StateDir == "" {
		c.StateDir = DefaultStateDir(c.Instance)
	}
	if c.OnExit == "" {
		c.OnExit = OnExitGuard
	}
	if c.Daemon.PollInterval.Duration == 0 {
		c.Daemon.PollInterval.Duration = DefaultPollInterval
	}
	if c.Daemon.EventBacklog == 0 {
		c.Daemon.EventBacklog = DefaultEventBacklog
	}
	for i := range c.SAs {
		c.SAs[i].setDefaults()
	}
}

func (s *SA) setDefaults() {
	if s.ReplayWindow == nil {
		w := uint32(DefaultReplayWindow)
		s.ReplayWindow = &w
	}
	if s.TTL == 0 {
		s.TTL = DefaultTTL
	}
	if s.DF == "" {
		s.DF = DFCopy
	}
	if s.AEAD != nil && s.AEAD.ICVBits == 0 {
		s.AEAD.ICVBits = DefaultICVBits
	}
	if s.Auth != nil && s.Auth.TruncBits == 0 {
		s.Auth.TruncBits = DefaultTruncBits
	}
	if s.Encap != nil {
		if s.Encap.Sport == 0 {
			s.Encap.Sport = DefaultNATTPort
		}
		if s.Encap.Dport == 0 {
			s.Encap.Dport = DefaultNATTPort
		}
	}
}

// RunDirEnv names the environment variable that moves the socket directory (RunDir): for tests,
// and for a second set of gateways on one host that must not meet the first.
const RunDirEnv = "XDPSEC_RUN_DIR"

// DefaultRunDir is where the daemons' API sockets are unless RunDirEnv says otherwise.
const DefaultRunDir = "/run/xdpsec"

// RunDir is the directory of the daemons' default API sockets, <RunDir>/<instance>.sock, where
// the clients look for running daemons: $XDPSEC_RUN_DIR when it is an absolute path, else
// /run/xdpsec.
func RunDir() string {
	if d := os.Getenv(RunDirEnv); filepath.IsAbs(d) {
		return filepath.Clean(d)
	}
	return DefaultRunDir
}

// DefaultSocket is the API socket of an instance whose file names none: <RunDir>/<instance>.sock.
func DefaultSocket(instance string) string { return filepath.Join(RunDir(), instance+".sock") }

// DefaultStateDir is the state directory of an instance whose file names none
// (seqstate.DefaultDir).
func DefaultStateDir(instance string) string { return "/var/lib/xdpsec/" + instance }

// SetInstance renames the instance (the --instance flag) and moves a
// defaulted API socket and state directory along with it, then validates the
// result.
func (c *Config) SetInstance(name string) error {
	if c.Daemon.Socket == DefaultSocket(c.Instance) {
		c.Daemon.Socket = DefaultSocket(name)
	}
	if c.StateDir == DefaultStateDir(c.Instance) {
		c.StateDir = DefaultStateDir(name)
	}
	c.Instance = name
	return c.Validate()
}

// Window is the anti-replay window in force (0: disabled).
func (s *SA) Window() uint32 {
	if s.ReplayWindow == nil {
		return DefaultReplayWindow
	}
	return *s.ReplayWindow
}

// SA returns the SA named name, or nil.
func (c *Config) SA(name string) *SA {
	for i := range c.SAs {
		if c.SAs[i].Name == name {
			return &c.SAs[i]
		}
	}
	return nil
}

// Policy returns the policy named name, or nil.
func (c *Config) Policy(name string) *Policy {
	for i := range c.Policies {
		if c.Policies[i].Name == name {
			return &c.Policies[i]
		}
	}
	return nil
}

// Keys returns every key of the SA (for wiping).
func (s *SA) Keys() []Key {
	var ks []Key
	if s.AEAD != nil {
		ks = append(ks, s.AEAD.Key)
	}
	if s.Enc != nil {
		ks = append(ks, s.Enc.Key)
	}
	if s.Auth != nil {
		ks = append(ks, s.Auth.Key)
	}
	return ks
}

// Clone is a copy of the SA with key bytes of its own: wiping one does not wipe the other.
func (s *SA) Clone() SA {
	c := *s
	if s.AEAD != nil {
		a := *s.AEAD
		a.Key = NewKey(a.Key.Bytes())
		c.AEAD = &a
	}
	if s.Enc != nil {
		e := *s.Enc
		e.Key = NewKey(e.Key.Bytes())
		c.Enc = &e
	}
	if s.Auth != nil {
		a := *s.Auth
		a.Key = NewKey(a.Key.Bytes())
		c.Auth = &a
	}
	c.Offload = slices.Clone(s.Offload)
	return c
}

// Wipe overwrites the key bytes of the SA (and of every copy sharing them).
func (s *SA) Wipe() {
	for _, k := range s.Keys() {
		k.Wipe()
	}
}

// Wipe overwrites every key in the configuration.
func (c *Config) Wipe() {
	for i := range c.SAs {
		c.SAs[i].Wipe()
	}
}

// RequireDataplane checks what `xdpsec run` needs beyond what Parse checks:
// both interfaces named. The offline tools need only SAs.
func (c *Config) RequireDataplane() error {
	var errs []error
	if c.Interfaces.Protected == "" {
		errs = append(errs, &Error{File: c.File, Field: "interfaces.protected", Err: ErrMissing})
	}
	if c.Interfaces.Wire == "" {
		errs = append(errs, &Error{File: c.File, Field: "interfaces.wire", Err: ErrMissing})
	}
	return errors.Join(errs...)
}

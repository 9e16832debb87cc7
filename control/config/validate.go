package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/xdpsec/xdpsec/crypto/esp"
	"github.com/xdpsec/xdpsec/ipsec"
)

var (
	// Instance names become directory and file names (pins, socket).
	instanceRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$`)
	// Entry names appear in CLI arguments, logs and metric labels.
	nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$`)
)

// Bounds of the capacities: the card's maps are sized from them, and a typo
// should not ask the kernel for gigabytes.
const (
	MaxPolicies   = 0xffff // policy ids are 16 bits in the card's metadata (loader.MaxPolicies)
	MaxSAs        = 1 << 20
	MaxFlowCache  = 1 << 24
	MinUMEMFrames = 64
	MaxUMEMFrames = 1 << 20
)

// validator collects every problem before Parse gives up, so the user sees
// them all at once.
type validator struct {
	c    *Config
	pos  *positions
	errs []error
	// sas indexes c.SAs by name for the policies' references (Config.SA is a linear search: with
	// tens of thousands of policies and SAs, validation was quadratic). The first SA of a name wins,
	// as in Config.SA; duplicates are reported on their own.
	sas map[string]*SA
}

// saNamed is Config.SA through the validator's index.
func (v *validator) saNamed(name string) *SA {
	if v.sas == nil {
		v.sas = make(map[string]*SA, len(v.c.SAs))
		for i := range v.c.SAs {
			if _, dup := v.sas[v.c.SAs[i].Name]; !dup {
				v.sas[v.c.SAs[i].Name] = &v.c.SAs[i]
			}
		}
	}
	return v.sas[name]
}

func (v *validator) top(field string, err error) { v.report("", 0, "", field, err) }

func (v *validator) sa(i int, field string, err error) {
	v.report("sa", i, v.c.SAs[i].Name, field, err)
}

func (v *validator) policy(i int, field string, err error) {
	v.report("policy", i, v.c.Policies[i].Name, field, err)
}

// report adds a located error, unless the field's value did not decode: that was reported
// already, and what it left behind (a zero value) says nothing new.
func (v *validator) report(section string, i int, name, field string, err error) {
	e := v.pos.fieldErr(v.c.File, section, i, name, field, err)
	if !v.pos.isBroken(section, i, field, e.Line) {
		v.errs = append(v.errs, e)
	}
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

func (c *Config) validate(pos *positions) error {
	v := &validator{c: c, pos: pos}
	v.topLevel()
	for i := range c.SAs {
		v.checkSA(i)
	}
	v.uniqueSAs()
	for i := range c.Policies {
		v.checkPolicy(i)
	}
	v.uniquePolicies()
	return errors.Join(v.errs...)
}

// Validate re-checks a Config built or changed in code (Parse already ran it).
func (c *Config) Validate() error {
	var pos positions
	pos.top = map[string]int{}
	c.setDefaults()
	return c.validate(&pos)
}

func validIfName(s string) bool {
	// IFNAMSIZ is 16 with the NUL; the kernel refuses '/', ':' and whitespace.
	return s != "" && len(s) < 16 && s != "." && s != ".." && !strings.ContainsAny(s, "/: \t\n")
}

func (v *validator) topLevel() {
	c := v.c
	if !instanceRE.MatchString(c.Instance) {
		v.top("instance", invalid("%q: want 1-32 letters, digits, '-' or '_', starting with a letter or digit", c.Instance))
	}
	ifs := c.Interfaces
	for _, f := range []struct{ field, name string }{{"interfaces.protected", ifs.Protected}, {"interfaces.wire", ifs.Wire}} {
		if f.name != "" && !validIfName(f.name) {
			v.top(f.field, invalid("%q is not an interface name", f.name))
		}
	}
	switch {
	case (ifs.Protected == "") != (ifs.Wire == ""):
		field := "interfaces.protected"
		if ifs.Wire == "" {
			field = "interfaces.wire"
		}
		v.top(field, fmt.Errorf("%w: a gateway needs both interfaces", ErrMissing))
	case ifs.Protected != "" && ifs.Protected == ifs.Wire:
		v.top("interfaces.wire", fmt.Errorf("%w: protected and wire are both %q", ErrConflict, ifs.Wire))
	}
	caps := c.Capacities
	for _, f := range []struct {
		field    string
		val, max uint32
	}{{"capacities.policies", caps.Policies, MaxPolicies}, {"capacities.sas", caps.SAs, MaxSAs}, {"capacities.flow_cache", caps.FlowCache, MaxFlowCache}} {
		if f.val > f.max {
			v.top(f.field, invalid("%d is more than %d", f.val, f.max))
		}
	}
	dp := c.Dataplane
	if dp.UMEMFrames < MinUMEMFrames || dp.UMEMFrames > MaxUMEMFrames || dp.UMEMFrames&(dp.UMEMFrames-1) != 0 {
		v.top("dataplane.umem_frames", invalid("%d: want a power of two from %d to %d", dp.UMEMFrames, MinUMEMFrames, MaxUMEMFrames))
	}
	if dp.FrameSize != 2048 && dp.FrameSize != 4096 {
		v.top("dataplane.frame_size", invalid("%d: want 2048 or 4096", dp.FrameSize))
	}
	if !filepath.IsAbs(c.Daemon.Socket) {
		v.top("daemon.socket", invalid("%q: want an absolute path", c.Daemon.Socket))
	}
	// The directory's owner and modes are checked when the daemon opens it (control/seqstate).
	if !filepath.IsAbs(c.StateDir) || filepath.Clean(c.StateDir) != c.StateDir || c.StateDir == "/" {
		v.top("state_dir", invalid("%q: want a clean absolute path of a directory of its own, like /var/lib/xdpsec/%s",
			c.StateDir, c.Instance))
	}
	if c.OnExit != OnExitGuard && c.OnExit != OnExitDetach {
		v.top("on_exit", invalid("%q: want guard or detach", c.OnExit))
	}
	for _, d := range []struct {
		field string
		a     ipsec.Action
	}{{"default_verdict.in", c.DefaultVerdict.In.Action}, {"default_verdict.out", c.DefaultVerdict.Out.Action}} {
		if d.a != ipsec.ActionBypass && d.a != ipsec.ActionDiscard {
			v.top(d.field, invalid("%s: want bypass or discard (there is no SA to protect with)", d.a))
		}
	}
	if m := c.Daemon.Metrics; m != "" {
		if err := CheckMetricsAddr(m, c.Daemon.MetricsPublic); err != nil {
			v.top("daemon.metrics", fmt.Errorf("%w: %w", ErrInvalid, err))
		}
	}
	if n := c.Daemon.EventBacklog; n < 1 || n > MaxEventBacklog {
		v.top("daemon.event_backlog", invalid("%d: want 1 to %d events", n, MaxEventBacklog))
	}
}

func (v *validator) checkOffload(list []string, report func(string, error)) {
	seen := map[string]bool{}
	ifs := v.c.Interfaces
	for _, name := range list {
		switch {
		case !validIfName(name):
			report("offload", invalid("%q is not an interface name", name))
		case seen[name]:
			report("offload", fmt.Errorf("%w: interface %q listed twice", ErrDuplicate, name))
		case ifs.Protected != "" && name != ifs.Protected && name != ifs.Wire:
			report("offload", invalid("%q is not one of this instance's interfaces (%s, %s)", name, ifs.Protected, ifs.Wire))
		}
		seen[name] = true
	}
}

func (v *validator) checkSA(i int) {
	s := &v.c.SAs[i]
	report := func(field string, err error) { v.sa(i, field, err) }
	reported := map[string]bool{}
	mark := func(field string, err error) { reported[field] = true; report(field, err) }

	if s.Name == "" {
		mark("name", ErrMissing)
	} else if !nameRE.MatchString(s.Name) {
		mark("name", invalid("%q: want letters, digits, '-', '_', '.' or ':' (at most 64)", s.Name))
	}
	if s.SPI == 0 {
		mark("spi", ErrMissing)
	}
	if !s.Src.IsValid() {
		mark("src", ErrMissing)
	}
	if !s.Dst.IsValid() {
		mark("dst", ErrMissing)
	}
	if s.Src.IsValid() && s.Dst.IsValid() && s.Src.Is4() != s.Dst.Is4() {
		mark("dst", fmt.Errorf("%w: dst %s and src %s", ErrFamilyMismatch, s.Dst, s.Src))
	}
	if s.Mode.Mode == 0 {
		mark("mode", ErrMissing)
	}
	switch {
	case s.AEAD != nil && (s.Enc != nil || s.Auth != nil):
		mark("aead", fmt.Errorf("%w: aead, or enc with auth, not both", ErrConflict))
	case s.AEAD == nil && s.Enc == nil && s.Auth == nil:
		mark("aead", fmt.Errorf("%w: an SA needs aead, or enc with auth", ErrMissing))
	case s.AEAD == nil && s.Enc == nil:
		mark("enc", fmt.Errorf("%w: auth alone is not a suite; for integrity only use enc ecb(cipher_null)", ErrMissing))
	case s.AEAD == nil && s.Auth == nil:
		// RFC 8221 §3: encryption without integrity must not be used.
		mark("auth", fmt.Errorf("%w: enc needs auth (encryption without integrity is not allowed)", ErrMissing))
	}
	for _, a := range []struct {
		field string
		alg   string
		set   bool
	}{{"aead.alg", algOf(s.AEAD), s.AEAD != nil}, {"enc.alg", encAlgOf(s.Enc), s.Enc != nil}, {"auth.alg", authAlgOf(s.Auth), s.Auth != nil}} {
		if a.set && a.alg == "" {
			mark(a.field, ErrMissing)
		}
	}
	if s.Encap != nil && s.Encap.Type == "" {
		mark("encap.type", ErrMissing)
	}
	if s.Mode.Mode == ipsec.ModeTransport && s.TFCPad != 0 {
		mark("tfc_pad", invalid("traffic flow confidentiality padding needs tunnel mode (RFC 4303 §2.7)"))
	}
	lt := s.Lifetime
	for _, l := range []struct {
		name       string
		soft, hard uint64
	}{{"bytes", lt.SoftBytes, lt.HardBytes}, {"packets", lt.SoftPackets, lt.HardPackets},
		{"add_seconds", lt.SoftAddSeconds, lt.HardAddSeconds}, {"use_seconds", lt.SoftUseSeconds, lt.HardUseSeconds}} {
		if l.soft != 0 && l.hard != 0 && l.soft > l.hard {
			mark("lifetime.soft_"+l.name, invalid("soft limit %d is above the hard limit %d", l.soft, l.hard))
		}
	}
	v.checkOffload(s.Offload, report)

	if len(reported) > 0 {
		return
	}
	// The engine knows the algorithms, key lengths and ranges: ask it, so
	// there is one list of what is supported.
	p, err := s.ESPParams()
	if err == nil {
		err = p.Validate()
	}
	if err != nil {
		var fe *esp.FieldError
		if errors.As(err, &fe) {
			report(fe.Field, engineErr(fe.Err))
		} else {
			report("", engineErr(err))
		}
	}
}

func algOf(a *AEAD) string {
	if a == nil {
		return ""
	}
	return a.Alg
}

func encAlgOf(e *Enc) string {
	if e == nil {
		return ""
	}
	return e.Alg
}

func authAlgOf(a *Auth) string {
	if a == nil {
		return ""
	}
	return a.Alg
}

// mappedErr carries the engine's error under this package's sentinel, so
// errors.Is works with both.
type mappedErr struct {
	kind, err error
}

func (e *mappedErr) Error() string   { return e.err.Error() }
func (e *mappedErr) Unwrap() []error { return []error{e.kind, e.err} }

func engineErr(err error) error {
	kind := ErrInvalid
	switch {
	case errors.Is(err, esp.ErrKeyLength):
		kind = ErrKeyLength
	case errors.Is(err, esp.ErrUnknownAlgorithm):
		kind = ErrUnknownAlgorithm
	case errors.Is(err, esp.ErrMissing):
		kind = ErrMissing
	}
	return &mappedErr{kind: kind, err: err}
}

func (v *validator) uniqueSAs() {
	type said struct {
		spi SPI
		dst netip.Addr
	}
	names := map[string]int{}
	ids := map[said]int{}
	for i := range v.c.SAs {
		s := &v.c.SAs[i]
		if s.Name != "" {
			if j, ok := names[s.Name]; ok {
				v.sa(i, "name", fmt.Errorf("%w: sa %q is already defined (entry #%d)", ErrDuplicate, s.Name, j+1))
			} else {
				names[s.Name] = i
			}
		}
		// The SAD is keyed by (SPI, destination, protocol) as in RFC 4301
		// §4.4.2; the protocol is always ESP here.
		if s.SPI != 0 && s.Dst.IsValid() {
			id := said{s.SPI, s.Dst.Addr}
			if j, ok := ids[id]; ok {
				v.sa(i, "spi", fmt.Errorf("%w: spi %s with dst %s is already sa %s", ErrDuplicate, s.SPI, s.Dst, entryName(v.c.SAs[j].Name, j)))
			} else {
				ids[id] = i
			}
		}
	}
}

func (v *validator) checkPolicy(i int) {
	p := &v.c.Policies[i]
	report := func(field string, err error) { v.policy(i, field, err) }
	if p.Name == "" {
		report("name", ErrMissing)
	} else if !nameRE.MatchString(p.Name) {
		report("name", invalid("%q: want letters, digits, '-', '_', '.' or ':' (at most 64)", p.Name))
	}
	switch {
	case !p.Dir.Set:
		report("dir", ErrMissing)
	case !p.Dir.OnCard():
		report("dir", invalid("%q: the card has no forward tables; forwarded traffic is what in and out policies select", p.Dir))
	}
	if !p.Action.Set {
		report("action", ErrMissing)
	}
	if !p.Src.IsValid() {
		report("src", ErrMissing)
	}
	if !p.Dst.IsValid() {
		report("dst", ErrMissing)
	}
	familyKnown := p.Src.IsValid() && p.Dst.IsValid()
	if familyKnown && p.Src.Addr().Is4() != p.Dst.Addr().Is4() {
		report("dst", fmt.Errorf("%w: dst %s and src %s", ErrFamilyMismatch, p.Dst, p.Src))
		familyKnown = false
	}
	is4 := p.Src.Addr().Is4()
	switch {
	case familyKnown && p.Proto.Proto == ipsec.ProtoICMP && !is4:
		report("proto", fmt.Errorf("%w: icmp is IPv4's; IPv6 selectors use ipv6-icmp", ErrFamilyMismatch))
	case familyKnown && p.Proto.Proto == ipsec.ProtoICMPv6 && is4:
		report("proto", fmt.Errorf("%w: ipv6-icmp is IPv6's; IPv4 selectors use icmp", ErrFamilyMismatch))
	}
	// A proto that did not decode reads as any: the ports and ICMP fields cannot be judged.
	protoKnown := !v.pos.isBroken("policy", i, "proto", 0)
	for _, pr := range []struct {
		field string
		r     ipsec.PortRange
	}{{"sport", p.Sport.PortRange}, {"dport", p.Dport.PortRange}} {
		switch {
		case pr.r.IsAny() || !protoKnown:
		case !p.Proto.HasPorts():
			// ICMP's type and code have fields of their own (icmp_type, icmp_code).
			report(pr.field, invalid("proto %s has no ports; ports need tcp, udp, sctp, dccp or udplite", p.Proto))
		case pr.r == ipsec.Port(0):
			report(pr.field, invalid("port 0 is not a port; omit the field to match any port"))
		}
	}
	for _, ic := range []struct {
		field string
		set   bool
	}{{"icmp_type", p.ICMPType != nil}, {"icmp_code", p.ICMPCode != nil}} {
		if ic.set && protoKnown && !p.Proto.IsICMP() {
			report(ic.field, invalid("needs proto icmp or ipv6-icmp, not %s", p.Proto))
		}
	}
	v.checkOffload(p.Offload, report)

	hasSA := p.SA != "" || p.Reqid != 0
	switch {
	case !p.Action.Set:
		// Reported above; a named sa is still checked below.
	case p.Action.Action == ipsec.ActionProtect:
		if !hasSA {
			report("sa", fmt.Errorf("%w: a protect policy names its sa or reqid", ErrMissing))
		}
	default: // bypass, discard
		if hasSA {
			field := "sa"
			if p.SA == "" {
				field = "reqid"
			}
			report(field, fmt.Errorf("%w: action %s takes no sa or reqid", ErrConflict, p.Action))
		}
		return
	}
	if p.SA == "" {
		// A reqid without a configured SA is fine: a key manager adds it
		// later (until then the card drops the traffic and raises ACQUIRE).
		return
	}
	sa := v.saNamed(p.SA)
	if sa == nil {
		report("sa", fmt.Errorf("%w %q", ErrUnknownSA, p.SA))
		return
	}
	if p.Reqid != 0 && sa.Reqid != p.Reqid {
		report("reqid", fmt.Errorf("%w: reqid %d but sa %q has reqid %d", ErrConflict, p.Reqid, p.SA, sa.Reqid))
	}
	if familyKnown && sa.Mode.Mode == ipsec.ModeTransport && sa.Src.IsValid() && sa.Src.Is4() != is4 {
		report("sa", fmt.Errorf("%w: transport-mode sa %q is %s, the selector is %s", ErrFamilyMismatch, p.SA, family(sa.Src.Is4()), family(is4)))
	}
}

func family(is4 bool) string {
	if is4 {
		return "IPv4"
	}
	return "IPv6"
}

func (v *validator) uniquePolicies() {
	type key struct {
		dir  ipsec.Dir
		prio uint32
		sel  ipsec.Selector
	}
	names := map[string]int{}
	sels := map[key]int{}
	dirOf := map[string]ipsec.Dir{}
	for i := range v.c.Policies {
		p := &v.c.Policies[i]
		if p.Name != "" {
			if j, ok := names[p.Name]; ok {
				v.policy(i, "name", fmt.Errorf("%w: policy %q is already defined (entry #%d)", ErrDuplicate, p.Name, j+1))
			} else {
				names[p.Name] = i
			}
		}
		if p.Src.IsValid() && p.Dst.IsValid() && p.Dir.Set {
			k := key{dir: p.Dir.Dir, prio: p.Priority, sel: p.Selector()}
			if j, ok := sels[k]; ok {
				v.policy(i, "priority", fmt.Errorf("%w: same direction, selector and priority as policy %s; which one wins would be arbitrary",
					ErrDuplicate, entryName(v.c.Policies[j].Name, j)))
			} else {
				sels[k] = i
			}
		}
		// An SA is one direction of one flow: it cannot serve in and out.
		if p.SA != "" && p.Action.Action == ipsec.ActionProtect && p.Dir.Set {
			if d, ok := dirOf[p.SA]; ok && d != p.Dir.Dir {
				v.policy(i, "sa", fmt.Errorf("%w: sa %q already serves %s policies; an SA is one direction", ErrConflict, p.SA, d))
			} else {
				dirOf[p.SA] = p.Dir.Dir
			}
		}
	}
}

// ErrMetricsNotLoopback is wrapped by CheckMetricsAddr for an address other hosts may reach.
var ErrMetricsNotLoopback = errors.New("not a loopback address")

// CheckMetricsAddr checks a metrics address (daemon.metrics, --metrics): host:port, where the host
// is a loopback address, "localhost" or empty (the metrics server then listens on 127.0.0.1) unless
// public allows any. The metrics name every SA and policy and show their traffic and state to
// whoever connects, so serving them beyond this machine is an explicit choice.
func CheckMetricsAddr(addr string, public bool) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || port == "" {
		return fmt.Errorf("%q: want host:port, like 127.0.0.1:9585", addr)
	}
	if public || host == "" || host == "localhost" {
		return nil
	}
	if ip, err := netip.ParseAddr(host); err == nil && ip.Unmap().IsLoopback() {
		return nil
	}
	return fmt.Errorf("%q: %w, and the metrics show every SA's name, traffic and state to whoever connects: "+
		"use 127.0.0.1:%s (or [::1]:%s), or allow other hosts explicitly (daemon.metrics_public: true, or --metrics-public)",
		addr, ErrMetricsNotLoopback, port, port)
}

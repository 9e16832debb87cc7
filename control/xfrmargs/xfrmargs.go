// Package xfrmargs parses the argument grammar of `ip xfrm state` and `ip xfrm policy` (iproute2's
// ip-xfrm(8)) for the parts that apply to xdpsec, so `xdpsec sa add …` and `xdpsec sp add …` accept what
// users already type:
//
//	sa add src 198.18.0.1 dst 198.19.0.1 proto esp spi 0x1001 reqid 1 mode tunnel \
//	    aead 'rfc4106(gcm(aes))' 0x… 128 replay-window 128 flag esn \
//	    encap espinudp 4500 4500 0.0.0.0 limit byte-soft 1000000 limit time-hard 3600
//	sp add src 198.18.1.0/24 dst 198.18.2.0/24 proto tcp dport 80 dir out priority 100 \
//	    tmpl src 198.18.0.1 dst 198.19.0.1 proto esp reqid 1 mode tunnel
//
// Extensions, all optional: `name NAME` (the config's handle), `offload dev IFACE` (repeatable, or
// `offload IFACE,IFACE`: the interfaces an SA or policy may be offloaded to), `sa NAME` in a policy (its
// template names the SA, as the config's `sa:` does), port ranges `sport 1000-2000`, and `action
// protect|bypass|discard` besides ip xfrm's allow/block. Differences: `auth ALG KEY` without a truncation
// length uses the algorithm's RFC length (RFC 4868: 128 bits for hmac(sha256)), not Linux's historical 96.
package xfrmargs

import (
	"errors"
	"fmt"
	"math/bits"
	"net/netip"
	"strconv"
	"strings"

	"github.com/xdpsec/xdpsec/control/sadb"
	"github.com/xdpsec/xdpsec/ipsec"
)

type scanner struct {
	args []string
	i    int
	what string // "sa add", … for messages
	// keys are what KEY arguments written "-" stand for, in order (ParseSAKeys); used counts them.
	keys [][]byte
	used int
}

func (s *scanner) more() bool { return s.i < len(s.args) }

// keyword reads the next keyword; unread gives it back to the caller of a sub-grammar (selector, tmpl)
// that does not know it.
func (s *scanner) keyword() string {
	s.i++
	return s.args[s.i-1]
}

func (s *scanner) unread() { s.i-- }

// next returns the value after keyword kw.
func (s *scanner) next(kw string) (string, error) {
	if !s.more() {
		return "", fmt.Errorf("%s: %s needs a value", s.what, kw)
	}
	v := s.args[s.i]
	s.i++
	return v, nil
}

// errf builds an error about keyword kw; string arguments that could be key material are hidden.
func (s *scanner) errf(kw, format string, args ...any) error {
	for i, a := range args {
		if v, ok := a.(string); ok {
			args[i] = hide(v)
		}
	}
	return fmt.Errorf("%s: %s: %s", s.what, kw, fmt.Sprintf(format, args...))
}

// hide returns v, or a placeholder when v could be key material — 0x followed by more than 16 hex
// digits, longer than any SPI, sequence number or port — so that a key that lands where another
// value belongs (a forgotten algorithm name, a shifted argument) never reaches a message or a log.
func hide(v string) string {
	if len(v) > 18 && (strings.HasPrefix(v, "0x") || strings.HasPrefix(v, "0X")) {
		return fmt.Sprintf("[a %d-character 0x value, not shown: it may be a key]", len(v))
	}
	return v
}

func (s *scanner) addr(kw string) (netip.Addr, error) {
	v, err := s.next(kw)
	if err != nil {
		return netip.Addr{}, err
	}
	a, err := netip.ParseAddr(v)
	if err != nil {
		return netip.Addr{}, s.errf(kw, "%q is not an IPv4 or IPv6 address", v)
	}
	return a.Unmap(), nil
}

func (s *scanner) prefix(kw string) (netip.Prefix, error) {
	v, err := s.next(kw)
	if err != nil {
		return netip.Prefix{}, err
	}
	if !strings.Contains(v, "/") {
		a, err := netip.ParseAddr(v)
		if err != nil {
			return netip.Prefix{}, s.errf(kw, "%q is not an address or ADDR/PLEN", v)
		}
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(v)
	if err != nil {
		return netip.Prefix{}, s.errf(kw, "%q is not an address or ADDR/PLEN", v)
	}
	return p.Masked(), nil
}

func (s *scanner) uint(kw string, bits int) (uint64, error) {
	v, err := s.next(kw)
	if err != nil {
		return 0, err
	}
	n, err := parseUint(v, bits)
	if err != nil {
		return 0, s.errf(kw, "%q is not a number (decimal or 0x-hex) of at most %d bits", v, bits)
	}
	return n, nil
}

// number reads an unsigned number (decimal or 0x-hex) that fits T.
func number[T uint8 | uint16 | uint32 | uint64](s *scanner, kw string) (T, error) {
	n, err := s.uint(kw, bits.Len64(uint64(^T(0))))
	return T(n), err
}

// esp reads the value of a proto keyword where only ESP may stand; why ends the message otherwise.
func (s *scanner) esp(kw, why string) error {
	v, err := s.next(kw)
	if err == nil && v != "esp" && v != "50" {
		err = s.errf(kw, "%q: %s", v, why)
	}
	return err
}

func (s *scanner) mode(kw string) (ipsec.Mode, error) {
	v, err := s.next(kw)
	if err != nil {
		return 0, err
	}
	m, err := ipsec.ParseMode(v)
	if err != nil || m == 0 {
		return 0, s.errf(kw, "%q: want tunnel or transport", v)
	}
	return m, nil
}

// dir reads an SA's direction: in or out.
func (s *scanner) dir(kw string) (ipsec.Dir, error) {
	d, err := s.policyDir(kw)
	if err == nil && !d.OnCard() {
		return 0, s.errf(kw, "%s: an SA is in or out", d)
	}
	return d, err
}

// policyDir reads a policy's direction: in, out or fwd (stored, never on the card: its inbound side
// applies the in policies to forwarded traffic).
func (s *scanner) policyDir(kw string) (ipsec.Dir, error) {
	v, err := s.next(kw)
	if err != nil {
		return 0, err
	}
	d, err := ipsec.ParseDir(v)
	if err != nil {
		return 0, s.errf(kw, "%q: want in, out or fwd", v)
	}
	return d, nil
}

func parseUint(v string, bits int) (uint64, error) {
	if h, ok := strings.CutPrefix(strings.ToLower(v), "0x"); ok {
		return strconv.ParseUint(h, 16, bits)
	}
	return strconv.ParseUint(v, 10, bits)
}

func (s *scanner) ports(kw string) (ipsec.PortRange, error) {
	v, err := s.next(kw)
	if err != nil {
		return ipsec.AnyPorts, err
	}
	r, err := ipsec.ParsePorts(v)
	if err != nil {
		return ipsec.AnyPorts, s.errf(kw, "%q is not a port 0-65535 or a range LO-HI", v)
	}
	return r, nil
}

func (s *scanner) offload(list *[]string) error {
	v, err := s.next("offload")
	if err != nil {
		return err
	}
	switch v {
	case "dev":
		if v, err = s.next("offload dev"); err != nil {
			return err
		}
	case "crypto", "packet":
		// ip xfrm's offload type: the card does "packet" offload; accept either and read on.
		if v, err = s.next("offload"); err != nil {
			return err
		}
		if v == "dev" {
			if v, err = s.next("offload dev"); err != nil {
				return err
			}
		}
	}
	for _, ifc := range strings.Split(v, ",") {
		if ifc == "" {
			return s.errf("offload", "empty interface name")
		}
		*list = append(*list, ifc)
	}
	// ip xfrm's "offload dev DEV dir in|out": the direction is the SA's own, read by the caller.
	return nil
}

// ParseSA parses the arguments of `ip xfrm state add|update`.
func ParseSA(what string, args []string) (sadb.SA, error) {
	return ParseSAKeys(what, args, nil)
}

// ParseSAKeys is ParseSA where a KEY argument written "-" stands for the next of keys (the lines of
// `xdpsec sa add --key-file`, in the order the arguments name the algorithms), so that keys need not
// appear on a command line. keys are 0x-hex like a KEY argument; every one must be used, and a key
// given as an argument is refused when keys are given (one source, no mix-ups).
func ParseSAKeys(what string, args []string, keys [][]byte) (sadb.SA, error) {
	s := &scanner{args: args, what: what, keys: keys}
	sa, err := parseSA(s)
	if err == nil && s.used != len(keys) {
		err = fmt.Errorf("%s: the key file has %d keys, and the arguments take %d (one per KEY written -)", what, len(keys), s.used)
	}
	if err != nil {
		sa.Wipe() // the keys parsed before the error
		return sadb.SA{}, err
	}
	return sa, nil
}

// parseSA returns what it parsed so far with an error, for the caller to wipe.
func parseSA(s *scanner) (sadb.SA, error) {
	what := s.what
	// ip xfrm's defaults: transport mode; the window is xdpsec's default (ip xfrm's 0 disables anti-replay).
	sa := sadb.SA{Proto: ipsec.ProtoESP, ReplayWindow: 128, Mode: ipsec.ModeTransport}
	for s.more() {
		kw := s.keyword()
		var err error
		switch kw {
		case "src":
			sa.Src, err = s.addr(kw)
		case "dst":
			sa.Dst, err = s.addr(kw)
		case "proto":
			err = s.esp(kw, "only esp is offloaded")
		case "spi":
			sa.SPI, err = number[uint32](s, kw)
		case "reqid":
			sa.Reqid, err = number[uint32](s, kw)
		case "mode":
			sa.Mode, err = s.mode(kw)
		case "name":
			sa.Name, err = s.next(kw)
		case "dir":
			var d ipsec.Dir
			d, err = s.dir(kw)
			sa.Dir = &d
		case "aead":
			sa.AEAD, err = s.alg(kw, true)
		case "enc":
			sa.Enc, err = s.alg(kw, false)
		case "auth":
			sa.Auth, err = s.alg(kw, false)
		case "auth-trunc":
			sa.Auth, err = s.alg(kw, true)
		case "replay-window":
			sa.ReplayWindow, err = number[uint32](s, kw)
		case "replay-seq", "replay-oseq":
			var lo uint64
			lo, err = s.uint(kw, 32)
			sa.Seq = sa.Seq&^0xffffffff | lo
		case "replay-seq-hi", "replay-oseq-hi":
			var hi uint64
			hi, err = s.uint(kw, 32)
			sa.Seq = sa.Seq&0xffffffff | hi<<32
		case "flag":
			var v string
			if v, err = s.next(kw); err == nil {
				for _, f := range strings.Split(v, ",") {
					switch f {
					case "esn":
						sa.ESN = true
					case "af-unspec":
						// What IKE daemons set on tunnel-mode SAs: inner packets of either family. A
						// tunnel-mode SA of xdpsec carries both anyway.
					case "noecn", "decap-dscp", "nopmtudisc", "wildrecv", "icmp", "align4":
						err = s.errf(kw, "%q is not supported by xdpsec", f)
					default:
						err = s.errf(kw, "unknown flag %q", f)
					}
				}
			}
		case "encap":
			err = s.encap(&sa)
		case "limit":
			err = s.limit(&sa.Limits)
		case "offload":
			err = s.offload(&sa.Offload)
		case "ttl":
			sa.TTL, err = number[uint8](s, kw)
		case "df":
			sa.DF, err = s.next(kw)
		case "tfc-pad":
			sa.TFCPad, err = number[uint16](s, kw)
		case "sel":
			// ip xfrm prints every SA with a selector (all-zero for tunnel-mode SAs of IKE daemons), so
			// users paste one back: a selector that selects everything is what xdpsec does anyway.
			var sel ipsec.Selector
			if err = s.selector(&sel); err == nil && !selectsAll(sel) {
				err = s.errf(kw, "SA selectors narrower than any are not supported: the policy's selector applies (xdpsec checks inbound traffic against the policies the SA serves)")
			}
		case "mark", "output-mark", "set-mark":
			err = s.errf(kw, "marks are not supported by xdpsec: the card selects traffic by addresses, protocol and ports only")
		case "if_id":
			err = s.errf(kw, "interface IDs (XFRM interfaces) are not supported by xdpsec: there are no xfrm interfaces, the card's policies select the traffic")
		case "ctx":
			err = s.errf(kw, "security contexts are not supported by xdpsec")
		default:
			err = fmt.Errorf("%s: unknown keyword %q", what, hide(kw))
		}
		if err != nil {
			return sa, err
		}
	}
	switch {
	case !sa.Src.IsValid():
		return sa, fmt.Errorf("%s: src ADDR is required", what)
	case !sa.Dst.IsValid():
		return sa, fmt.Errorf("%s: dst ADDR is required", what)
	case sa.SPI == 0:
		return sa, fmt.Errorf("%s: spi SPI is required", what)
	case sa.AEAD == nil && sa.Enc == nil:
		return sa, fmt.Errorf("%s: an algorithm is required: aead NAME KEY ICV-BITS, or enc NAME KEY with auth-trunc NAME KEY BITS", what)
	}
	return sa, nil
}

// selectsAll reports whether sel matches every packet (no addresses or /0, any protocol, any ports).
func selectsAll(sel ipsec.Selector) bool {
	all := func(p netip.Prefix) bool { return !p.IsValid() || p.Bits() == 0 }
	return all(sel.Src) && all(sel.Dst) && sel.Proto == ipsec.ProtoAny && !sel.ConstrainsPorts()
}

// alg reads NAME KEY [BITS].
func (s *scanner) alg(kw string, withBits bool) (*sadb.Algorithm, error) {
	name, err := s.next(kw)
	if err != nil {
		return nil, err
	}
	kv, err := s.next(kw + " " + hide(name))
	if err != nil {
		return nil, err
	}
	var key sadb.Key
	switch {
	case kv == "-" && s.used < len(s.keys):
		key, err = sadb.ParseKeyText(s.keys[s.used])
		s.used++
		if err != nil {
			return nil, s.errf(kw, "key %d of the key file: %v", s.used, err)
		}
	case kv == "-":
		return nil, s.errf(kw, "KEY - takes the next key from --key-file, and there is none (left)")
	case len(s.keys) > 0:
		return nil, s.errf(kw, "KEY must be - with --key-file: the keys come from the file only")
	default:
		if key, err = parseKey(kv); err != nil {
			return nil, s.errf(kw, "%v", err)
		}
	}
	a := &sadb.Algorithm{Name: name, Key: key}
	if withBits {
		n, err := s.uint(kw+" "+hide(name)+" KEY", 16)
		if err != nil {
			return nil, err
		}
		a.Bits = int(n)
	}
	return a, nil
}

func (s *scanner) encap(sa *sadb.SA) error {
	t, err := s.next("encap")
	if err != nil {
		return err
	}
	if t != "espinudp" {
		return s.errf("encap", "%q: only espinudp (RFC 3948) is supported", t)
	}
	sp, err := s.uint("encap espinudp SPORT", 16)
	if err != nil {
		return err
	}
	dp, err := s.uint("encap espinudp SPORT DPORT", 16)
	if err != nil {
		return err
	}
	// OADDR, the original address for NAT-T checksum fixups, is not used: ESP carries no such checksum.
	if _, err := s.addr("encap espinudp SPORT DPORT OADDR"); err != nil {
		return err
	}
	sa.Encap = &sadb.Encap{Type: "espinudp", Sport: uint16(sp), Dport: uint16(dp)}
	return nil
}

func (s *scanner) limit(l *sadb.Lifetime) error {
	kind, err := s.next("limit")
	if err != nil {
		return err
	}
	n, err := s.uint("limit "+kind, 64)
	if err != nil {
		return err
	}
	switch kind {
	case "byte-soft":
		l.SoftBytes = n
	case "byte-hard":
		l.HardBytes = n
	case "packet-soft":
		l.SoftPackets = n
	case "packet-hard":
		l.HardPackets = n
	case "time-soft":
		l.SoftAddSeconds = n
	case "time-hard":
		l.HardAddSeconds = n
	case "time-use-soft":
		l.SoftUseSeconds = n
	case "time-use-hard":
		l.HardUseSeconds = n
	default:
		return s.errf("limit", "unknown limit %q: want byte-soft, byte-hard, packet-soft, packet-hard, time-soft, time-hard, time-use-soft or time-use-hard", kind)
	}
	return nil
}

// parseRef reads what names an SA or a policy for delete and get: a bare NAME, `name NAME`, or the
// keywords of its identity, which ident reads (false: not one of them). It returns the name, if one
// was given.
func parseRef(what string, args []string, ident func(s *scanner, kw string) (bool, error)) (string, error) {
	if len(args) == 1 {
		return args[0], nil
	}
	s := &scanner{args: args, what: what}
	var name string
	for s.more() {
		kw := s.keyword()
		var err error
		if kw == "name" {
			name, err = s.next(kw)
		} else if ok, ierr := ident(s, kw); !ok {
			err = fmt.Errorf("%s: unknown keyword %q", what, hide(kw))
		} else {
			err = ierr
		}
		if err != nil {
			return "", err
		}
	}
	return name, nil
}

// ParseSARef parses what names an SA for `ip xfrm state delete|get`: `src A dst B proto esp spi N`
// (src is accepted and ignored: the SA's identity is (SPI, dst, proto)), or `name NAME`, or a bare NAME.
func ParseSARef(what string, args []string) (sadb.Ref, error) {
	var id sadb.SAID
	name, err := parseRef(what, args, func(s *scanner, kw string) (bool, error) {
		var err error
		switch kw {
		case "src":
			_, err = s.addr(kw)
		case "dst":
			id.Dst, err = s.addr(kw)
		case "proto":
			err = s.esp(kw, "only esp")
		case "spi":
			id.SPI, err = number[uint32](s, kw)
		default:
			return false, nil
		}
		return true, err
	})
	switch {
	case err != nil:
		return sadb.Ref{}, err
	case name != "":
		return sadb.Ref{Name: name}, nil
	case id.SPI != 0 && id.Dst.IsValid():
		id.Proto = ipsec.ProtoESP
		return sadb.Ref{ID: &id}, nil
	}
	return sadb.Ref{}, fmt.Errorf("%s: name the SA: NAME, name NAME, or dst ADDR proto esp spi SPI", what)
}

// ParsePolicy parses the arguments of `ip xfrm policy add|update`.
func ParsePolicy(what string, args []string) (sadb.Policy, error) {
	s := &scanner{args: args, what: what}
	var p sadb.Policy
	var action string
	dirSet := false
	for s.more() {
		kw := s.keyword()
		var err error
		switch kw {
		case "src", "dst", "proto", "sport", "dport", "type", "code", "dev":
			s.unread()
			err = s.selector(&p.Sel)
		case "dir":
			p.Dir, err = s.policyDir(kw)
			dirSet = true
		case "priority":
			p.Priority, err = number[uint32](s, kw)
		case "action":
			action, err = s.next(kw)
		case "name":
			p.Name, err = s.next(kw)
		case "sa":
			if p.Tmpl == nil {
				p.Tmpl = &sadb.Tmpl{}
			}
			p.Tmpl.SA, err = s.next(kw)
		case "tmpl":
			err = s.tmpl(&p)
		case "offload":
			err = s.offload(&p.Offload)
		case "ptype":
			// Only the main policy type exists here (sub policies are for MIPv6).
			var v string
			if v, err = s.next(kw); err == nil && v != "main" {
				err = s.errf(kw, "%q: only main", v)
			}
		case "mark":
			err = s.errf(kw, "marks are not supported by xdpsec: the card selects traffic by addresses, protocol and ports only")
		case "if_id":
			err = s.errf(kw, "interface IDs (XFRM interfaces) are not supported by xdpsec")
		case "index", "ctx", "flag", "limit":
			err = s.errf(kw, "not supported by xdpsec")
		default:
			err = fmt.Errorf("%s: unknown keyword %q", what, hide(kw))
		}
		if err != nil {
			return sadb.Policy{}, err
		}
	}
	if !dirSet {
		return sadb.Policy{}, fmt.Errorf("%s: dir in|out|fwd is required", what)
	}
	switch action {
	case "", "allow":
		// ip xfrm: allow with a template protects, without one bypasses.
		if p.Tmpl != nil {
			p.Action = ipsec.ActionProtect
		} else {
			p.Action = ipsec.ActionBypass
		}
	default:
		a, err := ipsec.ParseAction(action)
		if err != nil {
			return sadb.Policy{}, fmt.Errorf("%s: action %q: want allow, block, protect, bypass or discard", what, hide(action))
		}
		p.Action = a
	}
	if p.Action == ipsec.ActionProtect && p.Tmpl == nil {
		return sadb.Policy{}, fmt.Errorf("%s: action protect needs tmpl … reqid N or sa NAME", what)
	}
	if p.Action != ipsec.ActionProtect && p.Tmpl != nil {
		return sadb.Policy{}, fmt.Errorf("%s: a template only goes with action allow/protect", what)
	}
	if !p.Sel.Src.IsValid() && !p.Sel.Dst.IsValid() {
		return sadb.Policy{}, fmt.Errorf("%s: the selector needs src or dst", what)
	}
	return p, nil
}

// selector reads SELECTOR keywords until a non-selector keyword.
func (s *scanner) selector(sel *ipsec.Selector) error {
	for s.more() {
		kw := s.keyword()
		var err error
		switch kw {
		case "src":
			sel.Src, err = s.prefix(kw)
		case "dst":
			sel.Dst, err = s.prefix(kw)
		case "proto":
			var v string
			if v, err = s.next(kw); err == nil {
				if sel.Proto, err = ipsec.ParseProto(v); err != nil {
					err = s.errf(kw, "%q: want any, tcp, udp, icmp, ipv6-icmp, sctp, udplite, dccp or a number", v)
				}
			}
		case "sport":
			sel.SrcPorts, err = s.ports(kw)
		case "dport":
			sel.DstPorts, err = s.ports(kw)
		case "type", "code":
			// ICMP type and code travel in the port fields, as in the kernel's selector.
			var n uint8
			n, err = number[uint8](s, kw)
			if kw == "type" {
				sel.SrcPorts = ipsec.Port(uint16(n))
			} else {
				sel.DstPorts = ipsec.Port(uint16(n))
			}
		case "dev":
			return s.errf(kw, "selecting by device is not supported; use offload dev IFACE to limit where a policy is offloaded")
		default:
			s.unread()
			return nil
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// tmpl reads TMPL := ID [mode MODE] [reqid REQID] [level LEVEL].
func (s *scanner) tmpl(p *sadb.Policy) error {
	if p.Tmpl == nil {
		p.Tmpl = &sadb.Tmpl{}
	} else if p.Tmpl.Reqid != 0 || p.Tmpl.Dst.IsValid() {
		return s.errf("tmpl", "only one template (ESP, one SA) per policy")
	}
	t := p.Tmpl
scan:
	for s.more() {
		kw := s.keyword()
		var err error
		switch kw {
		case "src":
			t.Src, err = s.addr("tmpl src")
		case "dst":
			t.Dst, err = s.addr("tmpl dst")
		case "proto":
			err = s.esp("tmpl proto", "only esp")
			t.Proto = ipsec.ProtoESP
		case "spi":
			t.SPI, err = number[uint32](s, "tmpl spi")
		case "reqid":
			t.Reqid, err = number[uint32](s, "tmpl reqid")
		case "mode":
			t.Mode, err = s.mode("tmpl mode")
		case "level":
			var v string
			if v, err = s.next("tmpl level"); err == nil && v != "required" {
				err = s.errf("tmpl level", "%q: only required (an offloaded policy cannot fall back to plaintext)", v)
			}
		default:
			s.unread()
			break scan
		}
		if err != nil {
			return err
		}
	}
	if t.SA == "" && t.Reqid == 0 && t.SPI == 0 {
		return s.errf("tmpl", "name the SA with reqid N (or sa NAME)")
	}
	return nil
}

// ParsePolicyRef parses what names a policy for `ip xfrm policy delete|get`: `dir DIR SELECTOR`, or
// `name NAME`, or a bare NAME.
func ParsePolicyRef(what string, args []string) (sadb.PolicyRef, error) {
	var key sadb.PolicyKey
	dirSet := false
	name, err := parseRef(what, args, func(s *scanner, kw string) (bool, error) {
		var err error
		switch kw {
		case "src", "dst", "proto", "sport", "dport", "type", "code", "dev":
			s.unread()
			err = s.selector(&key.Sel)
		case "dir":
			key.Dir, err = s.policyDir(kw)
			dirSet = true
		default:
			return false, nil
		}
		return true, err
	})
	switch {
	case err != nil:
		return sadb.PolicyRef{}, err
	case name != "":
		return sadb.PolicyRef{Name: name}, nil
	case !dirSet || (!key.Sel.Src.IsValid() && !key.Sel.Dst.IsValid()):
		return sadb.PolicyRef{}, fmt.Errorf("%s: name the policy: NAME, name NAME, or dir DIR src … dst …", what)
	}
	return sadb.PolicyRef{Key: &key}, nil
}

// parseKey reads a KEY as ip xfrm does: 0x followed by hex digits, or a string in double quotes whose
// bytes are the key (ip xfrm's quoted ASCII keys; the quotes are part of the argument, '"mykey"' in a
// shell). A bare word is not taken for a key: it is more likely an algorithm name or a number typed
// in the wrong place.
func parseKey(v string) (sadb.Key, error) {
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		if len(v) == 2 {
			return nil, errors.New("an empty quoted key")
		}
		return sadb.Key(v[1 : len(v)-1]), nil
	}
	return sadb.ParseKey(v)
}

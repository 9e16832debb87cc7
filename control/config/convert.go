package config

import (
	"github.com/xdpsec/xdpsec/control/sadb"
	"github.com/xdpsec/xdpsec/crypto/esp"
	"github.com/xdpsec/xdpsec/ipsec"
)

// SADB is the SA as the SAD takes it. The key slices share the config's bytes (the store copies them
// on add; sadb.SA.ESPParams, the one conversion to the ESP engine's parameters, shares them too): do
// not use the result after the config's keys are wiped.
func (s *SA) SADB() sadb.SA {
	sa := sadb.SA{
		Owner: sadb.OwnerConfig,
		Name:  s.Name, SPI: uint32(s.SPI), Src: s.Src.Addr, Dst: s.Dst.Addr, Proto: ipsec.ProtoESP, Mode: s.Mode.Mode,
		Reqid: s.Reqid, ESN: s.ESN, ReplayWindow: s.Window(), Seq: s.Seq,
		Limits: sadb.Lifetime{
			SoftBytes: s.Lifetime.SoftBytes, HardBytes: s.Lifetime.HardBytes,
			SoftPackets: s.Lifetime.SoftPackets, HardPackets: s.Lifetime.HardPackets,
			SoftAddSeconds: s.Lifetime.SoftAddSeconds, HardAddSeconds: s.Lifetime.HardAddSeconds,
			SoftUseSeconds: s.Lifetime.SoftUseSeconds, HardUseSeconds: s.Lifetime.HardUseSeconds,
		},
		Offload: append([]string(nil), s.Offload...),
		TTL:     s.TTL, DF: string(s.DF), TFCPad: s.TFCPad,
	}
	if a := s.AEAD; a != nil {
		sa.AEAD = &sadb.Algorithm{Name: a.Alg, Key: a.Key.Bytes(), Bits: int(a.ICVBits)}
	}
	if a := s.Enc; a != nil {
		sa.Enc = &sadb.Algorithm{Name: a.Alg, Key: a.Key.Bytes()}
	}
	if a := s.Auth; a != nil {
		sa.Auth = &sadb.Algorithm{Name: a.Alg, Key: a.Key.Bytes(), Bits: int(a.TruncBits)}
	}
	if e := s.Encap; e != nil {
		sa.Encap = &sadb.Encap{Type: string(e.Type), Sport: e.Sport, Dport: e.Dport}
	}
	return sa
}

// ESPParams are the ESP engine's parameters for the SA, as the SAD builds them (sadb.SA.ESPParams):
// the key slices share the config's bytes.
func (s *SA) ESPParams() (esp.Params, error) {
	sa := s.SADB()
	return sa.ESPParams()
}

// Selector is the policy's traffic selector. For ICMP the type and code travel in the port ranges, as
// in Linux's xfrm_selector (source = type, destination = code).
func (p *Policy) Selector() ipsec.Selector {
	sel := ipsec.Selector{Src: p.Src.Prefix, Dst: p.Dst.Prefix, Proto: p.Proto.Proto,
		SrcPorts: p.Sport.PortRange, DstPorts: p.Dport.PortRange}
	if p.Proto.IsICMP() {
		sel.SrcPorts, sel.DstPorts = ipsec.AnyPorts, ipsec.AnyPorts
		if p.ICMPType != nil {
			sel.SrcPorts = ipsec.Port(uint16(*p.ICMPType))
		}
		if p.ICMPCode != nil {
			sel.DstPorts = ipsec.Port(uint16(*p.ICMPCode))
		}
	}
	return sel
}

// SADB is the policy as the SPD takes it.
func (p *Policy) SADB() sadb.Policy {
	sp := sadb.Policy{Owner: sadb.OwnerConfig, Name: p.Name, Dir: p.Dir.Dir, Sel: p.Selector(), Priority: p.Priority, Action: p.Action.Action,
		Offload: append([]string(nil), p.Offload...)}
	if p.Action.Action == ipsec.ActionProtect {
		sp.Tmpl = &sadb.Tmpl{SA: p.SA, Reqid: p.Reqid}
	}
	return sp
}

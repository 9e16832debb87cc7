package config

import (
	"fmt"

	"github.com/xdpsec/xdpsec/crypto/esp"
	"github.com/xdpsec/xdpsec/ipsec"
)

// ESPParams converts the SA to the ESP engine's parameters. The key slices in
// the result share the SA's key bytes (esp.New copies what it keeps), so do
// not use the Params after the SA's keys are wiped.
func (s *SA) ESPParams() (esp.Params, error) {
	p := esp.Params{
		SPI:          uint32(s.SPI),
		Src:          s.Src.Addr,
		Dst:          s.Dst.Addr,
		ESN:          s.ESN,
		ReplayWindow: s.Window(),
		Seq:          s.Seq,
		TTL:          s.TTL,
		TFCPadTo:     s.TFCPad,
	}
	var err error
	if s.Mode != "" {
		if p.Mode, err = ipsec.ParseMode(string(s.Mode)); err != nil {
			return esp.Params{}, fmt.Errorf("convert sa %q: %w", s.Name, err)
		}
	}
	if p.DF, err = esp.ParseDFPolicy(string(s.DF)); err != nil {
		return esp.Params{}, fmt.Errorf("convert sa %q: %w", s.Name, err)
	}
	if s.AEAD != nil {
		p.AEAD = esp.AEADAlg{Name: s.AEAD.Alg, Key: s.AEAD.Key.Bytes(), ICVBits: int(s.AEAD.ICVBits)}
	}
	if s.Enc != nil {
		p.Enc = esp.EncAlg{Name: s.Enc.Alg, Key: s.Enc.Key.Bytes()}
	}
	if s.Auth != nil {
		p.Auth = esp.AuthAlg{Name: s.Auth.Alg, Key: s.Auth.Key.Bytes(), TruncBits: int(s.Auth.TruncBits)}
	}
	if s.Encap != nil {
		p.UDPEncap = &esp.UDPEncap{SrcPort: s.Encap.Sport, DstPort: s.Encap.Dport}
	}
	return p, nil
}

// Selector converts the policy's selector fields to the SPD's selector. For
// ICMP the type and code travel in the port ranges, as in Linux's
// xfrm_selector (source = type, destination = code).
func (p *Policy) Selector() ipsec.Selector {
	sel := ipsec.Selector{
		Src:      p.Src.Prefix,
		Dst:      p.Dst.Prefix,
		Proto:    ipsec.Proto(p.Proto),
		SrcPorts: p.Sport.spd(),
		DstPorts: p.Dport.spd(),
	}
	if p.Proto.IsICMP() {
		sel.SrcPorts, sel.DstPorts = ipsec.AnyPorts, ipsec.AnyPorts
		if p.ICMPType != nil {
			sel.SrcPorts = ipsec.Ports(uint16(*p.ICMPType), uint16(*p.ICMPType))
		}
		if p.ICMPCode != nil {
			sel.DstPorts = ipsec.Ports(uint16(*p.ICMPCode), uint16(*p.ICMPCode))
		}
	}
	return sel
}

func (r PortRange) spd() ipsec.PortRange {
	if r.Any() {
		return ipsec.AnyPorts
	}
	return ipsec.Ports(r.Lo, r.Hi)
}

// SPDDir is the policy's direction in the SPD's terms.
func (p *Policy) SPDDir() ipsec.Dir {
	if p.Dir == DirIn {
		return ipsec.DirIn
	}
	return ipsec.DirOut
}

// SPDAction is the policy's action in the SPD's terms.
func (p *Policy) SPDAction() ipsec.Action {
	switch p.Action {
	case ActionProtect:
		return ipsec.ActionProtect
	case ActionDiscard:
		return ipsec.ActionDiscard
	}
	return ipsec.ActionBypass
}

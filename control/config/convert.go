package config

import (
	"fmt"

	"github.com/xdpsec/xdpsec/control/spd"
	"github.com/xdpsec/xdpsec/crypto/esp"
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
		if p.Mode, err = esp.ParseMode(string(s.Mode)); err != nil {
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
func (p *Policy) Selector() spd.Selector {
	sel := spd.Selector{
		Src:      p.Src.Prefix,
		Dst:      p.Dst.Prefix,
		Proto:    uint8(p.Proto),
		SrcPorts: p.Sport.spd(),
		DstPorts: p.Dport.spd(),
	}
	if p.Proto.IsICMP() {
		sel.SrcPorts, sel.DstPorts = spd.AnyPort, spd.AnyPort
		if p.ICMPType != nil {
			sel.SrcPorts = spd.PortRange{Lo: uint16(*p.ICMPType), Hi: uint16(*p.ICMPType)}
		}
		if p.ICMPCode != nil {
			sel.DstPorts = spd.PortRange{Lo: uint16(*p.ICMPCode), Hi: uint16(*p.ICMPCode)}
		}
	}
	return sel
}

func (r PortRange) spd() spd.PortRange {
	if r.Any() {
		return spd.AnyPort
	}
	return spd.PortRange{Lo: r.Lo, Hi: r.Hi}
}

// SPDDir is the policy's direction in the SPD's terms.
func (p *Policy) SPDDir() spd.Dir {
	if p.Dir == DirIn {
		return spd.DirIn
	}
	return spd.DirOut
}

// SPDAction is the policy's action in the SPD's terms.
func (p *Policy) SPDAction() spd.Action {
	switch p.Action {
	case ActionProtect:
		return spd.ActionProtect
	case ActionDiscard:
		return spd.ActionDiscard
	}
	return spd.ActionBypass
}

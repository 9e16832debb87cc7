package sadb

import (
	"fmt"

	"github.com/xdpsec/xdpsec/crypto/esp"
	"github.com/xdpsec/xdpsec/ipsec"
)

// ESPParams converts the SA to the ESP engine's parameters. The key slices share the SA's bytes (esp.New
// copies what it keeps): use the result before the SA is reaped.
func (s *SA) ESPParams() (esp.Params, error) {
	p := esp.Params{
		SPI: s.SPI, Src: s.Src, Dst: s.Dst,
		ESN: s.ESN, ReplayWindow: s.ReplayWindow, Seq: s.Seq,
		TTL: s.TTL, TFCPadTo: s.TFCPad,
	}
	if s.Mode == ModeTransport {
		p.Mode = ipsec.ModeTransport
	} else {
		p.Mode = ipsec.ModeTunnel
	}
	if s.DF != "" {
		df, err := esp.ParseDFPolicy(s.DF)
		if err != nil {
			return esp.Params{}, fmt.Errorf("convert sa %s: %w", s.ID(), err)
		}
		p.DF = df
	}
	if a := s.AEAD; a != nil {
		p.AEAD = esp.AEADAlg{Name: a.Name, Key: a.Key, ICVBits: a.Bits}
	}
	if a := s.Enc; a != nil {
		p.Enc = esp.EncAlg{Name: a.Name, Key: a.Key}
	}
	if a := s.Auth; a != nil {
		p.Auth = esp.AuthAlg{Name: a.Name, Key: a.Key, TruncBits: a.Bits}
	}
	if e := s.Encap; e != nil {
		p.UDPEncap = &esp.UDPEncap{SrcPort: e.Sport, DstPort: e.Dport}
	}
	return p, nil
}

// validateESP lets the ESP engine judge what only it knows: algorithm names, key lengths, SPI range,
// window size. There is one list of what is supported, the engine's.
func (s *SA) validateESP() error {
	p, err := s.ESPParams()
	if err != nil {
		return err
	}
	return p.Validate()
}

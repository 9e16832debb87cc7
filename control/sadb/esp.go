package sadb

import (
	"fmt"

	"github.com/xdpsec/xdpsec/crypto/esp"
)

// ESPParams converts the SA to the ESP engine's parameters, the one place that does (the config's SAs
// convert to this type first). The key slices share the SA's bytes (esp.New copies what it keeps):
// use the result before the SA is reaped.
func (s *SA) ESPParams() (esp.Params, error) {
	p := esp.Params{
		SPI: s.SPI, Src: s.Src, Dst: s.Dst, Mode: s.Mode,
		ESN: s.ESN, ReplayWindow: s.ReplayWindow, Seq: s.Seq,
		TTL: s.TTL, TFCPadTo: s.TFCPad,
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

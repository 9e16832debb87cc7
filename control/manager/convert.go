package manager

import (
	"github.com/xdpsec/xdpsec/control/config"
	"github.com/xdpsec/xdpsec/control/sadb"
	"github.com/xdpsec/xdpsec/ipsec"
)

// SAFromConfig converts a config SA to a SAD SA. The key slices share the config's bytes; the store
// copies them on add.
func SAFromConfig(c *config.SA) sadb.SA {
	sa := sadb.SA{
		Name: c.Name, SPI: uint32(c.SPI), Src: c.Src.Addr, Dst: c.Dst.Addr, Proto: sadb.ProtoESP,
		Reqid: c.Reqid, ESN: c.ESN, ReplayWindow: c.Window(), Seq: c.Seq,
		Limits: sadb.Lifetime{
			SoftBytes: c.Lifetime.SoftBytes, HardBytes: c.Lifetime.HardBytes,
			SoftPackets: c.Lifetime.SoftPackets, HardPackets: c.Lifetime.HardPackets,
			SoftAddSeconds: c.Lifetime.SoftAddSeconds, HardAddSeconds: c.Lifetime.HardAddSeconds,
			SoftUseSeconds: c.Lifetime.SoftUseSeconds, HardUseSeconds: c.Lifetime.HardUseSeconds,
		},
		Offload: append([]string(nil), c.Offload...),
		TTL:     c.TTL, DF: string(c.DF), TFCPad: c.TFCPad,
	}
	if c.Mode == config.ModeTransport {
		sa.Mode = sadb.ModeTransport
	}
	if a := c.AEAD; a != nil {
		sa.AEAD = &sadb.Algorithm{Name: a.Alg, Key: a.Key.Bytes(), Bits: int(a.ICVBits)}
	}
	if a := c.Enc; a != nil {
		sa.Enc = &sadb.Algorithm{Name: a.Alg, Key: a.Key.Bytes()}
	}
	if a := c.Auth; a != nil {
		sa.Auth = &sadb.Algorithm{Name: a.Alg, Key: a.Key.Bytes(), Bits: int(a.TruncBits)}
	}
	if e := c.Encap; e != nil {
		sa.Encap = &sadb.Encap{Type: string(e.Type), Sport: e.Sport, Dport: e.Dport}
	}
	return sa
}

// PolicyFromConfig converts a config policy to a SPD policy.
func PolicyFromConfig(c *config.Policy) sadb.Policy {
	sel := c.Selector() // the config's own conversion: ICMP type/code travel in the port ranges
	p := sadb.Policy{
		Name: c.Name, Priority: c.Priority,
		Sel: sadb.Selector{Src: sel.Src, Dst: sel.Dst, Proto: uint8(sel.Proto),
			Sport: portRange(sel.SrcPorts), Dport: portRange(sel.DstPorts)},
		Offload: append([]string(nil), c.Offload...),
	}
	if c.Dir == config.DirIn {
		p.Dir = sadb.DirIn
	} else {
		p.Dir = sadb.DirOut
	}
	switch c.Action {
	case config.ActionProtect:
		p.Action = sadb.ActionProtect
		p.Tmpl = &sadb.Tmpl{SA: c.SA, Reqid: c.Reqid}
	case config.ActionDiscard:
		p.Action = sadb.ActionDiscard
	default:
		p.Action = sadb.ActionBypass
	}
	return p
}

// portRange converts the SPD's port range; the SAD spells "any" as the zero range.
func portRange(r ipsec.PortRange) sadb.PortRange {
	if r.IsAny() {
		return sadb.PortRange{}
	}
	return sadb.PortRange{Lo: r.Lo(), Hi: r.Hi()}
}

package daemon

import (
	"fmt"
	"slices"

	"github.com/xdpsec/xdpsec/control/offload"
	"github.com/xdpsec/xdpsec/crypto/esp"
	"github.com/xdpsec/xdpsec/crypto/worker"
	"github.com/xdpsec/xdpsec/ipsec"
	"github.com/xdpsec/xdpsec/loader"
)

// moving tells whether an SA offered again at a held index moved: to another destination (the
// engine says so), or to another source, encapsulation or reqid (the card's entry says so).
func (d *driver) moving(h *heldSA, o *offload.SAOffload) bool {
	if o.MovedFrom.SPI != 0 {
		return true
	}
	cur, err := d.card.GetSA(o.Index)
	if err != nil || h.spi != o.SA.SPI || h.dst != o.SA.Dst {
		return false
	}
	var sport, dport uint16
	if en := o.SA.Encap; en != nil {
		sport, dport = en.Sport, en.Dport
	}
	return cur.Src != o.SA.Src || cur.EncapSrcPort != sport || cur.EncapDstPort != dport || cur.ReqID != o.SA.Reqid
}

// moveSA changes a held SA that moved (sadb.Store.MigrateSA: NAT-T rebinding, MOBIKE) in place: the
// workers get an SA that continues its sequence numbers, IV mask and replay window (esp.Migrate) in
// one atomic swap, then the card's entry changes where it is, its inbound lookup under the new
// (SPI, dst) before the old one goes (loader.Card.PutSA). The old esp.SA is wiped last; a worker that
// loaded it just before finds ErrWiped at worst, as on any removal.
//
// (Issue 8 makes UpdateSA's encapsulation ports reach the card along the same path; this is the part
// a move needs.)
func (d *driver) moveSA(h *heldSA, o *offload.SAOffload) error {
	e := o.SA
	if h.spi != e.SPI || (h.dst != e.Dst && h.dst != o.MovedFrom.Dst) {
		return fmt.Errorf("move sa %d: index holds spi 0x%x dst %s, not sa %s", o.Index, h.spi, h.dst, e.ID())
	}
	params, err := e.ESPParams()
	if err != nil {
		return offload.Nack(offload.ReasonUnsupported, "%v", err)
	}
	moved, err := esp.Migrate(h.sa, params)
	if err != nil {
		return offload.Nack(offload.ReasonUnsupported, "move sa %s: %v", e.ID(), err)
	}
	sels := h.sels
	if h.dir == ipsec.DirIn && len(o.InSelectors) > 0 {
		sels = o.InSelectors
	}
	ent := &worker.Entry{SA: moved, Dir: h.dir, Selectors: sels, Transport: h.transport}
	if h.dir == ipsec.DirOut {
		ent.OuterDst = e.Dst
	}
	old, err := d.sas.Replace(o.Index, ent)
	if err != nil {
		moved.Wipe()
		return fmt.Errorf("move sa %d in the workers: %w", o.Index, err)
	}
	csa := loader.SA{Dir: h.dir, SPI: e.SPI, Src: e.Src, Dst: e.Dst, Mode: params.Mode,
		PolicyID: loader.NoPolicy, ReqID: e.Reqid}
	if e.Encap != nil {
		csa.EncapSrcPort, csa.EncapDstPort = e.Encap.Sport, e.Encap.Dport
	}
	if err := d.card.PutSA(o.Index, csa); err != nil {
		// The workers' entry has the new addresses; the card keeps the old ones, whose packets the
		// shared state still opens. The engine retries.
		_, _ = d.sas.Replace(o.Index, old)
		moved.Wipe()
		return fmt.Errorf("move sa %d in the card: %w", o.Index, err)
	}
	old.SA.Wipe()
	h.sa, h.dst, h.sels = moved, e.Dst, slices.Clone(sels)
	h.ifaces[o.Iface] = true
	return nil
}

package manager

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"time"

	"github.com/xdpsec/xdpsec/control/api"
	"github.com/xdpsec/xdpsec/control/events"
	"github.com/xdpsec/xdpsec/control/offload"
	"github.com/xdpsec/xdpsec/control/sadb"
	"github.com/xdpsec/xdpsec/ipsec"
)

// What an IKE daemon needs beyond `ip xfrm` (docs/ike-api.md): the epoch, SPI allocation, owners,
// moving SAs in place, counters read when asked for, and policies' last use.

// freshTimeout bounds the wait for the engine when a query reads the card's counters: a query that
// cannot get them in time answers with the poller's last values.
const freshTimeout = 2 * time.Second

// newEpoch names this process's in-memory state: 16 random hex digits, never the same twice.
func newEpoch() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand never fails on Linux
	return hex.EncodeToString(b[:])
}

// Epoch is the daemon's epoch (the API's Xdpsec-Epoch).
func (m *Manager) Epoch() string { return m.epoch }

// Info is GET /v1/info.
func (m *Manager) Info() api.Info {
	return api.Info{API: api.Version, Epoch: m.epoch, Seq: m.bus.Position().Seq, Instance: m.Config().Instance,
		EncapPort: m.opts.EncapPort, Features: api.Features}
}

// AllocSPI reserves an SPI for an SA being negotiated (a larval entry, sadb's larval.go).
func (m *Manager) AllocSPI(req api.SPIRequest) (api.SPIAnswer, error) {
	l, err := m.store.AllocSPI(sadb.SPIRequest{Dst: req.Dst, Proto: req.Proto, Min: req.Min, Max: req.Max,
		Lifetime: time.Duration(req.LifetimeSeconds) * time.Second})
	if err != nil {
		return api.SPIAnswer{}, err
	}
	return api.SPIAnswer{SPI: l.SPI, Dst: l.Dst, Proto: l.Proto, Expires: l.Expires}, nil
}

// DeleteLarval removes a reserved SPI.
func (m *Manager) DeleteLarval(id sadb.SAID) bool { return m.store.DeleteLarval(id) }

// MigrateSA moves an SA in place (sadb.Store.MigrateSA); the engine changes the card's entry where it
// is, keeping the SA's cryptographic state.
func (m *Manager) MigrateSA(mg api.Migration) (api.SAView, error) {
	e, err := m.store.MigrateSA(sadb.Migration{ID: mg.ID, Src: mg.Src, Dst: mg.Dst, Encap: mg.Encap, Reqid: mg.Reqid})
	if err != nil {
		return api.SAView{}, err
	}
	m.bus.Publish(events.ForSA(events.SAUpdated, &e))
	return m.saView(e), nil
}

// ListSAsOf returns the SAs of the owners f selects.
func (m *Manager) ListSAsOf(f sadb.OwnerFilter, showKeys bool) []api.SAView {
	return views(m.store.ListSAsOf(f, showKeys), m.saView)
}

// FlushSAsOf deletes the SAs of the owners f selects.
func (m *Manager) FlushSAsOf(f sadb.OwnerFilter) []api.SAView {
	return views(m.store.FlushSAsOf(f), func(e sadb.SAEntry) api.SAView {
		m.bus.Publish(events.ForSA(events.SADeleted, &e))
		return api.SAView{SAEntry: e}
	})
}

// views maps entries to their API views.
func views[E, V any](l []E, view func(E) V) []V {
	out := make([]V, len(l))
	for i, e := range l {
		out[i] = view(e)
	}
	return out
}

// PutPolicy adds a policy; an identical ike policy is returned as it is, with created false.
func (m *Manager) PutPolicy(p sadb.Policy) (api.PolicyView, bool, error) {
	if err := m.checkOffload("add policy", p.Offload); err != nil {
		return api.PolicyView{}, false, err
	}
	e, created, err := m.store.AddPolicyOnce(p)
	if err != nil {
		return api.PolicyView{}, false, err
	}
	if created {
		m.bus.Publish(events.ForPolicy(events.PolicyAdded, &e))
	}
	return m.policyView(e), created, nil
}

// GetPolicyOf returns one policy of the owners f selects, with its last use read now.
func (m *Manager) GetPolicyOf(ref sadb.PolicyRef, f sadb.OwnerFilter) (api.PolicyView, error) {
	e, err := m.store.GetPolicyOf(ref, f)
	if err != nil {
		return api.PolicyView{}, err
	}
	v := m.policyView(e)
	v.LastUse = m.policyLastUse(&e)
	return v, nil
}

// DeletePolicyOf deletes one policy of the owners f selects.
func (m *Manager) DeletePolicyOf(ref sadb.PolicyRef, f sadb.OwnerFilter) (api.PolicyView, error) {
	e, err := m.store.DeletePolicyOf(ref, f)
	if err != nil {
		return api.PolicyView{}, err
	}
	m.bus.Publish(events.ForPolicy(events.PolicyDel, &e))
	return api.PolicyView{PolicyEntry: e}, nil
}

// ListPoliciesOf returns the policies of the owners f selects, in SPD order.
func (m *Manager) ListPoliciesOf(f sadb.OwnerFilter) []api.PolicyView {
	return views(m.store.ListPoliciesOf(f), m.policyView)
}

// FlushPoliciesOf deletes the policies of the owners f selects.
func (m *Manager) FlushPoliciesOf(f sadb.OwnerFilter) []api.PolicyView {
	return views(m.store.FlushPoliciesOf(f), func(e sadb.PolicyEntry) api.PolicyView {
		m.bus.Publish(events.ForPolicy(events.PolicyDel, &e))
		return api.PolicyView{PolicyEntry: e}
	})
}

// refreshUsage reads the counters of the SAs at indexes from the card and the workers now and
// records them in the SAD as the poller does (lifetimes are still enforced by the poller). An engine
// that does not answer in time leaves the poller's values.
func (m *Manager) refreshUsage(indexes []uint32, serials []uint64) {
	if len(indexes) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), freshTimeout)
	defer cancel()
	cs, err := m.engine.CountersFor(ctx, indexes)
	if err != nil {
		if !errors.Is(err, offload.ErrStopped) {
			m.log.Warn("read sa counters for a query", "err", err)
		}
		return
	}
	for i, idx := range indexes {
		if c, ok := cs[idx]; ok && c.Serial == serials[i] {
			m.store.Usage(idx, c.Current(), c.FirstUse, c.LastUse)
		}
	}
}

// policyLastUse is when policy p last applied to a packet: when the card last matched it, and for an
// inbound (or fwd) PROTECT policy also when one of its SAs last carried a packet — decrypted traffic
// is checked against it by the workers after the card found the SA by SPI, so the card's own match
// counts only plaintext.
func (m *Manager) policyLastUse(p *sadb.PolicyEntry) time.Time {
	var t time.Time
	if p.OnCard() {
		ctx, cancel := context.WithTimeout(context.Background(), freshTimeout)
		var err error
		t, err = m.engine.PolicyLastUse(ctx, p.ID)
		cancel()
		if err != nil && !errors.Is(err, offload.ErrStopped) {
			m.log.Warn("read policy usage", "policy_id", p.ID, "err", err)
		}
	}
	if p.Action != ipsec.ActionProtect || p.Dir == ipsec.DirOut {
		return t
	}
	sas := m.store.SAsServing(&p.Policy)
	idx, ser := make([]uint32, len(sas)), make([]uint64, len(sas))
	for i := range sas {
		idx[i], ser[i] = sas[i].Index, sas[i].Serial
	}
	m.refreshUsage(idx, ser)
	for _, i := range idx {
		if e, err := m.store.GetSA(sadb.Ref{Index: i}, false); err == nil && e.LastUse.After(t) {
			t = e.LastUse
		}
	}
	return t
}

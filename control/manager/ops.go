package manager

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/xdpsec/xdpsec/control/api"
	"github.com/xdpsec/xdpsec/control/events"
	"github.com/xdpsec/xdpsec/control/offload"
	"github.com/xdpsec/xdpsec/control/sadb"
)

// The Manager is the API's backend: every change goes through here so that it also becomes an event.
var _ api.Backend = (*Manager)(nil)

func (m *Manager) saView(e sadb.SAEntry) api.SAView {
	dir := m.engine.Direction(&e)
	return api.SAView{SAEntry: e, OffloadState: m.engine.SAStates(e.Index, e.Serial), Direction: &dir}
}

func (m *Manager) policyView(p sadb.PolicyEntry) api.PolicyView {
	return api.PolicyView{PolicyEntry: p, OffloadState: m.engine.PolicyStates(p.ID)}
}

// checkOffload refuses an offload list naming an interface this instance does not have, as ip xfrm
// refuses "offload dev" with an unknown device: such an entry could never be offloaded anywhere.
func (m *Manager) checkOffload(what string, list []string) error {
	ifaces := m.engine.Interfaces()
	for _, ifc := range list {
		if !slices.Contains(ifaces, ifc) {
			return fmt.Errorf("%s: offload: %w: no interface %q in this instance (%s)", what, sadb.ErrInvalid, ifc,
				strings.Join(ifaces, ", "))
		}
	}
	return nil
}

// AddSA adds an SA (ip xfrm state add). A key the durable state retired is refused.
func (m *Manager) AddSA(sa sadb.SA) (api.SAView, error) {
	if err := m.admit("add sa", &sa); err != nil {
		return api.SAView{}, err
	}
	return m.changeSA("add sa", sa, m.store.AddSA, events.SAAdded)
}

// admit refuses an SA whose key must not be used again (KeyState.Admit).
func (m *Manager) admit(what string, sa *sadb.SA) error {
	if m.opts.Keys == nil {
		return nil
	}
	if err := m.opts.Keys.Admit(sa); err != nil {
		return fmt.Errorf("%s %s: %w: %w", what, sa.ID(), sadb.ErrInvalid, err)
	}
	return nil
}

// UpdateSA updates an SA in place (ip xfrm state update): it keeps its sequence numbers, IV mask
// and replay window. A change the running SA cannot take (the card's driver says which) is refused
// before the SAD changes, naming the field.
func (m *Manager) UpdateSA(sa sadb.SA) (api.SAView, error) {
	if err := m.checkInPlace(&sa); err != nil {
		return api.SAView{}, err
	}
	return m.changeSA("update sa", sa, m.store.UpdateSA, events.SAUpdated)
}

// checkInPlace asks the offload engine whether the SA that sa updates can take it in place.
func (m *Manager) checkInPlace(sa *sadb.SA) error {
	cur, err := m.store.GetSA(sadb.Ref{Name: sa.Name}, false)
	if sa.Name == "" || err != nil {
		id := sa.ID()
		if cur, err = m.store.GetSA(sadb.Ref{ID: &id}, false); err != nil {
			return nil // the store reports it
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := m.engine.CheckUpdate(ctx, cur.Index, cur.Serial, sa); err != nil {
		return fmt.Errorf("update sa %s: %w: the running sa cannot take it: %w (a new key is a new sa)", sa.ID(), sadb.ErrImmutable, err)
	}
	return nil
}

// changeSA checks sa's offload list, makes the store's change and publishes it as t.
func (m *Manager) changeSA(what string, sa sadb.SA, change func(sadb.SA) (sadb.SAEntry, error), t events.Type) (api.SAView, error) {
	if err := m.checkOffload(what, sa.Offload); err != nil {
		return api.SAView{}, err
	}
	e, err := change(sa)
	if err != nil {
		return api.SAView{}, err
	}
	m.bus.Publish(events.ForSA(t, &e))
	return m.saView(e), nil
}

// DeleteSA deletes an SA (ip xfrm state delete). The card lets go of it in the background, then its key
// is overwritten.
func (m *Manager) DeleteSA(ref sadb.Ref) (api.SAView, error) {
	e, err := m.store.DeleteSA(ref)
	if err != nil {
		return api.SAView{}, err
	}
	m.bus.Publish(events.ForSA(events.SADeleted, &e))
	return api.SAView{SAEntry: e}, nil
}

// replaceSA deletes the SA ref names and adds sa in one change of the store (a reload's new key).
func (m *Manager) replaceSA(ref sadb.Ref, sa sadb.SA) error {
	if err := m.checkOffload("replace sa", sa.Offload); err != nil {
		return err
	}
	if err := m.admit("replace sa", &sa); err != nil {
		return err
	}
	old, added, err := m.store.ReplaceSA(ref, sa)
	if err != nil {
		return err
	}
	m.bus.Publish(events.ForSA(events.SADeleted, &old))
	m.bus.Publish(events.ForSA(events.SAAdded, &added))
	return nil
}

// GetSA returns one SA, with its counters and last use read from the card and the workers now (not
// a poll interval ago: an IKE daemon compares them with its limits and its DPD timer when it asks).
func (m *Manager) GetSA(ref sadb.Ref, showKeys bool) (api.SAView, error) {
	e, err := m.store.GetSA(ref, false)
	if err != nil {
		return api.SAView{}, err
	}
	m.refreshUsage([]uint32{e.Index}, []uint64{e.Serial})
	if e, err = m.store.GetSA(sadb.Ref{Index: e.Index}, showKeys); err != nil {
		return api.SAView{}, err
	}
	return m.saView(e), nil
}

// ListSAs returns every SA.
func (m *Manager) ListSAs(showKeys bool) []api.SAView {
	return m.ListSAsOf(sadb.OwnerFilter{}, showKeys)
}

// FlushSAs deletes every SA.
func (m *Manager) FlushSAs() []api.SAView { return m.FlushSAsOf(sadb.OwnerFilter{}) }

// AddPolicy adds a policy.
func (m *Manager) AddPolicy(p sadb.Policy) (api.PolicyView, error) {
	v, _, err := m.PutPolicy(p)
	return v, err
}

// UpdatePolicy updates a policy.
func (m *Manager) UpdatePolicy(p sadb.Policy) (api.PolicyView, error) {
	return m.changePolicy("update policy", p, m.store.UpdatePolicy, events.PolicyUpdate)
}

// changePolicy checks p's offload list, makes the store's change and publishes it as t.
func (m *Manager) changePolicy(what string, p sadb.Policy, change func(sadb.Policy) (sadb.PolicyEntry, error), t events.Type) (api.PolicyView, error) {
	if err := m.checkOffload(what, p.Offload); err != nil {
		return api.PolicyView{}, err
	}
	e, err := change(p)
	if err != nil {
		return api.PolicyView{}, err
	}
	m.bus.Publish(events.ForPolicy(t, &e))
	return m.policyView(e), nil
}

// DeletePolicy deletes a policy.
func (m *Manager) DeletePolicy(ref sadb.PolicyRef) (api.PolicyView, error) {
	return m.DeletePolicyOf(ref, sadb.OwnerFilter{})
}

// ListPolicies returns every policy in SPD order.
func (m *Manager) ListPolicies() []api.PolicyView { return m.ListPoliciesOf(sadb.OwnerFilter{}) }

// FlushPolicies deletes every policy.
func (m *Manager) FlushPolicies() []api.PolicyView { return m.FlushPoliciesOf(sadb.OwnerFilter{}) }

// Stats returns the global counters.
func (m *Manager) Stats(ctx context.Context) (api.Stats, error) {
	card, err := m.GlobalCounters(ctx)
	if err != nil {
		return api.Stats{}, err
	}
	st := api.Stats{Card: card, Engine: m.engine.Stats(), Capacity: m.engine.Capacity(),
		SAStates: map[string]int{}, Offload: map[string]int{},
		Events: api.EventStats{Published: m.bus.Published(), Dropped: m.bus.Dropped()}}
	for _, v := range m.ListSAs(false) {
		st.SAs++
		st.SAStates[v.State.String()]++
		for _, o := range v.OffloadState {
			st.Offload[string(o.Status)]++
		}
	}
	st.Policies = len(m.store.ListPolicies())
	return st, nil
}

// Check compares the card with the SAD/SPD.
func (m *Manager) Check(ctx context.Context) (offload.Report, error) { return m.engine.Check(ctx) }

// Reload re-reads the configuration file (the API's reload).
func (m *Manager) Reload(_ context.Context) (api.ReloadResult, error) { return m.ReloadFile() }

// Subscribe returns an event subscription.
func (m *Manager) Subscribe(buf int) *events.Sub { return m.bus.Subscribe(buf) }

// GlobalCounters returns the card's counters plus Options.ExtraCounters (the workers').
func (m *Manager) GlobalCounters(ctx context.Context) (map[string]uint64, error) {
	card, err := m.engine.GlobalCounters(ctx)
	if err != nil {
		return nil, err
	}
	if card == nil {
		card = map[string]uint64{}
	}
	if m.opts.ExtraCounters != nil {
		for k, v := range m.opts.ExtraCounters() {
			card[k] += v
		}
	}
	return card, nil
}

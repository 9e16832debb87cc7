package manager

import (
	"context"
	"errors"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/xdpsec/xdpsec/control/config"
	"github.com/xdpsec/xdpsec/control/offload/fakecard"
	"github.com/xdpsec/xdpsec/control/sadb"
	"github.com/xdpsec/xdpsec/ipsec"
)

func loadConfig(t *testing.T, path string) *config.Config {
	t.Helper()
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func startManager(t *testing.T, cfg *config.Config, card *fakecard.Card, opts Options) *Manager {
	t.Helper()
	if opts.Socket == "" && !opts.NoAPI {
		opts.Socket = filepath.Join(t.TempDir(), "api.sock")
	}
	m, err := New(cfg, card, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() {
		m.Close()
		cancel()
	})
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	sctx, scancel := context.WithTimeout(ctx, 10*time.Second)
	defer scancel()
	if err := m.Sync(sctx); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestStartInstallsConfig(t *testing.T) {
	card := fakecard.New("lan0", "wan0")
	m := startManager(t, loadConfig(t, "testdata/gw.yaml"), card, Options{NoPoller: true})
	rep, err := m.Check(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK || rep.SAs != 2 || rep.Policies != 3 || rep.CardSAs != 4 || rep.CardPolicies != 6 {
		t.Fatalf("check: %+v", rep)
	}
	out, _ := m.store.GetPolicy(sadb.PolicyRef{Name: "lan-out"})
	sa, _ := m.store.GetSA(sadb.Ref{Name: "gw1-to-gw2"}, false)
	p, ok := card.Policy("lan0", out.ID)
	if !ok || p.SA != sa.Index || p.Action != ipsec.ActionProtect {
		t.Fatalf("card policy %+v, want pointing at sa index %d", p, sa.Index)
	}
	if v := card.Violations(); len(v) > 0 {
		t.Fatalf("violations: %v", v)
	}
}

func (m *Manager) sync(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := m.Sync(ctx); err != nil {
		t.Fatal(err)
	}
}

// The SPD refuses a policy the card has no room for, rather than let the card nack it: a missing PROTECT
// policy would let its traffic fall through to the policies below it.
func TestSPDBoundedByCardCapacity(t *testing.T) {
	cfg := loadConfig(t, "testdata/gw.yaml")
	cfg.Capacities.Policies = 4 // ids 1..3: the config's three policies fill it
	m := startManager(t, cfg, fakecard.New("lan0", "wan0"), Options{NoPoller: true, NoAPI: true})
	_, err := m.AddPolicy(sadb.Policy{Dir: ipsec.DirOut, Action: ipsec.ActionDiscard,
		Sel: ipsec.Selector{Dst: netip.MustParsePrefix("198.18.9.0/24")}})
	if !errors.Is(err, sadb.ErrFull) {
		t.Fatalf("policy beyond the card's capacity: %v, want ErrFull", err)
	}
	if _, err := m.DeletePolicy(sadb.PolicyRef{Name: "ike"}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.AddPolicy(sadb.Policy{Dir: ipsec.DirOut, Action: ipsec.ActionDiscard,
		Sel: ipsec.Selector{Dst: netip.MustParsePrefix("198.18.9.0/24")}}); err != nil {
		t.Fatalf("after a delete: %v", err)
	}
}

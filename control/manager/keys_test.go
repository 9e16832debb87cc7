package manager

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/xdpsec/xdpsec/control/api"
	"github.com/xdpsec/xdpsec/control/offload/fakecard"
	"github.com/xdpsec/xdpsec/control/sadb"
	"github.com/xdpsec/xdpsec/control/seqstate"
	"github.com/xdpsec/xdpsec/crypto/esp"
)

// storeKeys is KeyState straight over a seqstate store (the daemon's driver adds the card's
// knowledge of directions; the manager needs only this).
type storeKeys struct{ st *seqstate.Store }

func (k storeKeys) Admit(sa *sadb.SA) error {
	p, err := sa.ESPParams()
	if err != nil {
		return err
	}
	return k.st.Admit(p)
}

func (k storeKeys) Prepare(sas []sadb.SA) error {
	var ps []esp.Params
	for i := range sas {
		if p, err := sas[i].ESPParams(); err == nil {
			ps = append(ps, p)
		}
	}
	return k.st.Prepare(ps)
}

func (k storeKeys) Retire(sa *sadb.SA, reason string) error {
	p, err := sa.ESPParams()
	if err != nil {
		return err
	}
	return k.st.Retire(p, reason)
}

func (k storeKeys) Stats() seqstate.Stats { return k.st.Stats() }

func openKeys(t *testing.T, dir string) storeKeys {
	t.Helper()
	st, err := seqstate.Open(seqstate.Options{Dir: dir, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return storeKeys{st}
}

// TestRetiredKeyRefused: an SA that expired hard leaves a tombstone for its key; the next reload
// of the same file, `sa add` through the API (under another SPI) and the start of a new control
// plane on the same state all refuse the key, naming the reason.
func TestRetiredKeyRefused(t *testing.T) {
	_, path := gwConfig(t)
	dir := filepath.Join(t.TempDir(), "state")
	keys := openKeys(t, dir)
	card := fakecard.New("lan0", "wan0")
	m := startManager(t, loadConfig(t, path), card, Options{NoPoller: true, Keys: keys, Logger: slog.New(slog.DiscardHandler)})
	e, err := m.Store().GetSA(sadb.Ref{Name: "gw1-to-gw2"}, true)
	if err != nil {
		t.Fatal(err)
	}
	card.Traffic(e.Index, 3, 3000, time.Now()) // past hard_bytes: 2000
	if err := m.Poller().Poll(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Store().GetSA(sadb.Ref{Name: "gw1-to-gw2"}, false); !errors.Is(err, sadb.ErrNotFound) {
		t.Fatalf("the SA did not expire: %v", err)
	}
	refused := func(what string, err error) {
		t.Helper()
		if err == nil || !strings.Contains(err.Error(), "key retired") || !strings.Contains(err.Error(), "hard-expired-bytes") {
			t.Errorf("%s: %v, want a refusal naming the retired key and why", what, err)
		}
	}
	res, err := m.ReloadFile()
	refused("reload", err)
	if slices.Contains(res.SAsAdded, "gw1-to-gw2") {
		t.Error("the reload added the retired SA back")
	}
	if _, err := m.Store().GetSA(sadb.Ref{Name: "gw1-to-gw2"}, false); !errors.Is(err, sadb.ErrNotFound) {
		t.Errorf("the retired SA is back in the SAD: %v", err)
	}

	c := api.NewClient(m.opts.Socket)
	defer c.Close()
	again := e.SA
	again.Name, again.SPI, again.Owner = "again", 0x7777, sadb.OwnerCLI // the API's own (config is the file's)
	_, err = c.AddSA(t.Context(), again)
	refused("sa add", err)
	if !errors.Is(err, sadb.ErrInvalid) {
		t.Errorf("sa add of a retired key: %v, want the invalid kind", err)
	}
	m.Close()

	// A restart with the same file and state: the start says which key and why.
	m2, err := New(loadConfig(t, path), fakecard.New("lan0", "wan0"), Options{NoPoller: true, NoAPI: true, Keys: keys,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	err = m2.Start(t.Context())
	refused("restart", err)
	m2.Close()
}

// updateChecker is a fake card that, like the daemon's driver, refuses updates the running SA
// cannot take: here, a replay window above 256.
type updateChecker struct {
	*fakecard.Card
	asked int
}

func (u *updateChecker) CheckUpdate(index uint32, e *sadb.SAEntry) error {
	u.asked++
	if e.ReplayWindow > 256 {
		return fmt.Errorf("field replay_window: resize replay window to %d: at most 256 in place", e.ReplayWindow)
	}
	return nil
}

// TestReloadInPlace: a reload that changes any of the fields a running SA keeps its numbers
// through updates the SA in place (same serial and index: config.Change.Replaces is false for
// them); one the running SA cannot take is refused with the card's reason; a new SPI under the
// same key is refused (it would start the key's numbers over); a new key replaces the SA.
func TestReloadInPlace(t *testing.T) {
	base, path := gwConfig(t)
	card := &updateChecker{Card: fakecard.New("lan0", "wan0")}
	m, err := New(loadConfig(t, path), card, Options{NoPoller: true, NoAPI: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	m.sync(t)
	const sa = "    spi: 0x00002001\n" // gw2-to-gw1: the inbound SA
	cur := base
	for _, tc := range []struct{ field, line string }{
		{"src", "    src: 198.19.0.9\n"},
		{"reqid", "    reqid: 9\n"},
		{"esn", "    esn: true\n"},
		{"replay_window", "    replay_window: 192\n"},
		{"encap", "    encap: {type: espinudp, sport: 4501}\n"},
		{"ttl", "    ttl: 9\n"},
		{"df", "    df: set\n"},
		{"tfc_pad", "    tfc_pad: 64\n"},
		{"lifetime", "    lifetime: {hard_packets: 99}\n"},
		{"offload", "    offload: [wan0]\n"},
		{"mode", "    mode: transport\n"}, // (tfc_pad back to 0 with it: transport mode has none)
	} {
		before, _ := m.Store().GetSA(sadb.Ref{Name: "gw2-to-gw1"}, false)
		next := editSA(cur, sa, tc.field, tc.line)
		if tc.field == "mode" {
			next = editSA(next, sa, "tfc_pad", "    tfc_pad: 0\n")
		}
		writeConfig(t, path, next)
		res, err := m.ReloadFile()
		if err != nil || !slices.Equal(res.SAsUpdated, []string{"gw2-to-gw1"}) || len(res.SAsReplaced) != 0 {
			t.Fatalf("%s: reload %+v %v", tc.field, res, err)
		}
		after, _ := m.Store().GetSA(sadb.Ref{Name: "gw2-to-gw1"}, false)
		if after.Serial != before.Serial || after.Index != before.Index {
			t.Fatalf("%s: the SA was replaced (serial %d → %d)", tc.field, before.Serial, after.Serial)
		}
		cur = next
	}
	m.sync(t)
	if card.asked == 0 {
		t.Fatal("the card was never asked whether the running SA can take a change")
	}

	// Refused: more than the running SA can take, a new SPI under the same key.
	for _, tc := range []struct{ name, text, want string }{
		{"window", editSA(cur, sa, "replay_window", "    replay_window: 1024\n"), "replay_window"},
		{"spi", strings.Replace(cur, sa, "    spi: 0x00002002\n", 1), "the key did not"},
	} {
		writeConfig(t, path, tc.text)
		before, _ := m.Store().GetSA(sadb.Ref{Name: "gw2-to-gw1"}, false)
		_, err := m.ReloadFile()
		if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, sadb.ErrImmutable) {
			t.Errorf("%s: reload %v, want a refusal naming %q", tc.name, err, tc.want)
		}
		if after, _ := m.Store().GetSA(sadb.Ref{Name: "gw2-to-gw1"}, false); after.Serial != before.Serial || after.Gen != before.Gen {
			t.Errorf("%s: the refused change reached the SAD", tc.name)
		}
	}
	// A new key (and SPI) is a new SA.
	writeConfig(t, path, strings.Replace(strings.Replace(cur, sa, "    spi: 0x00002002\n", 1), "0x1102", "0x2202", 1))
	res, err := m.ReloadFile()
	if err != nil || !slices.Equal(res.SAsReplaced, []string{"gw2-to-gw1"}) {
		t.Fatalf("new key: %+v %v", res, err)
	}
}

// editSA sets field of the SA whose spi line is spi to line: in place when the SA has it, else
// after the spi line.
func editSA(text, spi, field, line string) string {
	i := strings.Index(text, spi)
	end := strings.Index(text[i+len(spi):], "  - name:")
	if end < 0 {
		end = len(text) - i - len(spi)
	}
	block := text[i : i+len(spi)+end]
	if j := strings.Index(block, "    "+field+": "); j >= 0 {
		k := j + strings.Index(block[j:], "\n") + 1
		block = block[:j] + line + block[k:]
	} else {
		block = spi + line + block[len(spi):]
	}
	return text[:i] + block + text[i+len(spi)+end:]
}

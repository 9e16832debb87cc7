package manager

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xdpsec/xdpsec/control/config"
	"github.com/xdpsec/xdpsec/control/offload"
	"github.com/xdpsec/xdpsec/control/offload/fakecard"
	"github.com/xdpsec/xdpsec/control/sadb"
	"github.com/xdpsec/xdpsec/internal/testutil"
	"github.com/xdpsec/xdpsec/ipsec"
)

func writeConfig(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

// gwConfig copies testdata/gw.yaml into a private directory: its text, and the copy's path.
func gwConfig(t *testing.T) (text, path string) {
	t.Helper()
	b, err := os.ReadFile("testdata/gw.yaml")
	if err != nil {
		t.Fatal(err)
	}
	path = filepath.Join(t.TempDir(), "gw.yaml")
	writeConfig(t, path, string(b))
	return string(b), path
}

func TestReloadAppliesOnlyDifferences(t *testing.T) {
	base, path := gwConfig(t)
	card := fakecard.New("lan0", "wan0")
	m := startManager(t, loadConfig(t, path), card, Options{NoPoller: true, NoAPI: true, Logger: slog.New(slog.DiscardHandler)})
	out0, _ := m.Store().GetSA(sadb.Ref{Name: "gw1-to-gw2"}, false)
	in0, _ := m.Store().GetSA(sadb.Ref{Name: "gw2-to-gw1"}, false)
	card.Traffic(in0.Index, 10, 1000, in0.AddTime) // the inbound SA has state that must survive

	// 1. Same file: nothing changes.
	res, err := m.ReloadFile()
	if err != nil || res.SAsUnchanged != 2 || len(res.SAsAdded)+len(res.SAsUpdated)+len(res.SAsReplaced)+
		len(res.PoliciesAdded)+len(res.PoliciesUpdated)+len(res.PoliciesDeleted) != 0 {
		t.Fatalf("reload of the same file: %+v %v", res, err)
	}
	// 2. New key for the outbound SA (a replacement), new lifetime for the inbound one (in place),
	//    the bypass policy gone, its priority changed elsewhere.
	cfg := strings.Replace(base, "0x0102030405060708090a0b0c0d0e0f1011121314", "0x9902030405060708090a0b0c0d0e0f1011121314", 1)
	cfg = strings.Replace(cfg, "    aead: {alg: \"rfc4106(gcm(aes))\", key: \"0x1102", "    lifetime: {hard_packets: 100}\n    aead: {alg: \"rfc4106(gcm(aes))\", key: \"0x1102", 1)
	cfg = strings.Replace(cfg, "  - {name: ike, dir: in, src: 0.0.0.0/0, dst: 0.0.0.0/0, proto: udp, dport: 500, priority: 10, action: bypass}\n", "", 1)
	writeConfig(t, path, cfg)
	res, err = m.ReloadFile()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.SAsReplaced, []string{"gw1-to-gw2"}) || !slices.Equal(res.SAsUpdated, []string{"gw2-to-gw1"}) ||
		!slices.Equal(res.PoliciesDeleted, []string{"ike"}) {
		t.Fatalf("reload result %+v", res)
	}
	m.sync(t)
	out1, _ := m.Store().GetSA(sadb.Ref{Name: "gw1-to-gw2"}, false)
	in1, _ := m.Store().GetSA(sadb.Ref{Name: "gw2-to-gw1"}, false)
	if out1.Serial == out0.Serial {
		t.Fatal("a new key did not make a new SA")
	}
	if in1.Serial != in0.Serial || in1.Index != in0.Index || in1.Limits.HardPackets != 100 {
		t.Fatalf("inbound SA not updated in place: %+v → %+v", in0, in1)
	}
	// A lifetime is the SAD's business: it does not reach the card. The entry was offered again
	// once, in place (its counters, sequence numbers and replay window kept), because the ike
	// bypass, which came before the SA's inbound policy and overlaps it, left its check list.
	if sa, ok := card.SA("wan0", in0.Index); !ok || sa.Installs != 2 || len(sa.Check) != 1 || !sa.Check[0].Accept {
		t.Fatalf("the card's entry of the inbound SA: %+v", sa)
	}
	if c, _ := card.Counters(); c[in0.Index].Packets != 10 {
		t.Fatalf("counters of the updated SA lost: %+v", c[in0.Index])
	}
	if v := card.Violations(); len(v) > 0 {
		t.Fatal(v)
	}
	rep, err := m.Check(t.Context())
	if err != nil || !rep.OK || rep.Policies != 2 {
		t.Fatalf("check after reload: %+v %v", rep, err)
	}
	// 3. A file with an error changes nothing.
	writeConfig(t, path, "instance: [\n")
	if _, err := m.ReloadFile(); err == nil {
		t.Fatal("a broken file reloaded")
	}
	if len(m.Store().ListSAs(false)) != 2 {
		t.Fatal("a failed reload changed the SAD")
	}
}

func TestCloseWipesKeys(t *testing.T) {
	cfg := loadConfig(t, "testdata/gw.yaml")
	m := startManager(t, cfg, fakecard.New("lan0", "wan0"),
		Options{NoPoller: true, NoAPI: true, Logger: slog.New(slog.DiscardHandler)})
	snap := m.Store().Snapshot()
	// The SAD's keys and the configuration's.
	keys := [][]byte{snap.SAs[0].AEAD.Key, snap.SAs[1].AEAD.Key, cfg.SAs[0].AEAD.Key.Bytes(), cfg.SAs[1].AEAD.Key.Bytes()}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		for _, b := range k {
			if b != 0 {
				t.Fatalf("key not wiped at close: %x", k)
			}
		}
	}
}

// A reload wipes the configuration it replaces (the SAD keeps its own copies), and a reload that
// fails wipes the configuration it was given; a file others can read is refused as at start.
func TestReloadWipesReplacedConfig(t *testing.T) {
	_, path := gwConfig(t)
	first := loadConfig(t, path)
	m := startManager(t, first, fakecard.New("lan0", "wan0"),
		Options{NoPoller: true, NoAPI: true, Logger: slog.New(slog.DiscardHandler)})
	mem := first.SAs[0].AEAD.Key.Bytes()
	if _, err := m.ReloadFile(); err != nil {
		t.Fatal(err)
	}
	if first.SAs[0].AEAD.Key.Len() != 0 || !bytes.Equal(mem, make([]byte, len(mem))) {
		t.Errorf("the replaced configuration's key survives the reload: %d bytes left", first.SAs[0].AEAD.Key.Len())
	}
	if sa, err := m.Store().GetSA(sadb.Ref{Name: "gw1-to-gw2"}, true); err != nil || len(sa.AEAD.Key) != 20 || sa.AEAD.Key[0] == 0 {
		t.Errorf("the SAD lost its key with the old configuration: %v", err)
	} else {
		sa.Wipe()
	}
	// A configuration the reload refuses is wiped too: its new SA collides with one added through
	// the API (same SPI and destination, another name).
	viaAPI := sadb.SA{Name: "from-api", SPI: 0x3003, Src: netip.MustParseAddr("198.18.0.1"), Dst: netip.MustParseAddr("198.19.0.1"),
		Mode: ipsec.ModeTunnel, AEAD: &sadb.Algorithm{Name: "rfc4106(gcm(aes))", Key: make(sadb.Key, 20), Bits: 128}}
	if _, err := m.AddSA(viaAPI); err != nil {
		t.Fatal(err)
	}
	text, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	bad, err := config.Parse("bad.yaml", append(text, `  - name: collides
    spi: 0x00003003
    src: 198.18.0.1
    dst: 198.19.0.1
    mode: tunnel
    aead: {alg: "rfc4106(gcm(aes))", key: "0x2102030405060708090a0b0c0d0e0f1011121314", icv_bits: 128}
`...))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.ReloadConfig(bad); err == nil {
		t.Fatal("a configuration whose SA collides with the SAD reloaded")
	}
	for _, sa := range bad.SAs {
		if sa.AEAD.Key.Len() != 0 {
			t.Errorf("sa %s: a refused configuration keeps its key", sa.Name)
		}
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := m.ReloadFile(); !errors.Is(err, config.ErrUnsafeFile) {
		t.Errorf("reload of a world-readable file with keys: %v", err)
	}
}

// A reload while traffic flows and the poller runs: the SAs the file leaves unchanged, or changes only in
// what the SAD alone keeps (a lifetime), are never removed or reinstalled in the card, their counters
// and sequence numbers only grow, and the policies never stop pointing at them.
func TestReloadUnderTrafficKeepsUnchangedSAs(t *testing.T) {
	base, path := gwConfig(t)
	text := strings.Replace(base, "    lifetime: {soft_bytes: 1000, hard_bytes: 2000}\n", "", 1)
	writeConfig(t, path, text)
	card := fakecard.New("lan0", "wan0")
	var mu sync.Mutex
	var removed []uint32
	card.OnRemoveSA = func(index uint32, iface string) {
		mu.Lock()
		removed = append(removed, index)
		mu.Unlock()
	}
	m := startManager(t, loadConfig(t, path), card, Options{NoAPI: true, PollInterval: 2 * time.Millisecond,
		Logger: slog.New(slog.DiscardHandler)})
	out, _ := m.Store().GetSA(sadb.Ref{Name: "gw1-to-gw2"}, false)
	in, _ := m.Store().GetSA(sadb.Ref{Name: "gw2-to-gw1"}, false)
	lanOut, _ := m.Store().GetPolicy(sadb.PolicyRef{Name: "lan-out"})
	lanIn, _ := m.Store().GetPolicy(sadb.PolicyRef{Name: "lan-in"})

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var problems []string
	report := func(format string, args ...any) {
		mu.Lock()
		problems = append(problems, fmt.Sprintf(format, args...))
		mu.Unlock()
	}
	wg.Go(func() { // traffic on both SAs
		for {
			select {
			case <-stop:
				return
			default:
			}
			card.Traffic(out.Index, 1, 100, time.Now())
			card.Traffic(in.Index, 1, 100, time.Now())
			time.Sleep(100 * time.Microsecond)
		}
	})
	// Each step happens while the observer below looks at the card: rounds counts its looks, and
	// observe waits for a few more, in the state the test is in.
	var rounds atomic.Int64
	observe := func(what string) {
		t.Helper()
		n := rounds.Load()
		testutil.WaitFor(t, 5*time.Second, "the observer to look at the card "+what, func() bool { return rounds.Load() >= n+10 })
	}
	wg.Go(func() { // what a packet would see: the policies' SAs and the SAs' sequence numbers
		last := map[uint32]uint64{}
		for {
			select {
			case <-stop:
				return
			default:
			}
			if p, ok := card.Policy("lan0", lanOut.ID); !ok || p.SA != out.Index {
				report("outbound policy on %d (present %v), want %d", p.SA, ok, out.Index)
			}
			if p, ok := card.Policy("wan0", lanIn.ID); !ok || p.SA != in.Index {
				report("inbound policy on %d (present %v), want %d", p.SA, ok, in.Index)
			}
			c, _ := card.Counters()
			for _, idx := range []uint32{out.Index, in.Index} {
				if c[idx].Seq < last[idx] {
					report("sa %d: sequence number went back from %d to %d", idx, last[idx], c[idx].Seq)
				}
				last[idx] = c[idx].Seq
			}
			rounds.Add(1)
			time.Sleep(200 * time.Microsecond)
		}
	})
	observe("before the reload")
	res, err := m.ReloadFile()
	if err != nil || res.SAsUnchanged != 2 {
		t.Fatalf("reload of the same file: %+v %v", res, err)
	}
	text = strings.Replace(text, "    aead: {alg: \"rfc4106(gcm(aes))\", key: \"0x1102", "    lifetime: {hard_packets: 100000000}\n    aead: {alg: \"rfc4106(gcm(aes))\", key: \"0x1102", 1)
	text = strings.Replace(text, "priority: 10, action: bypass", "priority: 20, action: bypass", 1)
	writeConfig(t, path, text)
	observe("after the first reload")
	res, err = m.ReloadFile()
	if err != nil || !slices.Equal(res.SAsUpdated, []string{"gw2-to-gw1"}) || res.SAsUnchanged != 1 ||
		!slices.Equal(res.PoliciesUpdated, []string{"ike"}) {
		t.Fatalf("reload with a new lifetime and priority: %+v %v", res, err)
	}
	m.sync(t)
	before, _ := card.Counters()
	observe("after the second reload")
	close(stop)
	wg.Wait()

	mu.Lock()
	defer mu.Unlock()
	if len(problems) > 0 {
		t.Fatalf("traffic disturbed by the reload: %v", problems[:min(len(problems), 5)])
	}
	if len(removed) > 0 {
		t.Fatalf("the card removed SA indices %v during the reload", removed)
	}
	for _, e := range []sadb.SAEntry{out, in} {
		for _, ifc := range []string{"lan0", "wan0"} {
			if sa, ok := card.SA(ifc, e.Index); !ok || sa.Installs != 1 {
				t.Fatalf("sa %s on %s: present %v, installed %d times, want once", e.Name, ifc, ok, sa.Installs)
			}
		}
		if before[e.Index].Seq == 0 {
			t.Fatalf("sa %s carried no traffic", e.Name)
		}
	}
	// The poller kept adding the card's counters into the SAD's current lifetime throughout.
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, _ := m.Store().GetSA(sadb.Ref{Name: "gw2-to-gw1"}, false)
		if got.Cur.Seq >= before[in.Index].Seq && got.Limits.HardPackets == 100000000 && got.Serial == in.Serial {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("SAD's lifetime of the updated SA: %+v, card had seq %d", got, before[in.Index].Seq)
		}
		time.Sleep(2 * time.Millisecond)
	}
	if rep, err := m.Check(t.Context()); err != nil || !rep.OK {
		t.Fatalf("check after reload: %+v %v", rep, err)
	}
	if v := card.Violations(); len(v) > 0 {
		t.Fatal(v)
	}
}

// A reload that gives an SA a new SPI and key replaces it make-before-break: the policy that names it
// moves from the old SA to the new one without ever pointing at no SA (which would drop its traffic).
func TestReloadReplacementMakeBeforeBreak(t *testing.T) {
	base, path := gwConfig(t)
	card := fakecard.New("lan0", "wan0")
	m := startManager(t, loadConfig(t, path), card, Options{NoAPI: true, NoPoller: true, Logger: slog.New(slog.DiscardHandler)})
	lanOut, _ := m.Store().GetPolicy(sadb.PolicyRef{Name: "lan-out"})
	// Count the store's changes: a replacement must be one (the engine then sees the old SA gone and
	// the new one there in the same pass), or a pass could run in between with no SA under the name.
	var changes atomic.Int64
	m.Store().SetOnChange(func() { changes.Add(1); m.Engine().Kick() })

	stop := make(chan struct{})
	var gaps, reads int
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			reads++
			if p, ok := card.Policy("lan0", lanOut.ID); !ok || p.SA == ipsec.NoSA {
				gaps++
			}
		}
	})
	text := base
	for i := range 20 {
		spi := fmt.Sprintf("spi: 0x%08x", 0x1001+i)
		next := fmt.Sprintf("spi: 0x%08x", 0x1001+i+1)
		text = strings.Replace(text, spi, next, 1)
		// A new key each time, never the inbound SA's (0x1102…): the SAD refuses two SAs under one key.
		from := 0x40 + i
		if i == 0 {
			from = 0x01
		}
		text = strings.Replace(text, fmt.Sprintf("key: \"0x%02x02", from), fmt.Sprintf("key: \"0x%02x02", 0x41+i), 1)
		writeConfig(t, path, text)
		res, err := m.ReloadFile()
		if err != nil || !slices.Equal(res.SAsReplaced, []string{"gw1-to-gw2"}) {
			t.Fatalf("reload %d: %+v %v", i, res, err)
		}
		m.sync(t)
	}
	close(stop)
	wg.Wait()
	if gaps > 0 {
		t.Fatalf("the outbound policy pointed at no SA in %d of %d reads during replacements", gaps, reads)
	}
	if n := changes.Load(); n != 20 {
		t.Fatalf("20 replacements made %d changes of the store, want one each", n)
	}
	cur, _ := m.Store().GetSA(sadb.Ref{Name: "gw1-to-gw2"}, false)
	if p, _ := card.Policy("lan0", lanOut.ID); cur.SPI != 0x1001+20 || p.SA != cur.Index {
		t.Fatalf("after the replacements: sa %+v, policy on %d", cur, p.SA)
	}
	if len(m.Store().Snapshot().Grave) != 0 {
		t.Fatal("replaced SAs not reaped")
	}
	if v := card.Violations(); len(v) > 0 {
		t.Fatal(v)
	}
}

// TestReloadDefaultVerdict: a changed default_verdict is applied to the card in place (it used to be
// neither applied nor listed under restart), and listed under restart by a card that cannot.
func TestReloadDefaultVerdict(t *testing.T) {
	base, path := gwConfig(t)
	card := fakecard.New("lan0", "wan0")
	m := startManager(t, loadConfig(t, path), card, Options{NoPoller: true, NoAPI: true, Logger: slog.New(slog.DiscardHandler)})
	verdict := "default_verdict: {in: discard, out: bypass}\n"
	writeConfig(t, path, base+verdict)
	res, err := m.ReloadFile()
	if err != nil {
		t.Fatal(err)
	}
	want := ipsec.Defaults{Out: ipsec.ActionBypass, In: ipsec.ActionDiscard}
	if !res.DefaultVerdict || len(res.Restart) != 0 || card.Defaults() != want {
		t.Fatalf("reload: %+v; the card's defaults %+v, want %+v", res, card.Defaults(), want)
	}
	if res.SAsUnchanged != 2 || len(res.PoliciesUpdated) != 0 {
		t.Fatalf("the verdict moved SAs or policies: %+v", res)
	}
	// The same file again: nothing to apply.
	if res, err = m.ReloadFile(); err != nil || res.DefaultVerdict {
		t.Fatalf("second reload: %+v %v", res, err)
	}

	// A card without DefaultsSetter: the change needs a restart, and says so.
	writeConfig(t, path, base)
	m2, err := New(loadConfig(t, path), noDefaults{fakecard.New("lan0", "wan0")},
		Options{NoPoller: true, NoAPI: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := m2.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer m2.Close()
	writeConfig(t, path, base+verdict)
	if res, err = m2.ReloadFile(); err != nil || res.DefaultVerdict || !slices.Equal(res.Restart, []string{"default_verdict"}) {
		t.Fatalf("reload on a card without defaults: %+v %v", res, err)
	}
}

// noDefaults is a card that offers only the Driver interface.
type noDefaults struct{ offload.Driver }

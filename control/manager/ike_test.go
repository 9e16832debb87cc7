package manager

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/xdpsec/xdpsec/control/api"
	"github.com/xdpsec/xdpsec/control/config"
	"github.com/xdpsec/xdpsec/control/events"
	"github.com/xdpsec/xdpsec/control/offload"
	"github.com/xdpsec/xdpsec/control/offload/fakecard"
	"github.com/xdpsec/xdpsec/control/sadb"
	"github.com/xdpsec/xdpsec/ipsec"
)

// The daemon's side of docs/ike-api.md, through its socket, with the requests as strongSwan's
// kernel-xdpsec sends them (ike/strongswan): one connection per request, Connection: close.

type ikeRig struct {
	m    *Manager
	card *fakecard.Card
	sock string
}

func newIKERig(t *testing.T, opts Options) *ikeRig {
	t.Helper()
	card := fakecard.New("lan0", "wan0")
	card.Protected, card.Wire = "lan0", "wan0"
	opts.NoPoller = true
	m := startManager(t, loadConfig(t, "testdata/gw.yaml"), card, opts)
	return &ikeRig{m: m, card: card, sock: m.opts.Socket}
}

type answer struct {
	status int
	epoch  string
	body   []byte
}

func (a answer) json(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(a.body, v); err != nil {
		t.Fatalf("answer %d %s: %v", a.status, a.body, err)
	}
}

func (a answer) kind(t *testing.T) string {
	t.Helper()
	var e api.Error
	a.json(t, &e)
	return e.Kind
}

func (r *ikeRig) do(t *testing.T, method, target, body string) answer {
	t.Helper()
	c, err := net.Dial("unix", r.sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	req, err := http.NewRequest(method, "http://xdpsec"+target, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Close = true
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if err := req.Write(c); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return answer{status: resp.StatusCode, epoch: resp.Header.Get(api.EpochHeader), body: b}
}

const ikeSAIn = `{"owner":"ike","spi":%[1]d,"src":"198.19.0.2","dst":"198.19.0.1","proto":50,"mode":"tunnel","reqid":%[2]d,
 "dir":"in","aead":{"alg":"rfc4106(gcm(aes))","key":"0x%08[1]x0405060708090a0b0c0d0e0f10111213","bits":128},
 "esn":true,"replay_window":32,"lifetime":{"soft_bytes":0,"hard_bytes":0,"soft_packets":0,"hard_packets":0,
 "soft_add_seconds":%[3]d,"hard_add_seconds":3600},"df":"copy"}`

const ikePolicyIn = `{"owner":"ike","dir":"%s","priority":%d,"action":"protect",
 "sel":{"src":"198.18.2.0/24","dst":"198.18.1.0/24","proto":0},
 "tmpl":{"reqid":%d,"proto":50,"mode":"tunnel","src":"198.19.0.2","dst":"198.19.0.1"}}`

func TestInfoAndEpoch(t *testing.T) {
	r := newIKERig(t, Options{})
	a := r.do(t, "GET", "/v1/info", "")
	var info api.Info
	a.json(t, &info)
	if a.status != 200 || info.API != 2 || info.Instance != "tgw" || info.EncapPort != 4500 ||
		!regexp.MustCompile(`^[0-9a-f]{16}$`).MatchString(info.Epoch) || a.epoch != info.Epoch || len(info.Features) == 0 {
		t.Fatalf("info %d %+v (header %q)", a.status, info, a.epoch)
	}
	if info.Seq != r.m.Events().Position().Seq {
		t.Fatalf("info seq %d, bus at %d", info.Seq, r.m.Events().Position().Seq)
	}
	// Every answer carries the epoch, errors too.
	if a := r.do(t, "POST", "/v1/sa/get", `{"ref":{"name":"nope"}}`); a.status != 404 || a.epoch != info.Epoch {
		t.Fatalf("error answer %d, epoch %q", a.status, a.epoch)
	}
	// Another epoch: 412, and nothing done.
	pol := r.do(t, "POST", "/v1/sp", fmt.Sprintf(ikePolicyIn, "in", 100, 5))
	var pv api.PolicyView
	pol.json(t, &pv)
	a = r.do(t, "POST", "/v1/sp/delete?epoch=0123456789abcdef&owner=ike", fmt.Sprintf(`{"id":%d}`, pv.ID))
	if a.status != 412 || a.kind(t) != "epoch" {
		t.Fatalf("delete with another epoch: %d %s", a.status, a.body)
	}
	if _, err := r.m.store.GetPolicy(sadb.PolicyRef{ID: pv.ID}); err != nil {
		t.Fatalf("the policy went anyway: %v", err)
	}
	a = r.do(t, "POST", "/v1/sp/delete?epoch="+info.Epoch+"&owner=ike", fmt.Sprintf(`{"id":%d}`, pv.ID))
	if a.status != 200 {
		t.Fatalf("delete with the epoch: %d %s", a.status, a.body)
	}
	// A new manager is a new epoch.
	r2 := newIKERig(t, Options{})
	if r2.m.Epoch() == r.m.Epoch() {
		t.Fatal("two daemons, one epoch")
	}
}

func TestSPIAllocation(t *testing.T) {
	r := newIKERig(t, Options{})
	a := r.do(t, "POST", "/v1/spi", `{"src":"198.19.0.2","dst":"198.19.0.1","proto":50,"min":3221225472,"max":3489660927,"lifetime_seconds":165}`)
	var spi api.SPIAnswer
	a.json(t, &spi)
	if a.status != 201 || spi.SPI < 0xc0000000 || spi.SPI > 0xcfffffff || spi.Dst.String() != "198.19.0.1" || spi.Proto != 50 ||
		time.Until(spi.Expires) < 160*time.Second || time.Until(spi.Expires) > 166*time.Second {
		t.Fatalf("spi: %d %s", a.status, a.body)
	}
	// Not an SA: not listed, nothing on the card.
	if l := r.m.store.ListSAsOf(sadb.Only(sadb.OwnerIKE), false); len(l) != 0 {
		t.Fatalf("a larval spi is listed: %+v", l)
	}
	// The SA with it consumes it; a second reservation of the range's only SPI then fails.
	if a := r.do(t, "POST", "/v1/sa", fmt.Sprintf(ikeSAIn, spi.SPI, 1, 0)); a.status != 201 {
		t.Fatalf("add sa: %d %s", a.status, a.body)
	}
	if r.m.store.Larvals() != 0 {
		t.Fatal("the add did not consume the larval entry")
	}
	a = r.do(t, "POST", "/v1/spi", fmt.Sprintf(`{"dst":"198.19.0.1","proto":50,"min":%d,"max":%d}`, spi.SPI, spi.SPI))
	if a.status != 507 || a.kind(t) != "full" {
		t.Fatalf("the only spi is taken: %d %s", a.status, a.body)
	}
	// A reservation deleted as charon does for a failed negotiation.
	a = r.do(t, "POST", "/v1/spi", `{"dst":"198.19.0.1","proto":50,"min":4096,"max":8191}`)
	a.json(t, &spi)
	a = r.do(t, "POST", "/v1/sa/delete", fmt.Sprintf(`{"id":{"spi":%d,"dst":"198.19.0.1","proto":50}}`, spi.SPI))
	var lv api.LarvalView
	a.json(t, &lv)
	if a.status != 200 || lv.State != "larval" || lv.SPI != spi.SPI {
		t.Fatalf("delete larval: %d %s", a.status, a.body)
	}
	if a := r.do(t, "POST", "/v1/sa/delete", fmt.Sprintf(`{"id":{"spi":%d,"dst":"198.19.0.1","proto":50}}`, spi.SPI)); a.status != 404 {
		t.Fatalf("delete it again: %d %s", a.status, a.body)
	}
	for _, bad := range []string{
		`{"dst":"198.19.0.1","proto":50,"min":1,"max":300}`,
		`{"dst":"198.19.0.1","proto":51,"min":4096,"max":8191}`,
		`{"dst":"198.19.0.1","proto":50,"min":8191,"max":4096}`,
		`{"dst":"198.19.0.1","proto":50,"min":4096,"max":8191,"lifetime_seconds":3601}`,
		`{"dst":"198.19.0.1","proto":50,"min":4096,"max":8191,"size":1}`,
	} {
		if a := r.do(t, "POST", "/v1/spi", bad); a.status != 400 || a.kind(t) != "invalid" {
			t.Errorf("%s: %d %s", bad, a.status, a.body)
		}
	}
}

func TestOwnersThroughTheAPI(t *testing.T) {
	r := newIKERig(t, Options{})
	if a := r.do(t, "POST", "/v1/sa", fmt.Sprintf(ikeSAIn, 0x5001, 1, 0)); a.status != 201 {
		t.Fatalf("add: %d %s", a.status, a.body)
	}
	cli := strings.Replace(fmt.Sprintf(ikeSAIn, 0x5002, 1, 0), `"owner":"ike",`, ``, 1)
	if a := r.do(t, "POST", "/v1/sa", cli); a.status != 201 {
		t.Fatalf("add cli: %d %s", a.status, a.body)
	}
	cfg := strings.Replace(fmt.Sprintf(ikeSAIn, 0x5003, 1, 0), `"owner":"ike"`, `"owner":"config"`, 1)
	if a := r.do(t, "POST", "/v1/sa", cfg); a.status != 400 || !strings.Contains(string(a.body), "owner config") {
		t.Fatalf("owner config through the API: %d %s", a.status, a.body)
	}
	var l []api.SAView
	r.do(t, "GET", "/v1/sa?owner=ike", "").json(t, &l)
	if len(l) != 1 || l[0].SPI != 0x5001 || l[0].Owner != sadb.OwnerIKE {
		t.Fatalf("ike sas: %+v", l)
	}
	r.do(t, "GET", "/v1/sa", "").json(t, &l)
	if len(l) != 4 { // the config's two, cli, ike
		t.Fatalf("all sas: %d", len(l))
	}
	if a := r.do(t, "GET", "/v1/sa?owner=root", ""); a.status != 400 {
		t.Fatalf("owner root: %d", a.status)
	}
	r.do(t, "POST", "/v1/sa/flush?owner=ike", "").json(t, &l)
	if len(l) != 1 || l[0].SPI != 0x5001 {
		t.Fatalf("flushed %+v", l)
	}
	r.do(t, "GET", "/v1/sa", "").json(t, &l)
	if len(l) != 3 {
		t.Fatalf("after the ike flush: %d sas", len(l))
	}
	// A reload touches only the file's own: a file without SAs and policies deletes the config's,
	// and the cli SA and an ike policy stay.
	if a := r.do(t, "POST", "/v1/sp", fmt.Sprintf(ikePolicyIn, "in", 100, 7)); a.status != 201 {
		t.Fatalf("ike policy: %d %s", a.status, a.body)
	}
	empty := *r.m.Config()
	empty.SAs, empty.Policies = nil, nil
	if _, err := r.m.ReloadConfig(&empty); err != nil {
		t.Fatal(err)
	}
	left := r.m.store.ListSAs(false)
	if len(left) != 1 || left[0].Owner != sadb.OwnerCLI {
		t.Fatalf("after the reload: %+v", left)
	}
	if pl := r.m.store.ListPolicies(); len(pl) != 1 || pl[0].Owner != sadb.OwnerIKE {
		t.Fatalf("policies after the reload: %+v", pl)
	}
}

// TestReloadLeavesRunTimeNames: a file naming an SA that was added at run time under that name
// reports it and leaves it alone.
func TestReloadLeavesRunTimeNames(t *testing.T) {
	r := newIKERig(t, Options{})
	cfg := *r.m.Config()
	extra := cfg.SAs[0]
	extra.Name, extra.SPI = "later", 0x7001
	aead := *extra.AEAD
	aead.Key = config.NewKey(bytes.Repeat([]byte{0x70}, aead.Key.Len())) // a key of its own
	extra.AEAD = &aead
	sa := extra.SADB()
	sa.Owner = sadb.OwnerCLI
	if _, err := r.m.AddSA(sa); err != nil {
		t.Fatal(err)
	}
	cfg.SAs = append(append(cfg.SAs[:0:0], cfg.SAs...), extra)
	extra.SPI = 0x7002
	cfg.SAs[len(cfg.SAs)-1] = extra
	_, err := r.m.ReloadConfig(&cfg)
	if err == nil || !strings.Contains(err.Error(), "owner cli") {
		t.Fatalf("reload: %v", err)
	}
	if e, err := r.m.store.GetSA(sadb.Ref{Name: "later"}, false); err != nil || e.SPI != 0x7001 {
		t.Fatalf("the run-time SA was touched: %+v %v", e, err)
	}
}

func TestPoliciesThroughTheAPI(t *testing.T) {
	r := newIKERig(t, Options{})
	trap := fmt.Sprintf(ikePolicyIn, "out", 375424, 3)
	a := r.do(t, "POST", "/v1/sp", trap)
	var first, again api.PolicyView
	a.json(t, &first)
	if a.status != 201 || first.Owner != sadb.OwnerIKE {
		t.Fatalf("add: %d %s", a.status, a.body)
	}
	a = r.do(t, "POST", "/v1/sp", trap)
	a.json(t, &again)
	if a.status != 200 || again.ID != first.ID {
		t.Fatalf("identical add: %d %s", a.status, a.body)
	}
	a = r.do(t, "POST", "/v1/sp", fmt.Sprintf(ikePolicyIn, "out", 375423, 3))
	var child api.PolicyView
	a.json(t, &child)
	if a.status != 201 || child.ID == first.ID {
		t.Fatalf("same selector, other priority: %d %s", a.status, a.body)
	}
	a = r.do(t, "POST", "/v1/sp", fmt.Sprintf(ikePolicyIn, "fwd", 375423, 3))
	var fwd api.PolicyView
	a.json(t, &fwd)
	if a.status != 201 || fwd.Dir != ipsec.DirFwd {
		t.Fatalf("fwd: %d %s", a.status, a.body)
	}
	r.m.sync(t)
	var l []api.PolicyView
	r.do(t, "GET", "/v1/sp?owner=ike", "").json(t, &l)
	states := map[uint32]string{}
	for _, p := range l {
		s := "-"
		if len(p.OffloadState) > 0 {
			s = string(p.OffloadState[0].Status)
		}
		states[p.ID] = s
	}
	if states[first.ID] != "shadowed" || states[child.ID] != "offloaded" || states[fwd.ID] != "-" || len(l) != 3 {
		t.Fatalf("offload states %v (trap %d, child %d, fwd %d)", states, first.ID, child.ID, fwd.ID)
	}
	if rep, err := r.m.Check(context.Background()); err != nil || !rep.OK {
		t.Fatalf("check: %+v %v", rep, err)
	}
	// The bypass policies of charon's IKE sockets.
	for _, b := range []string{
		`{"owner":"ike","dir":"in","priority":1,"action":"bypass","sel":{"src":"0.0.0.0/0","dst":"0.0.0.0/0","proto":17,"dport":{"lo":4500,"hi":4500}}}`,
		`{"owner":"ike","dir":"out","priority":1,"action":"bypass","sel":{"src":"::/0","dst":"::/0","proto":17,"sport":{"lo":500,"hi":500}}}`,
	} {
		if a := r.do(t, "POST", "/v1/sp", b); a.status != 201 {
			t.Fatalf("bypass: %d %s", a.status, a.body)
		}
	}
	// get and delete with ?owner= as a condition.
	if a := r.do(t, "POST", "/v1/sp/get?owner=cli", fmt.Sprintf(`{"ref":{"id":%d}}`, child.ID)); a.status != 404 {
		t.Fatalf("get as another owner: %d", a.status)
	}
	if a := r.do(t, "POST", "/v1/sp/get?owner=ike", fmt.Sprintf(`{"ref":{"id":%d}}`, child.ID)); a.status != 200 ||
		strings.Contains(string(a.body), "last_use_time") {
		t.Fatalf("get an unused policy: %d %s", a.status, a.body)
	}
	if a := r.do(t, "POST", "/v1/sp/delete?owner=cli", fmt.Sprintf(`{"id":%d}`, child.ID)); a.status != 404 {
		t.Fatalf("delete as another owner: %d", a.status)
	}
	r.do(t, "POST", "/v1/sp/flush?owner=ike", "").json(t, &l)
	if len(l) != 5 {
		t.Fatalf("flushed %d ike policies, want 5", len(l))
	}
	if n := len(r.m.store.ListPolicies()); n != 3 {
		t.Fatalf("%d policies left, want the config's 3", n)
	}
}

// TestFreshCountersAndLastUse: an SA query reads the card now (no poller runs here), and an inbound
// PROTECT policy's last use is its SA's.
func TestFreshCountersAndLastUse(t *testing.T) {
	r := newIKERig(t, Options{})
	if a := r.do(t, "POST", "/v1/sa", fmt.Sprintf(ikeSAIn, 0x6001, 4, 0)); a.status != 201 {
		t.Fatalf("add: %d %s", a.status, a.body)
	}
	var pv api.PolicyView
	r.do(t, "POST", "/v1/sp", fmt.Sprintf(ikePolicyIn, "in", 100, 4)).json(t, &pv)
	var fwd api.PolicyView
	r.do(t, "POST", "/v1/sp", fmt.Sprintf(ikePolicyIn, "fwd", 100, 4)).json(t, &fwd)
	r.m.sync(t)
	e, err := r.m.store.GetSA(sadb.Ref{ID: &sadb.SAID{SPI: 0x6001, Dst: netip.MustParseAddr("198.19.0.1")}}, false)
	if err != nil {
		t.Fatal(err)
	}
	used := time.Now().Add(-3 * time.Second).Truncate(time.Second).UTC()
	r.card.SetCounters(e.Index, offload.SACounters{Packets: 7, Bytes: 700, LastUse: used, FirstUse: used.Add(-time.Minute)})
	get := `{"ref":{"id":{"spi":24577,"dst":"198.19.0.1","proto":50}}}`
	var v api.SAView
	r.do(t, "POST", "/v1/sa/get", get).json(t, &v)
	if v.Cur.Packets != 7 || v.Cur.Bytes != 700 || !v.LastUse.Equal(used) {
		t.Fatalf("query: current %+v last use %s, want 7/700 and %s", v.Cur, v.LastUse, used)
	}
	for _, id := range []uint32{pv.ID, fwd.ID} {
		var got api.PolicyView
		a := r.do(t, "POST", fmt.Sprintf("/v1/sp/get?epoch=%s&owner=ike", r.m.Epoch()), fmt.Sprintf(`{"ref":{"id":%d}}`, id))
		a.json(t, &got)
		if a.status != 200 || !got.LastUse.Equal(used) {
			t.Fatalf("policy %d: %d last use %s, want %s", id, a.status, got.LastUse, used)
		}
	}
}

func TestMigrateThroughTheAPI(t *testing.T) {
	r := newIKERig(t, Options{})
	if a := r.do(t, "POST", "/v1/sa", fmt.Sprintf(ikeSAIn, 0x6101, 4, 0)); a.status != 201 {
		t.Fatalf("add: %d %s", a.status, a.body)
	}
	r.do(t, "POST", "/v1/sp", fmt.Sprintf(ikePolicyIn, "in", 100, 4))
	r.m.sync(t)
	sub := r.m.Subscribe(16)
	defer sub.Close()
	mv := `{"id":{"spi":24833,"dst":"198.19.0.1","proto":50},"src":"198.19.0.7","dst":"198.19.0.8",
	 "encap":{"type":"espinudp","sport":62000,"dport":4500},"reqid":5}`
	a := r.do(t, "POST", "/v1/sa/migrate", mv)
	var v api.SAView
	a.json(t, &v)
	if a.status != 200 || v.Dst.String() != "198.19.0.8" || v.Src.String() != "198.19.0.7" || v.Reqid != 5 ||
		v.Encap == nil || v.Encap.Sport != 62000 {
		t.Fatalf("migrate: %d %s", a.status, a.body)
	}
	if ev := <-sub.C(); ev.Type != events.SAUpdated || ev.Dst != "198.19.0.8" || ev.Owner != "ike" {
		t.Fatalf("event %+v", ev)
	}
	r.m.sync(t)
	sa, ok := r.card.SA("wan0", v.Index)
	if !ok || sa.Dst.String() != "198.19.0.8" || sa.Moves != 1 {
		t.Fatalf("card entry %+v %v: want moved in place", sa, ok)
	}
	if v := r.card.Violations(); len(v) > 0 {
		t.Fatal(v)
	}
	for _, tc := range []struct {
		body   string
		status int
		kind   string
	}{
		{`{"id":{"spi":24833,"dst":"198.19.0.8","proto":50},"src":"2001:2::1","dst":"2001:2::2","encap":null}`, 501, "unsupported"},
		{`{"id":{"spi":24833,"dst":"198.19.0.8","proto":50},"src":"198.19.0.7","dst":"198.19.0.8"}`, 400, "invalid"},
		{`{"id":{"spi":1,"dst":"198.19.0.8","proto":50},"src":"198.19.0.7","dst":"198.19.0.8","encap":null}`, 404, "not_found"},
		{`{"id":{"spi":24833,"dst":"198.19.0.8","proto":50},"src":"198.19.0.7","dst":"198.19.0.8","encap":{"type":"espinudp","sport":1,"dport":2,"x":1}}`, 400, "invalid"},
	} {
		if a := r.do(t, "POST", "/v1/sa/migrate", tc.body); a.status != tc.status || a.kind(t) != tc.kind {
			t.Errorf("%s: %d %s", tc.body, a.status, a.body)
		}
	}
}

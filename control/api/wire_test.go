package api

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/xdpsec/xdpsec/control/events"
	"github.com/xdpsec/xdpsec/control/offload"
	"github.com/xdpsec/xdpsec/control/sadb"
	"github.com/xdpsec/xdpsec/ipsec"
)

// TestWireFormat pins the API's JSON, which key managers speak (docs/control.md): the lines are what
// the daemon sent before package ipsec replaced sadb's own Dir, Mode, Action and PortRange, plus what
// API version 2 added (owner, serial: docs/ike-api.md).
func TestWireFormat(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	sa := sadb.SA{Name: "a", SPI: 0x1001, Src: netip.MustParseAddr("198.18.0.1"), Dst: netip.MustParseAddr("198.18.0.2"),
		Proto: ipsec.ProtoESP, Mode: ipsec.ModeTunnel, Reqid: 1, Dir: new(ipsec.DirOut),
		AEAD: &sadb.Algorithm{Name: "rfc4106(gcm(aes))", Key: sadb.Key{1, 2}, Bits: 128}, ReplayWindow: 128,
		Encap: &sadb.Encap{Type: "espinudp", Sport: 4500, Dport: 4500}, TTL: 64, DF: "copy"}
	sa2 := sa
	sa2.Dir, sa2.Mode = nil, ipsec.ModeTransport
	sel := ipsec.Selector{Src: netip.MustParsePrefix("198.18.1.0/24"), Dst: netip.MustParsePrefix("198.18.2.0/24"),
		Proto: ipsec.ProtoTCP, DstPorts: ipsec.Port(80)}
	icmp := ipsec.Selector{Src: netip.MustParsePrefix("0.0.0.0/0"), Dst: netip.MustParsePrefix("198.18.2.0/24"),
		Proto: ipsec.ProtoICMP, SrcPorts: ipsec.Port(8), DstPorts: ipsec.Ports(0, 3)}
	for _, tc := range []struct {
		v    any
		want string
	}{
		{SAView{SAEntry: sadb.SAEntry{SA: sa, Index: 1, AddTime: t0, Gen: 3, Serial: 1},
			OffloadState: []offload.IfaceState{{Iface: "wan", Status: offload.StatusOffloaded}}, Direction: new(ipsec.DirOut)},
			`{"owner":"cli","name":"a","spi":4097,"src":"198.18.0.1","dst":"198.18.0.2","proto":50,"mode":"tunnel","reqid":1,"dir":"out","aead":{"alg":"rfc4106(gcm(aes))","key":"0x0102","bits":128},"replay_window":128,"encap":{"type":"espinudp","sport":4500,"dport":4500},"lifetime":{},"ttl":64,"df":"copy","index":1,"state":"mature","add_time":"2026-01-02T03:04:05Z","current":{"bytes":0,"packets":0,"replay_errors":0,"integrity_errors":0,"other_errors":0,"seq_unreserved":0,"seq":0},"gen":3,"serial":1,"offload_state":[{"iface":"wan","status":"offloaded"}],"direction":"out"}`},
		{SAView{SAEntry: sadb.SAEntry{SA: sa2, Index: 2, AddTime: t0}, Direction: new(ipsec.DirIn)},
			`{"owner":"cli","name":"a","spi":4097,"src":"198.18.0.1","dst":"198.18.0.2","proto":50,"mode":"transport","reqid":1,"aead":{"alg":"rfc4106(gcm(aes))","key":"0x0102","bits":128},"replay_window":128,"encap":{"type":"espinudp","sport":4500,"dport":4500},"lifetime":{},"ttl":64,"df":"copy","index":2,"state":"mature","add_time":"2026-01-02T03:04:05Z","current":{"bytes":0,"packets":0,"replay_errors":0,"integrity_errors":0,"other_errors":0,"seq_unreserved":0,"seq":0},"gen":0,"serial":0,"offload_state":null,"direction":"in"}`},
		{PolicyView{PolicyEntry: sadb.PolicyEntry{Policy: sadb.Policy{Name: "p", Dir: ipsec.DirIn, Priority: 100, Action: ipsec.ActionProtect,
			Sel: sel, Tmpl: &sadb.Tmpl{SA: "a", Reqid: 1, Mode: ipsec.ModeTunnel, Proto: ipsec.ProtoESP}}, ID: 3, AddTime: t0, Gen: 2},
			OffloadState: []offload.IfaceState{{Iface: "wan", Status: offload.StatusRefused, Reason: offload.ReasonTableFull, Detail: "x"}}},
			`{"owner":"cli","name":"p","dir":"in","sel":{"src":"198.18.1.0/24","dst":"198.18.2.0/24","proto":6,"dport":{"lo":80,"hi":80}},"priority":100,"action":"protect","tmpl":{"sa":"a","reqid":1,"proto":50,"mode":"tunnel"},"id":3,"add_time":"2026-01-02T03:04:05Z","gen":2,"serial":0,"offload_state":[{"iface":"wan","status":"refused","reason":"table_full","detail":"x"}]}`},
		{PolicyView{PolicyEntry: sadb.PolicyEntry{Policy: sadb.Policy{Dir: ipsec.DirOut, Action: ipsec.ActionDiscard, Sel: icmp}, ID: 4, AddTime: t0}},
			`{"owner":"cli","dir":"out","sel":{"src":"0.0.0.0/0","dst":"198.18.2.0/24","proto":1,"sport":{"lo":8,"hi":8},"dport":{"lo":0,"hi":3}},"priority":0,"action":"discard","id":4,"add_time":"2026-01-02T03:04:05Z","gen":0,"serial":0}`},
		{events.Event{Time: t0, Type: events.Acquire, Proto: ipsec.ProtoTCP, Src: "198.18.1.1", PolicyID: 3},
			`{"time":"2026-01-02T03:04:05Z","type":"acquire","policy_id":3,"src":"198.18.1.1","proto":6}`},
		{sadb.PolicyRef{Key: &sadb.PolicyKey{Dir: ipsec.DirOut, Sel: ipsec.Selector{Src: netip.MustParsePrefix("0.0.0.0/0"), Dst: netip.MustParsePrefix("198.18.2.0/24")}}},
			`{"key":{"dir":"out","sel":{"src":"0.0.0.0/0","dst":"198.18.2.0/24","proto":0}}}`},
		{sadb.Ref{ID: &sadb.SAID{SPI: 5, Dst: netip.MustParseAddr("198.18.0.2"), Proto: ipsec.ProtoESP}},
			`{"id":{"spi":5,"dst":"198.18.0.2","proto":50}}`},
	} {
		b, err := json.Marshal(tc.v)
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != tc.want {
			t.Errorf("%T:\n got %s\nwant %s", tc.v, b, tc.want)
		}
		// And it reads back to the same value.
		back := newOf(tc.v)
		if err := json.Unmarshal(b, back); err != nil {
			t.Errorf("%T: %s reads back: %v", tc.v, b, err)
			continue
		}
		if b2, _ := json.Marshal(back); !bytes.Equal(b, b2) {
			t.Errorf("%T: read back as %s", tc.v, b2)
		}
	}
}

func newOf(v any) any {
	switch v.(type) {
	case SAView:
		return new(SAView)
	case PolicyView:
		return new(PolicyView)
	case events.Event:
		return new(events.Event)
	case sadb.PolicyRef:
		return new(sadb.PolicyRef)
	case sadb.Ref:
		return new(sadb.Ref)
	}
	panic("no type")
}

// recorder is a Backend that records the policy calls it gets; nothing else is called.
type recorder struct {
	Backend
	added   []sadb.Policy
	deleted []sadb.PolicyRef
}

func (r *recorder) PutPolicy(p sadb.Policy) (PolicyView, bool, error) {
	r.added = append(r.added, p)
	return PolicyView{PolicyEntry: sadb.PolicyEntry{Policy: p}}, true, nil
}

func (r *recorder) DeletePolicyOf(ref sadb.PolicyRef, _ sadb.OwnerFilter) (PolicyView, error) {
	r.deleted = append(r.deleted, ref)
	return PolicyView{}, nil
}

func (r *recorder) Epoch() string { return "e" }

// TestPolicyNeedsDir: a policy (or a policy key) without its dir is refused, not taken for out, the
// zero direction.
func TestPolicyNeedsDir(t *testing.T) {
	b := &recorder{}
	h := Handler(b, nil)
	do := func(path, body string) (int, string) {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, path, strings.NewReader(body)))
		return w.Code, w.Body.String()
	}
	sel := `"sel":{"src":"198.18.1.0/24","dst":"198.18.2.0/24","proto":0}`
	if code, body := do("/v1/sp", `{"name":"p",`+sel+`,"action":"bypass"}`); code != http.StatusBadRequest || !strings.Contains(body, "dir") {
		t.Errorf("policy without dir: %d %s", code, body)
	}
	if code, body := do("/v1/sp/delete", `{"key":{`+sel+`}}`); code != http.StatusBadRequest || !strings.Contains(body, "dir") {
		t.Errorf("policy key without dir: %d %s", code, body)
	}
	if len(b.added)+len(b.deleted) != 0 {
		t.Fatalf("the backend was called: %+v %+v", b.added, b.deleted)
	}
	if code, body := do("/v1/sp", `{"owner":"cli","name":"p","dir":"in",`+sel+`,"action":"bypass"}`); code != http.StatusCreated {
		t.Fatalf("policy with dir in: %d %s", code, body)
	}
	if code, body := do("/v1/sp/delete", `{"key":{"dir":"out",`+sel+`}}`); code != http.StatusOK {
		t.Fatalf("policy key with dir out: %d %s", code, body)
	}
	if code, body := do("/v1/sp/delete", `{"name":"p"}`); code != http.StatusOK {
		t.Fatalf("policy by name: %d %s", code, body)
	}
	if len(b.added) != 1 || b.added[0].Dir != ipsec.DirIn || b.added[0].Name != "p" || b.added[0].Sel.Dst.String() != "198.18.2.0/24" {
		t.Fatalf("added %+v", b.added)
	}
	if len(b.deleted) != 2 || b.deleted[0].Key == nil || b.deleted[0].Key.Dir != ipsec.DirOut || b.deleted[1].Name != "p" || b.deleted[1].Key != nil {
		t.Fatalf("deleted %+v", b.deleted)
	}
	// Unknown fields are still errors.
	if code, _ := do("/v1/sp", `{"owner":"cli","name":"p","dir":"in",`+sel+`,"action":"bypass","prio":1}`); code != http.StatusBadRequest {
		t.Fatalf("unknown field: %d", code)
	}
}

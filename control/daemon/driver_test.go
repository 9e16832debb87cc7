package daemon

import (
	"net/netip"
	"testing"

	"github.com/xdpsec/xdpsec/control/offload"
	"github.com/xdpsec/xdpsec/control/sadb"
	"github.com/xdpsec/xdpsec/crypto/worker"
	"github.com/xdpsec/xdpsec/ipsec"
)

// TestInboundSAWithoutPolicyIsNoPolicy: an inbound SA that no policy covers yet is refused with
// ReasonNoPolicy, which the offload engine re-offers only when a policy arrives, not with
// ReasonError, which it retries every second.
func TestInboundSAWithoutPolicyIsNoPolicy(t *testing.T) {
	sas, err := worker.NewSATable(8, 1500)
	if err != nil {
		t.Fatal(err)
	}
	d := newDriver(nil, sas, nil, []string{"lan", "wan"}, nil, nil)
	key := make(sadb.Key, 20)
	for i := range key {
		key[i] = byte(i + 1)
	}
	e := &sadb.SAEntry{Index: 1, SA: sadb.SA{Name: "in", SPI: 0x100, Proto: ipsec.ProtoESP, Dir: new(ipsec.DirIn),
		Src: netip.MustParseAddr("198.18.0.2"), Dst: netip.MustParseAddr("198.18.0.1"), Mode: ipsec.ModeTunnel,
		ReplayWindow: 64, AEAD: &sadb.Algorithm{Name: "rfc4106(gcm(aes))", Key: key, Bits: 128}}}
	err = d.InstallSA(&offload.SAOffload{Iface: "wan", Index: 1, SA: e})
	if r, detail := offload.ReasonOf(err); err == nil || r != offload.ReasonNoPolicy {
		t.Fatalf("InstallSA of an inbound SA without selectors: %v (reason %q, %s), want a %q nack",
			err, r, detail, offload.ReasonNoPolicy)
	}
	if sas.Lookup(1) != nil {
		t.Error("the refused SA is in the workers' table")
	}
}

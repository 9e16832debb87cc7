//go:build linux

package worker

import (
	"testing"

	"github.com/xdpsec/xdpsec/bpf"
	"github.com/xdpsec/xdpsec/crypto/esp"
)

// TestStatsSlots: SAStats has the slots of the card's struct
// xdpsec_worker_stats, and the engine's and the worker's reasons fit its
// error array without overlapping.
func TestStatsSlots(t *testing.T) {
	var c bpf.CardXdpsecWorkerStats
	var s SAStats
	if len(c.Errors) != len(s.Errors) {
		t.Fatalf("SAStats has %d error slots, xdpsec_worker_stats %d", len(s.Errors), len(c.Errors))
	}
	if int(ReasonPMTU) >= NumErrorSlots || int(esp.NumReasons) > int(ReasonPolicyMismatch) {
		t.Fatal("the engine's and the worker's reasons overlap or do not fit the error slots")
	}
	// The slots below the worker's own carry esp.Reason values: the card's enum names them alike.
	for _, c := range []struct {
		esp  esp.Reason
		card bpf.CardXdpsecWorkerError
	}{{esp.ReasonReplay, bpf.CardXdpsecWorkerErrorXDPSEC_WERR_REPLAY}, {esp.ReasonSeqExhausted, bpf.CardXdpsecWorkerErrorXDPSEC_WERR_SEQ_EXHAUSTED},
		{esp.ReasonWiped, bpf.CardXdpsecWorkerErrorXDPSEC_WERR_WIPED}, {esp.ReasonSeqUnreserved, bpf.CardXdpsecWorkerErrorXDPSEC_WERR_SEQ_UNRESERVED}} {
		if uint8(c.esp) != uint8(c.card) {
			t.Errorf("esp reason %s is %d, the card's enum says %d", c.esp, c.esp, c.card)
		}
	}
}

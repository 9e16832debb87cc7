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
}

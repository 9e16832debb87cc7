package config

import (
	"errors"
	"testing"
)

// TestDataplaneMultiBuffer: the multi-buffer, protected-side XDP mode and
// checksum completion knobs parse, default (off, xdp_mode, on), and refuse
// a mode that does not exist.
func TestDataplaneMultiBuffer(t *testing.T) {
	sas := "\nsas:\n  - " + okSA + "\n"
	c, err := Parse("d.yaml", []byte(sas))
	if err != nil {
		t.Fatal(err)
	}
	if dp := c.Dataplane; dp.MultiBuffer || dp.ProtectedXDPMode != "" || !dp.CompletesChecksums() {
		t.Fatalf("defaults: %+v", dp)
	}
	c, err = Parse("d.yaml", []byte("dataplane: {multi_buffer: true, protected_xdp_mode: generic, checksum_completion: false}"+sas))
	if err != nil {
		t.Fatal(err)
	}
	if dp := c.Dataplane; !dp.MultiBuffer || dp.ProtectedXDPMode != XDPGeneric || dp.CompletesChecksums() || dp.XDPMode != XDPAuto {
		t.Fatalf("parsed: %+v", dp)
	}
	c, err = Parse("d.yaml", []byte("dataplane: {checksum_completion: true}"+sas))
	if err != nil || !c.Dataplane.CompletesChecksums() {
		t.Fatalf("checksum_completion: true: %v", err)
	}
	if _, err := Parse("d.yaml", []byte("dataplane: {protected_xdp_mode: offload}"+sas)); !errors.Is(err, ErrInvalid) {
		t.Fatalf("protected_xdp_mode: offload = %v, want ErrInvalid", err)
	}
	for y, want := range map[string]MSSClamp{"auto": MSSClampAuto, "1360": 1360, "0": 0} {
		c, err := Parse("d.yaml", []byte("dataplane: {mss_clamp: "+y+"}"+sas))
		if err != nil {
			t.Errorf("mss_clamp: %s: %v", y, err)
		} else if c.Dataplane.MSSClamp != want {
			t.Errorf("mss_clamp: %s = %d, want %d", y, c.Dataplane.MSSClamp, want)
		}
	}
	for _, y := range []string{"10", "70000", "-1", "small"} {
		if _, err := Parse("d.yaml", []byte("dataplane: {mss_clamp: "+y+"}"+sas)); !errors.Is(err, ErrInvalid) {
			t.Errorf("mss_clamp: %s = %v, want ErrInvalid", y, err)
		}
	}
}

// TestDataplaneMinReplayWindow: min_replay_window defaults to auto, takes auto, 0 and a window up to
// esp.MaxReplayWindow, and refuses anything else.
func TestDataplaneMinReplayWindow(t *testing.T) {
	sas := "\nsas:\n  - " + okSA + "\n"
	c, err := Parse("d.yaml", []byte(sas))
	if err != nil {
		t.Fatal(err)
	}
	if n, auto := c.Dataplane.ReplayWindowFloor(); !auto || n != 0 {
		t.Errorf("default: %d, auto %v; want auto", n, auto)
	}
	for y, want := range map[string]struct {
		n    uint32
		auto bool
	}{"auto": {0, true}, "0": {0, false}, "4096": {4096, false}, "65536": {65536, false}} {
		c, err := Parse("d.yaml", []byte("dataplane: {min_replay_window: "+y+"}"+sas))
		if err != nil {
			t.Errorf("min_replay_window: %s: %v", y, err)
			continue
		}
		if n, auto := c.Dataplane.ReplayWindowFloor(); n != want.n || auto != want.auto {
			t.Errorf("min_replay_window: %s = %d, auto %v; want %d, %v", y, n, auto, want.n, want.auto)
		}
	}
	for _, y := range []string{"-1", "65537", "big", "[1]"} {
		if _, err := Parse("d.yaml", []byte("dataplane: {min_replay_window: "+y+"}"+sas)); !errors.Is(err, ErrInvalid) {
			t.Errorf("min_replay_window: %s = %v, want ErrInvalid", y, err)
		}
	}
}

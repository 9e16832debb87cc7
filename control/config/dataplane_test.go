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

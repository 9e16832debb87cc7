package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/xdpsec/xdpsec/control/api"
)

func TestStats(t *testing.T) {
	d := startDaemon(t)
	d.card.AddGlobal("OutNoStates", 7)
	d.card.AddGlobal("InNoPols", 2)
	out := d.ok(t, "stats")
	for _, want := range []string{"OutNoStates", " 7\n", "InNoPols", "sas 1 (mature 1)  policies 2", "offloaded 2", "engine passes"} {
		if !strings.Contains(out, want) {
			t.Errorf("stats lacks %q:\n%s", want, out)
		}
	}
	var st api.Stats
	if err := json.Unmarshal([]byte(d.ok(t, "stats", "-o", "json")), &st); err != nil {
		t.Fatal(err)
	}
	if st.Card["OutNoStates"] != 7 || st.SAs != 1 || st.Policies != 2 || st.Engine.SAInstalls != 2 {
		t.Fatalf("stats json: %+v", st)
	}
	d.fails(t, exitUsage, `xdpsec stats takes no arguments, got "extra"`, "stats", "extra")
}

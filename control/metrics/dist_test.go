package metrics

import (
	"encoding/json"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v3"

	"github.com/xdpsec/xdpsec/control/offload"
	"github.com/xdpsec/xdpsec/control/sadb"
	"github.com/xdpsec/xdpsec/internal/testutil"
)

// The shipped Grafana dashboard and Prometheus alert rules (dist/) must use what the collector exports:
// every metric name, every label name, and the label values this package fixes (drop reasons, verdicts,
// expiry kinds, …). A renamed metric or a mistyped reason would otherwise give a panel without data and
// an alert that never fires.

const (
	dashboardFile = "../../dist/grafana/xdpsec.json"
	alertsFile    = "../../dist/prometheus/xdpsec-alerts.yml"
	alertTests    = "../../dist/prometheus/xdpsec-alerts_test.yml"
)

// exported is every metric the collector describes, with its label names.
func exported(t *testing.T) map[string][]string {
	t.Helper()
	ch := make(chan *prometheus.Desc, 64)
	c := newCollector(t, newFake())
	go func() { c.Describe(ch); close(ch) }()
	re := regexp.MustCompile(`fqName: "([^"]+)".*variableLabels: \{([^}]*)\}`)
	out := map[string][]string{}
	for d := range ch {
		m := re.FindStringSubmatch(d.String())
		if m == nil {
			t.Fatalf("cannot read %s", d)
		}
		out[m[1]] = strings.FieldsFunc(m[2], func(r rune) bool { return r == ',' })
	}
	return out
}

// namesOf are the global counters of one kind.
func namesOf(k kind) []string {
	var out []string
	for n, kk := range counterKinds {
		if kk == k {
			out = append(out, n)
		}
	}
	return out
}

// labelValues are the values a label of a metric can take, where this package fixes them.
func labelValues() map[string]map[string][]string {
	var limits []string
	for _, l := range expiryLimits {
		limits = append(limits, string(l))
	}
	var ops []string
	for op := range engineOps(offload.Stats{}) {
		ops = append(ops, op)
	}
	return map[string]map[string][]string{
		"xdpsec_drops_total":              {"reason": namesOf(kindDrop)},
		"xdpsec_card_verdicts_total":      {"verdict": namesOf(kindVerdict)},
		"xdpsec_card_events_total":        {"event": namesOf(kindCardEvent)},
		"xdpsec_worker_packets_total":     {"counter": namesOf(kindWorkerPackets)},
		"xdpsec_worker_operations_total":  {"counter": namesOf(kindWorkerOp)},
		"xdpsec_sa_expiries_total":        {"kind": {"soft", "hard"}, "limit": append(limits, "other")},
		"xdpsec_offload_operations_total": {"op": ops},
		"xdpsec_events_total":             {"kind": {"published", "dropped"}},
		"xdpsec_sa_state":                 {"state": {sadb.StateMature.String(), sadb.StateDying.String()}},
		"xdpsec_sa_offload": {"status": {string(offload.StatusPending), string(offload.StatusOffloaded),
			string(offload.StatusRefused)}},
	}
}

var (
	reSelector = regexp.MustCompile(`\b(xdpsec_[a-z0-9_]+)(\{[^}]*\})?`)
	reMatcher  = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"([^"]*)"`)
	reGrouping = regexp.MustCompile(`\b(?:by|without)\s*\(([^)]*)\)`)
)

// targetLabels are added by Prometheus when it scrapes, not by the collector.
var targetLabels = []string{"instance", "job"}

// checkExpr checks one PromQL expression against what the collector exports.
func checkExpr(t *testing.T, where, expr string, metrics map[string][]string) {
	t.Helper()
	sels := reSelector.FindAllStringSubmatch(expr, -1)
	if len(sels) == 0 {
		t.Errorf("%s: %q uses no xdpsec metric", where, expr)
		return
	}
	values := labelValues()
	var labelsInExpr []string
	for _, s := range sels {
		name := s[1]
		labels, ok := metrics[name]
		if !ok {
			t.Errorf("%s: %s is not a metric the collector exports", where, name)
			continue
		}
		labelsInExpr = append(labelsInExpr, labels...)
		for _, m := range reMatcher.FindAllStringSubmatch(s[2], -1) {
			label, op, val := m[1], m[2], m[3]
			if slices.Contains(targetLabels, label) {
				continue
			}
			if !slices.Contains(labels, label) {
				t.Errorf("%s: %s has no label %q", where, name, label)
				continue
			}
			allowed, fixed := values[name][label]
			if !fixed {
				continue
			}
			alts := []string{val}
			if op == "=~" || op == "!~" {
				alts = strings.Split(val, "|")
			}
			for _, v := range alts {
				if !slices.Contains(allowed, v) {
					t.Errorf("%s: %s{%s%s%q}: %q is not a value of %s (%v)", where, name, label, op, val, v, label, allowed)
				}
			}
		}
	}
	for _, g := range reGrouping.FindAllStringSubmatch(expr, -1) {
		for _, l := range strings.Split(g[1], ",") {
			l = strings.TrimSpace(l)
			if l != "" && !slices.Contains(labelsInExpr, l) && !slices.Contains(targetLabels, l) {
				t.Errorf("%s: grouping by %q, which no metric of %q has", where, l, expr)
			}
		}
	}
}

// The dashboard's panels and variables query only what the collector exports.
func TestDashboardUsesExportedMetrics(t *testing.T) {
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		UID        string `json:"uid"`
		Panels     []dashPanel
		Templating struct {
			List []struct {
				Name       string `json:"name"`
				Definition string `json:"definition"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	metrics := exported(t)
	exprs, ids := 0, map[int]bool{}
	var walkPanels func([]dashPanel)
	walkPanels = func(ps []dashPanel) {
		for _, p := range ps {
			if ids[p.ID] {
				t.Errorf("panel id %d twice", p.ID)
			}
			ids[p.ID] = true
			if p.Type != "row" && (p.Datasource.UID != "${datasource}" || len(p.Targets) == 0 || p.Description == "") {
				t.Errorf("panel %q: data source %q, %d queries, description %q", p.Title, p.Datasource.UID, len(p.Targets), p.Description)
			}
			for _, tg := range p.Targets {
				checkExpr(t, "panel "+p.Title, tg.Expr, metrics)
				exprs++
			}
			walkPanels(p.Panels)
		}
	}
	walkPanels(dash.Panels)
	for _, v := range dash.Templating.List {
		if v.Definition != "" {
			checkExpr(t, "variable "+v.Name, v.Definition, metrics)
		}
	}
	if exprs < 15 || dash.UID == "" {
		t.Fatalf("the dashboard has %d queries and uid %q", exprs, dash.UID)
	}
}

type dashPanel struct {
	ID          int    `json:"id"`
	Type        string `json:"type"`
	Title       string `json:"title"`
	Description string `json:"description"`
	Datasource  struct {
		UID string `json:"uid"`
	} `json:"datasource"`
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
	Panels []dashPanel `json:"panels"`
}

// The alert rules use only what the collector exports and cover what docs/monitoring.md promises; the
// series their unit tests feed are exported ones too. promtool, when installed, checks and unit-tests
// them.
func TestAlertRules(t *testing.T) {
	metrics := exported(t)
	b, err := os.ReadFile(alertsFile)
	if err != nil {
		t.Fatal(err)
	}
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert  string            `yaml:"alert"`
				Expr   string            `yaml:"expr"`
				Labels map[string]string `yaml:"labels"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(b, &rules); err != nil {
		t.Fatalf("%s: %v", alertsFile, err)
	}
	var alerts []string
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			alerts = append(alerts, r.Alert)
			checkExpr(t, "alert "+r.Alert, r.Expr, metrics)
			if !slices.Contains([]string{"info", "warning", "critical"}, r.Labels["severity"]) {
				t.Errorf("alert %s: severity %q", r.Alert, r.Labels["severity"])
			}
		}
	}
	// Issue 11: integrity and replay failures, soft and hard expiries, offload nacks, drops for a full
	// ring, no next hop.
	for _, want := range []string{"XdpsecIntegrityFailures", "XdpsecReplayFailures", "XdpsecSASoftExpired",
		"XdpsecSAHardExpired", "XdpsecOffloadNacks", "XdpsecTxRingFull", "XdpsecAcquireRingFull", "XdpsecNoNextHop"} {
		if !slices.Contains(alerts, want) {
			t.Errorf("no alert %s", want)
		}
	}

	tb, err := os.ReadFile(alertTests)
	if err != nil {
		t.Fatal(err)
	}
	var tests struct {
		Tests []struct {
			InputSeries []struct {
				Series string `yaml:"series"`
			} `yaml:"input_series"`
		} `yaml:"tests"`
	}
	if err := yaml.Unmarshal(tb, &tests); err != nil {
		t.Fatalf("%s: %v", alertTests, err)
	}
	for _, tc := range tests.Tests {
		for _, s := range tc.InputSeries {
			checkExpr(t, "alert test series", s.Series, metrics)
		}
	}

	promtool := testutil.RequireTools(t, "promtool")[0]
	for _, args := range [][]string{{"check", "rules", "xdpsec-alerts.yml"}, {"test", "rules", "xdpsec-alerts_test.yml"}} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = "../../dist/prometheus"
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

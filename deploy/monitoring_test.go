package deploy

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v3"

	"github.com/claimsvc/claimsvc/internal/metrics"
)

// exported lists the metric names claimsvc serves: every collector of
// metrics.Metrics, described, plus the histogram series and the Go and
// process collectors' names that the dashboard uses.
func exported(t *testing.T) []string {
	t.Helper()
	m := metrics.New()
	var names []string
	fqName := regexp.MustCompile(`fqName: "([^"]+)"`)
	var walk func(v reflect.Value)
	walk = func(v reflect.Value) { // the collectors of a struct, and of the structs in it
		for i := range v.NumField() {
			f := v.Field(i)
			if !f.CanInterface() || v.Type().Field(i).Name == "Registry" {
				continue
			}
			if f.Kind() == reflect.Struct {
				walk(f)
				continue
			}
			c, ok := f.Interface().(prometheus.Collector)
			if !ok {
				continue
			}
			ch := make(chan *prometheus.Desc, 16)
			go func() { c.Describe(ch); close(ch) }()
			for d := range ch {
				if mm := fqName.FindStringSubmatch(d.String()); mm != nil {
					names = append(names, mm[1])
				}
			}
		}
	}
	walk(reflect.ValueOf(m).Elem())
	if len(names) < 8 {
		t.Fatalf("found only %v in internal/metrics", names)
	}
	for _, n := range names {
		names = append(names, n+"_bucket", n+"_count", n+"_sum")
	}
	return append(names, "up", "go_goroutines", "process_cpu_seconds_total", "process_resident_memory_bytes")
}

// metricNames returns the metric names a PromQL expression selects: names
// followed by { or [ or standing alone, minus functions, keywords and labels.
func metricNames(expr string) []string {
	// Drop label matchers, strings and ranges first: they hold label values and durations, not names.
	expr = regexp.MustCompile(`\{[^}]*\}|"[^"]*"|\[[^\]]*\]`).ReplaceAllString(expr, "{}")
	expr = regexp.MustCompile(`\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`).ReplaceAllString(expr, "")
	var out []string
	for _, m := range regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*(\s*\()?`).FindAllString(expr, -1) {
		if strings.HasSuffix(m, "(") || slices.Contains([]string{"and", "or", "unless", "bool", "offset"}, m) {
			continue // a function call or an operator
		}
		if regexp.MustCompile(`^[0-9]`).MatchString(m) {
			continue
		}
		out = append(out, m)
	}
	return out
}

func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		need(t, "promtool is missing (Debian: apt-get install prometheus; scripts/deps.sh installs it)")
	}
	return p
}

type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Record      string            `yaml:"record"`
			Expr        string            `yaml:"expr"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

// TestAlertRules: promtool accepts the rules and their unit tests pass;
// every alert has a unit test, a severity, a runbook entry in
// docs/operations.md, and uses only metrics claimsvc exports.
func TestAlertRules(t *testing.T) {
	pt := promtool(t)
	for _, args := range [][]string{{"check", "rules", "prometheus/alerts.yml"}, {"test", "rules", "prometheus/alerts_test.yml"}} {
		out, err := exec.Command(pt, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		t.Logf("promtool %s: %s", strings.Join(args, " "), strings.Join(strings.Fields(string(out)), " "))
	}

	var rules ruleFile
	readYAML(t, "prometheus/alerts.yml", &rules)
	var tests struct {
		Tests []struct {
			AlertRuleTest []struct {
				Alertname string `yaml:"alertname"`
				ExpAlerts []any  `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
		} `yaml:"tests"`
	}
	readYAML(t, "prometheus/alerts_test.yml", &tests)
	fires, quiet := map[string]bool{}, map[string]bool{}
	for _, tc := range tests.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname] = true
			} else {
				quiet[a.Alertname] = true
			}
		}
	}
	ops, err := os.ReadFile("../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	known := exported(t)
	alerts := 0
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			alerts++
			if !fires[r.Alert] || !quiet[r.Alert] {
				t.Errorf("%s: alerts_test.yml must show it firing and (before its for, or when healthy) not firing", r.Alert)
			}
			if s := r.Labels["severity"]; s != "warning" && s != "critical" {
				t.Errorf("%s: severity %q, want warning or critical", r.Alert, s)
			}
			if r.Annotations["runbook"] != "docs/operations.md, Alerts: "+r.Alert || !strings.Contains(string(ops), "### "+r.Alert) {
				t.Errorf("%s: needs runbook \"docs/operations.md, Alerts: %s\" and a heading ### %s there", r.Alert, r.Alert, r.Alert)
			}
			for _, n := range metricNames(r.Expr) {
				if !slices.Contains(known, n) {
					t.Errorf("%s uses %s, which claimsvc does not export", r.Alert, n)
				}
			}
		}
	}
	for _, want := range []string{"ClaimsvcBacklogGrowing", "ClaimsvcOldestPendingTooOld", "ClaimsvcDeliveriesFailing", "ClaimsvcDatabaseDown"} {
		if !fires[want] {
			t.Errorf("%s is missing or untested", want)
		}
	}
	t.Logf("%d alerts, each tested firing and quiet", alerts)
}

// TestDashboard: the Grafana dashboard is a dashboard on claimsvc's own
// metrics: every query parses (promtool checks it as a recording rule) and
// names only exported metrics, and the panels cover intake, deliveries by
// outcome, the backlog and its age, ThingsBoard REST errors and HTTP latency.
func TestDashboard(t *testing.T) {
	b, err := os.ReadFile("grafana/claimsvc.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		UID, Title    string
		SchemaVersion int
		Templating    struct {
			List []struct{ Name string }
		}
		Panels []struct {
			ID      int
			Type    string
			Title   string
			GridPos struct{ H, W, X, Y int }
			Targets []struct{ Expr, RefID string }
			Panels  []any
		}
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("grafana/claimsvc.json: %v", err)
	}
	if dash.UID == "" || dash.Title == "" || dash.SchemaVersion < 30 {
		t.Errorf("uid %q, title %q, schemaVersion %d", dash.UID, dash.Title, dash.SchemaVersion)
	}
	var vars []string
	for _, v := range dash.Templating.List {
		vars = append(vars, v.Name)
	}
	for _, want := range []string{"datasource", "namespace", "job"} {
		if !slices.Contains(vars, want) {
			t.Errorf("no $%s variable", want)
		}
	}

	known := exported(t)
	var all strings.Builder
	type rule struct {
		Record string `yaml:"record"`
		Expr   string `yaml:"expr"`
	}
	var recs []rule
	ids := map[int]bool{}
	for _, p := range dash.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d used twice", p.ID)
		}
		ids[p.ID] = true
		if p.GridPos.W == 0 || p.GridPos.X+p.GridPos.W > 24 {
			t.Errorf("panel %q: gridPos %+v", p.Title, p.GridPos)
		}
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			all.WriteString(tg.Expr + "\n")
			for _, n := range metricNames(tg.Expr) {
				if !slices.Contains(known, n) {
					t.Errorf("panel %q uses %s, which claimsvc does not export", p.Title, n)
				}
			}
			expr := strings.NewReplacer("$__rate_interval", "5m", "$namespace", ".*", "$job", ".*").Replace(tg.Expr)
			recs = append(recs, rule{Record: fmt.Sprintf("dashboard:panel%d:%s", p.ID, strings.ToLower(tg.RefID)), Expr: expr})
		}
	}
	for topic, want := range map[string]string{
		"intake":                  "claimsvc_claims_accepted_total",
		"deliveries by outcome":   "sum by (outcome) (rate(claimsvc_deliveries_total",
		"backlog":                 "claimsvc_pending_claims",
		"backlog age":             "claimsvc_oldest_pending_age_seconds",
		"ThingsBoard REST errors": "claimsvc_tb_rest_requests_total",
		"HTTP latency":            "claimsvc_http_request_duration_seconds_bucket",
	} {
		if !strings.Contains(all.String(), want) {
			t.Errorf("no panel on %s (%s)", topic, want)
		}
	}

	// promtool parses every query.
	pt := promtool(t)
	f := filepath.Join(t.TempDir(), "dashboard-queries.yml")
	out, err := yaml.Marshal(map[string]any{"groups": []any{map[string]any{"name": "dashboard", "rules": recs}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f, out, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(pt, "check", "rules", f).CombinedOutput(); err != nil {
		t.Fatalf("promtool rejects a dashboard query: %v\n%s", err, out)
	}
	t.Logf("%d queries in %d panels parse", len(recs), len(dash.Panels))
}

func TestMetricNames(t *testing.T) {
	got := metricNames(`sum by (outcome) (rate(claimsvc_deliveries_total{job=~"a|b", outcome="retry"}[5m])) / on(job) max(up) > 0.5 and histogram_quantile(0.9, x_bucket)`)
	if want := []string{"claimsvc_deliveries_total", "up", "x_bucket"}; !slices.Equal(got, want) {
		t.Errorf("metricNames: %v, want %v", got, want)
	}
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

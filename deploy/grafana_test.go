package deploy

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"sigs.k8s.io/yaml"
)

const (
	dashboardPath = "grafana/webank_sign.json"
	rulesPath     = "prometheus/webank_sign.rules.yml"
	rulesTestPath = "prometheus/webank_sign.rules_test.yml"
)

// metricName matches the module's metric names in a query. Every metric
// the dashboard and the rules use is one of the module's.
var metricName = regexp.MustCompile(`\bcaddy_webank_sign_[a-z_]+\b`)

// dashboardQueries returns every query of the dashboard: the panels'
// expressions and the variables' queries.
func dashboardQueries(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(dashboardPath)
	if err != nil {
		t.Fatal(err)
	}
	var dash any
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("%s: %v", dashboardPath, err)
	}
	var queries []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if s, ok := x.(string); ok && (k == "expr" || k == "query" || k == "definition") && metricName.MatchString(s) {
					queries = append(queries, s)
				}
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(dash)
	if len(queries) == 0 {
		t.Fatalf("%s holds no query", dashboardPath)
	}
	return queries
}

// panelExprs returns the dashboard panels' PromQL expressions, with
// Grafana's interval variables given a value so that promtool can parse
// them.
func panelExprs(t *testing.T) []string {
	t.Helper()
	var exprs []string
	for _, q := range dashboardQueries(t) {
		if strings.HasPrefix(q, "label_values(") { // a Grafana function, not PromQL
			continue
		}
		exprs = append(exprs, strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$__range", "1h").Replace(q))
	}
	return exprs
}

// rulesFile is a Prometheus rules file, decoded strictly.
type rulesFile struct {
	Groups []struct {
		Name  string `json:"name"`
		Rules []struct {
			Alert       string            `json:"alert,omitempty"`
			Record      string            `json:"record,omitempty"`
			Expr        string            `json:"expr"`
			For         string            `json:"for,omitempty"`
			Labels      map[string]string `json:"labels,omitempty"`
			Annotations map[string]string `json:"annotations,omitempty"`
		} `json:"rules"`
	} `json:"groups"`
}

func ruleExprs(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(rulesPath)
	if err != nil {
		t.Fatal(err)
	}
	var rf rulesFile
	if err := yaml.UnmarshalStrict(b, &rf); err != nil {
		t.Fatalf("%s: %v", rulesPath, err)
	}
	var exprs []string
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			exprs = append(exprs, r.Expr)
		}
	}
	return exprs
}

// checkMetricsUsed checks a scrape of a running sidecar's /metrics against
// the dashboard and the rules: every metric they use is exported (a
// histogram through its _bucket, _sum and _count series), and every one of
// the module's metrics is on the dashboard.
func checkMetricsUsed(t *testing.T, scrape string) {
	t.Helper()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(scrape))
	if err != nil {
		t.Fatalf("parsing /metrics: %v", err)
	}

	used := map[string][]string{} // metric -> where
	onDashboard := map[string]bool{}
	for _, q := range dashboardQueries(t) {
		for _, m := range metricName.FindAllString(q, -1) {
			used[m] = append(used[m], dashboardPath)
			onDashboard[familyOf(m, families)] = true
		}
	}
	for _, q := range ruleExprs(t) {
		for _, m := range metricName.FindAllString(q, -1) {
			used[m] = append(used[m], rulesPath)
		}
	}

	for m, where := range used {
		f := familyOf(m, families)
		switch {
		case families[f] == nil:
			t.Errorf("%s (used in %s) is not exported", m, strings.Join(slices.Compact(where), ", "))
		case families[f].GetType() == dto.MetricType_HISTOGRAM && m == f:
			t.Errorf("%s (used in %s) is a histogram: query its _bucket, _sum or _count", m, strings.Join(slices.Compact(where), ", "))
		case len(families[f].Metric) == 0:
			t.Errorf("%s is exported with no series", m)
		}
	}
	for name := range families {
		if strings.HasPrefix(name, "caddy_webank_sign_") && !onDashboard[name] {
			t.Errorf("%s is exported but not on the dashboard", name)
		}
	}
	if len(used) == 0 {
		t.Fatal("the dashboard and rules use no metric: this check proves nothing")
	}
}

// familyOf returns the family a series name belongs to: itself, or the
// histogram it is a _bucket, _sum or _count of.
func familyOf(name string, families map[string]*dto.MetricFamily) string {
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		base, ok := strings.CutSuffix(name, suffix)
		if f := families[base]; ok && f != nil && f.GetType() == dto.MetricType_HISTOGRAM {
			return base
		}
	}
	return name
}

// TestPrometheusRules checks the rules file and runs its unit tests with
// promtool, and has promtool parse the dashboard's queries (as recording
// rules of a scratch file), which Grafana would only show as "No data".
func TestPrometheusRules(t *testing.T) {
	promtool := tool(t, "promtool")
	env := []string{"PATH=/usr/bin:/bin"}
	for _, args := range [][]string{
		{"check", "rules", rulesPath},
		{"test", "rules", rulesTestPath},
	} {
		if out, err := run(t, append([]string{promtool}, args...), env); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}

	var scratch strings.Builder
	scratch.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	for i, expr := range panelExprs(t) {
		q, _ := json.Marshal(expr) // a JSON string is a YAML string
		fmt.Fprintf(&scratch, "      - record: dashboard:query_%d\n        expr: %s\n", i+1, q)
	}
	path := filepath.Join(t.TempDir(), "dashboard.rules.yml")
	writeFile(t, path, scratch.String(), 0o644)
	if out, err := run(t, []string{promtool, "check", "rules", path}, env); err != nil {
		t.Errorf("promtool check rules of the dashboard's queries: %v\n%s", err, out)
	}
}

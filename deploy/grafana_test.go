package deploy_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/baton-ci/baton/shared/series"
)

// dashboard is the part of a Grafana dashboard the test reads.
type dashboard struct {
	Title  string `json:"title"`
	UID    string `json:"uid"`
	Inputs []struct {
		Name     string `json:"name"`
		PluginID string `json:"pluginId"`
	} `json:"__inputs"`
	Panels []panel `json:"panels"`
}

type panel struct {
	ID         int    `json:"id"`
	Type       string `json:"type"`
	Title      string `json:"title"`
	Datasource *struct {
		UID string `json:"uid"`
	} `json:"datasource"`
	GridPos *struct{ X, Y, W, H int } `json:"gridPos"`
	Targets []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // a collapsed row's
}

var (
	promStrings   = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
	promMatchers  = regexp.MustCompile(`\{[^}]*\}`)
	promRanges    = regexp.MustCompile(`\[[^\]]*\]`)
	promOffsets   = regexp.MustCompile(`\boffset\s+-?[0-9A-Za-z_${}]+`)
	promGrouping  = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	promIdent     = regexp.MustCompile(`[A-Za-z_:][A-Za-z0-9_:]*`)
	promNumber    = regexp.MustCompile(`\b\d+(?:\.\d+)?(?:e[+-]?\d+)?\b`)
	promVariables = regexp.MustCompile(`\$\{?[A-Za-z_][A-Za-z0-9_]*\}?`)
	promKeywords  = []string{"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left", "group_right", "inf", "nan"}
)

// metricNames returns the metric names a PromQL expression selects: what
// is left once strings, label matchers, ranges, groupings, variables,
// numbers, keywords and function calls are taken out.
func metricNames(expr string) []string {
	e := promStrings.ReplaceAllString(expr, " ")
	e = promMatchers.ReplaceAllString(e, " ")
	e = promRanges.ReplaceAllString(e, " ")
	e = promOffsets.ReplaceAllString(e, " ")
	e = promGrouping.ReplaceAllString(e, " ")
	e = promVariables.ReplaceAllString(e, " ")
	e = promNumber.ReplaceAllString(e, " ")
	var names []string
	for _, loc := range promIdent.FindAllStringIndex(e, -1) {
		id := e[loc[0]:loc[1]]
		if slices.Contains(promKeywords, strings.ToLower(id)) {
			continue
		}
		if rest := strings.TrimLeft(e[loc[1]:], " \t\n"); strings.HasPrefix(rest, "(") {
			continue // a function
		}
		names = append(names, id)
	}
	return names
}

func TestMetricNamesOfPromQL(t *testing.T) {
	t.Parallel()
	for expr, want := range map[string][]string{
		`histogram_quantile(0.99, sum by (le) (rate(baton_dispatch_latency_seconds_bucket[$__rate_interval])))`: {"baton_dispatch_latency_seconds_bucket"},
		`max by (state) (baton_agents{state!="deleted"}) / on (state) group_left sum(baton_agent_typo)`:         {"baton_agents", "baton_agent_typo"},
		`go_goroutines{job=~"$server_job|$agent_job"} > 1e3 and process_cpu_seconds_total offset 5m`:            {"go_goroutines", "process_cpu_seconds_total"},
	} {
		if got := metricNames(expr); !slices.Equal(got, want) {
			t.Errorf("metricNames(%s) = %v, want %v", expr, got, want)
		}
	}
}

// The Grafana dashboard parses, every panel queries the Prometheus input,
// every PromQL expression names only series the server or the agent
// export (shared/series, which the end-to-end scrape checks), and every
// Baton series but the build info is on it.
func TestGrafanaDashboard(t *testing.T) {
	t.Parallel()
	path := filepath.Join(repoRoot, "deploy/grafana/baton.json")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	var d dashboard
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if d.Title == "" || d.UID == "" || len(d.Inputs) != 1 || d.Inputs[0].Name != "DS_PROMETHEUS" || d.Inputs[0].PluginID != "prometheus" {
		t.Fatalf("dashboard title %q uid %q inputs %+v: want a title, a uid and one Prometheus input DS_PROMETHEUS", d.Title, d.UID, d.Inputs)
	}
	known := map[string]bool{}
	for _, n := range series.Names(append(series.Server(), series.Agent()...)) {
		known[n] = true
	}
	used := map[string]bool{}
	ids := map[int]bool{}
	var walk func([]panel)
	walk = func(panels []panel) {
		for _, p := range panels {
			if ids[p.ID] {
				t.Errorf("panel id %d is used twice", p.ID)
			}
			ids[p.ID] = true
			if p.GridPos == nil || p.GridPos.W <= 0 || p.GridPos.H <= 0 || p.GridPos.X+p.GridPos.W > 24 {
				t.Errorf("panel %q: grid position %+v", p.Title, p.GridPos)
			}
			walk(p.Panels)
			if p.Type == "row" {
				continue
			}
			if p.Datasource == nil || p.Datasource.UID != "${DS_PROMETHEUS}" {
				t.Errorf("panel %q does not query ${DS_PROMETHEUS}", p.Title)
			}
			if len(p.Targets) == 0 {
				t.Errorf("panel %q has no query", p.Title)
			}
			for _, tg := range p.Targets {
				names := metricNames(tg.Expr)
				if len(names) == 0 {
					t.Errorf("panel %q query %s: no metric", p.Title, tg.RefID)
				}
				for _, n := range names {
					if !known[n] {
						t.Errorf("panel %q query %s: %s is not a series Baton exports (shared/series): %s", p.Title, tg.RefID, n, tg.Expr)
					}
					used[n] = true
				}
			}
		}
	}
	walk(d.Panels)
	for _, s := range append(series.Server(), series.Agent()...) {
		if !strings.HasPrefix(s.Name, "baton_") || strings.HasSuffix(s.Name, "_build_info") {
			continue
		}
		found := false
		for _, n := range series.Names([]series.Series{s}) {
			found = found || used[n]
		}
		if !found {
			t.Errorf("the dashboard shows nothing of %s", s.Name)
		}
	}
}

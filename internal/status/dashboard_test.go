package status

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// dashboard is the Grafana dashboard shipped for operators.
var dashboard = filepath.Join("..", "..", "examples", "grafana", "virtbgp-dashboard.json")

// TestDashboard checks the Grafana dashboard: valid JSON of a dashboard
// (title, uid, panels with unique ids and grid positions, each with a
// query), every query valid PromQL (promtool checks them as recording
// rules, the dashboard's variables filled in), and naming only metrics
// virtbgp exports.
func TestDashboard(t *testing.T) {
	data, err := os.ReadFile(dashboard)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Title, UID    string
		SchemaVersion int `json:"schemaVersion"`
		Templating    struct{ List []struct{ Name string } }
		Panels        []struct {
			ID      int
			Title   string
			Type    string
			GridPos struct{ X, Y, W, H int } `json:"gridPos"`
			Targets []struct {
				RefID string `json:"refId"`
				Expr  string
			}
		}
	}
	dec := json.NewDecoder(strings.NewReader(string(data)))
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("%s: %v", dashboard, err)
	}
	if d.Title == "" || d.UID == "" || d.SchemaVersion == 0 || len(d.Panels) == 0 {
		t.Fatalf("%s: title %q, uid %q, schemaVersion %d, %d panels: not a dashboard", dashboard, d.Title, d.UID, d.SchemaVersion, len(d.Panels))
	}
	var vars []string
	for _, v := range d.Templating.List {
		vars = append(vars, v.Name)
	}
	exported := exportedMetrics(t)
	ids := map[int]bool{}
	var rules strings.Builder
	rules.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	name := regexp.MustCompile(`\bvirtbgp_[a-z0-9_]+`)
	variable := regexp.MustCompile(`\$\{?([a-z_]+)\}?`)
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel %q: id %d used twice", p.Title, p.ID)
		}
		ids[p.ID] = true
		if p.GridPos.W <= 0 || p.GridPos.H <= 0 || p.GridPos.X+p.GridPos.W > 24 {
			t.Errorf("panel %q: grid position %+v outside the 24-column grid", p.Title, p.GridPos)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, q := range p.Targets {
			for _, m := range variable.FindAllStringSubmatch(q.Expr, -1) {
				if !slices.Contains(vars, m[1]) {
					t.Errorf("panel %q: query uses $%s, which the dashboard does not define", p.Title, m[1])
				}
			}
			for _, n := range name.FindAllString(q.Expr, -1) {
				base := strings.TrimSuffix(n, "_bucket")
				if !slices.Contains(exported, base) {
					t.Errorf("panel %q: query names %s, which virtbgp does not export", p.Title, n)
				}
			}
			expr := strings.NewReplacer(`$job`, "fleet1", `$instance`, ".*").Replace(q.Expr)
			fmt.Fprintf(&rules, "      - record: panel_%d_%s\n        expr: %q\n", p.ID, q.RefID, expr)
		}
	}
	file := filepath.Join(t.TempDir(), "dashboard-queries.yaml")
	if err := os.WriteFile(file, []byte(rules.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(promtool(t), "check", "rules", file).CombinedOutput(); err != nil {
		t.Errorf("the dashboard's queries are not valid PromQL: %v\n%s", err, out)
	}
}

// exportedMetrics returns the names of the metrics virtbgp exports.
func exportedMetrics(t *testing.T) []string {
	t.Helper()
	m := NewMetrics()
	m.setSource(staticSource(sampleReport()), time.Second, slog.New(slog.DiscardHandler))
	m.ReloadResult(true, time.Now())
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, mf := range mfs {
		names = append(names, mf.GetName())
	}
	return names
}

package status

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// The alert rules shipped for operators, and their promtool unit tests.
var (
	alertRules     = filepath.Join("..", "..", "examples", "prometheus", "virtbgp-alerts.yaml")
	alertRulesTest = filepath.Join("..", "..", "examples", "prometheus", "virtbgp-alerts.test.yaml")
)

// promtool finds promtool; scripts/deps.sh (make deps) installs it into
// /usr/local/bin. Without it the test fails: make test runs it.
func promtool(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("promtool"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/local/bin/promtool"); err == nil {
		return "/usr/local/bin/promtool"
	}
	t.Fatal("promtool not found: scripts/deps.sh (make deps) installs it into /usr/local/bin")
	return ""
}

// TestAlertRules checks the shipped rules with promtool and runs their unit
// tests (fleet mapping digests that differ, an unmapped arrival, a peer
// down, a rejected reload, no routes while domains run, libvirt
// disconnected, reconcile errors, a peer that sends routes).
func TestAlertRules(t *testing.T) {
	bin := promtool(t)
	for _, args := range [][]string{
		{"check", "rules", alertRules},
		{"test", "rules", alertRulesTest},
	} {
		out, err := exec.Command(bin, args...).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "SUCCESS") {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// TestAlertRulesNameRealMetrics: every virtbgp metric the rules and their
// tests name is one virtbgp exports, so that a renamed metric cannot leave
// an alert that never fires behind a green promtool test.
func TestAlertRulesNameRealMetrics(t *testing.T) {
	exported := exportedMetrics(t)
	name := regexp.MustCompile(`\bvirtbgp_[a-z0-9_]+`)
	for _, f := range []string{alertRules, alertRulesTest} {
		text, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		names := name.FindAllString(string(text), -1)
		if len(names) == 0 {
			t.Errorf("%s names no virtbgp metric", f)
		}
		for _, n := range names {
			if !slices.Contains(exported, n) {
				t.Errorf("%s names %s, which virtbgp does not export", f, n)
			}
		}
	}
}

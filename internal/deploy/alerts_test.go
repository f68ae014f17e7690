package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

type alertRules struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

type alertTests struct {
	Tests []struct {
		AlertRuleTest []struct {
			Alertname string           `yaml:"alertname"`
			ExpAlerts []map[string]any `yaml:"exp_alerts"`
		} `yaml:"alert_rule_test"`
	} `yaml:"tests"`
}

// promtool runs Prometheus's promtool (Debian package prometheus; .ci/run installs it).
func promtool(t *testing.T, root string, args ...string) {
	t.Helper()
	bin, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool is needed to check the alert rules (apt-get install prometheus): %v", err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// TestAlertRules checks the alerts the compose stack's Prometheus loads: the configuration and
// rules are valid, each alert fires in its unit test (and stays quiet in the others), names only
// metrics the code exports, has a severity, a summary, a description and a runbook link to a
// heading of docs/runbook.md, and is listed in the runbook's alert table.
func TestAlertRules(t *testing.T) {
	t.Parallel()
	s := setup(t)
	const dir = "deploy/prometheus"
	promtool(t, s.root, "check", "config", dir+"/prometheus.yml")
	promtool(t, s.root, "test", "rules", dir+"/alerts_test.yml")

	_, prom := s.serviceByImage(t, "prom/prometheus")
	if !slices.Contains(prom.Volumes, "./"+dir+"/alerts.yml:/etc/prometheus/alerts.yml:ro") {
		t.Errorf("prometheus volumes %q do not mount %s/alerts.yml beside its configuration", prom.Volumes, dir)
	}
	var cfg struct {
		RuleFiles []string `yaml:"rule_files"`
	}
	decodeYAML(t, filepath.Join(s.root, dir, "prometheus.yml"), &cfg)
	if !slices.Equal(cfg.RuleFiles, []string{"alerts.yml"}) {
		t.Errorf("prometheus.yml rule_files: %q, want [alerts.yml]", cfg.RuleFiles)
	}

	var rules alertRules
	decodeYAML(t, filepath.Join(s.root, dir, "alerts.yml"), &rules)
	var tests alertTests
	decodeYAML(t, filepath.Join(s.root, dir, "alerts_test.yml"), &tests)
	fires := map[string]bool{}
	for _, tg := range tests.Tests {
		for _, at := range tg.AlertRuleTest {
			if len(at.ExpAlerts) > 0 {
				fires[at.Alertname] = true
			}
		}
	}
	exported := exportedMetrics(t, s.root)
	runbook, err := os.ReadFile(filepath.Join(s.root, "docs", "runbook.md"))
	if err != nil {
		t.Fatal(err)
	}
	anchors := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^#+ (.+)$`).FindAllStringSubmatch(string(runbook), -1) {
		anchors[slug(m[1])] = true
	}
	n := 0
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			n++
			if sev := r.Labels["severity"]; sev != "critical" && sev != "warning" {
				t.Errorf("%s: severity %q, want critical or warning", r.Alert, sev)
			}
			for _, a := range []string{"summary", "description", "runbook"} {
				if r.Annotations[a] == "" {
					t.Errorf("%s: no %s annotation", r.Alert, a)
				}
			}
			if link, ok := strings.CutPrefix(r.Annotations["runbook"], "docs/runbook.md#"); !ok || !anchors[link] {
				t.Errorf("%s: runbook %q is not docs/runbook.md#<a heading of the runbook>", r.Alert, r.Annotations["runbook"])
			}
			if !fires[r.Alert] {
				t.Errorf("%s: no test in alerts_test.yml expects it to fire", r.Alert)
			}
			if !strings.Contains(string(runbook), "| `"+r.Alert+"` |") {
				t.Errorf("%s: not in the runbook's alert table", r.Alert)
			}
			for _, name := range unknownMetrics(r.Expr, exported) {
				t.Errorf("%s: %s is not a metric the code exports", r.Alert, name)
			}
		}
	}
	if n < 10 {
		t.Fatalf("found %d alerts in %s/alerts.yml, want every one (at least 10)", n, dir)
	}
}

var metricName = regexp.MustCompile(`\borderpipe_[a-z_]+`)

// unknownMetrics lists the orderpipe metrics expr names that the code does not export (a
// histogram's _bucket, _count and _sum series count as their histogram).
func unknownMetrics(expr string, exported map[string]bool) []string {
	var out []string
	for _, name := range metricName.FindAllString(expr, -1) {
		base := name
		for _, suffix := range []string{"_bucket", "_count", "_sum"} {
			if b, ok := strings.CutSuffix(name, suffix); ok && exported[b] {
				base = b
			}
		}
		if !exported[base] {
			out = append(out, name)
		}
	}
	return out
}

// exportedMetrics are the metric names declared in the Go code (Name: "orderpipe_...").
func exportedMetrics(t *testing.T, root string) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	re := regexp.MustCompile(`Name:\s+"(orderpipe_[a-z_]+)"`)
	err := filepath.WalkDir(filepath.Join(root, "internal"), func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range re.FindAllStringSubmatch(string(b), -1) {
			names[m[1]] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(names) < 20 {
		t.Fatalf("found %d metric names in the code, want all of them", len(names))
	}
	return names
}

// slug is the anchor GitHub gives a Markdown heading.
func slug(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(heading) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9':
			b.WriteRune(r)
		}
	}
	return b.String()
}

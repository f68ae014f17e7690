package orderctl_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/orderpipe/orderpipe/internal/loadgen"
	"github.com/orderpipe/orderpipe/internal/orderctl"
	"github.com/orderpipe/orderpipe/internal/testenv"
)

const tinyScenario = `
name: tiny
seed: 3
catalog:
  hot: [{sku: LG-HOT-1, stock: 5}]
  background: {count: 3, stock: 10}
arrival:
  - {phase: hold, rate: 20, for: 2s}
mix: {hot_share: 0.5, zipf_s: 1.5, max_lines: 1, max_qty: 1}
duplicates: 0.2
retry: {statuses: [429, 503], max: 2, backoff: 100ms}
request_timeout: 30s
`

// orderctl load --seed-data seeds a scenario's catalog into an empty pipeline (the api learns it
// from its catalog refresh), plays it, prints progress and the summary, and writes the outcomes.
func TestLoadCommand(t *testing.T) {
	t.Parallel()
	p := testenv.NewPipeline(t, testenv.PipelineOptions{APIEnv: map[string]string{"CATALOG_REFRESH_INTERVAL": "200ms"}})
	dir := t.TempDir()
	scenario := filepath.Join(dir, "tiny.yaml")
	if err := os.WriteFile(scenario, []byte(tinyScenario), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "outcomes.json")
	env := p.Env(nil)
	var stdout bytes.Buffer
	code := orderctl.Code(orderctl.Run(t.Context(), []string{"load", "--scenario", scenario, "--api", p.API.URL,
		"--token", p.Token, "--seed-data", "--out", out}, func(k string) string { return env[k] }, &stdout))
	if code != 0 {
		t.Fatalf("exit code %d, want 0:\n%s", code, stdout.String())
	}
	for _, want := range []string{"seeded 4 products of scenario tiny", "scenario tiny: 40 buyers over 2s", "CLASS", "accepted orders per second: ", "outcomes written to " + out} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, stdout.String())
		}
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := loadgen.ReadResult(f)
	if err != nil {
		t.Fatal(err)
	}
	first := 0
	for _, o := range res.Outcomes {
		if !o.Duplicate {
			first++
		}
	}
	if first != 40 || res.Count(loadgen.ClassAccepted) == 0 {
		t.Errorf("%d first submissions, %d accepted; want 40 and some accepted", first, res.Count(loadgen.ClassAccepted))
	}
	// The hot SKU had 5 units: never more than 5 accepted units of it.
	hot := map[string]bool{}
	for _, o := range res.Outcomes {
		if o.Class == loadgen.ClassAccepted && o.Lines[0].SKU == "LG-HOT-1" {
			hot[o.OrderID] = true
		}
	}
	if len(hot) > 5 {
		t.Errorf("%d orders accepted for LG-HOT-1, stock 5", len(hot))
	}
}

func TestLoadCommandBadArguments(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(good, []byte(tinyScenario), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte(strings.Replace(tinyScenario, "hot_share: 0.5", "hot_share: 2", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"no scenario", []string{"load", "--token", "t"}, "--scenario is required"},
		{"no token", []string{"load", "--scenario", good}, "--token is required"},
		{"bad api", []string{"load", "--scenario", good, "--token", "t", "--api", "localhost:8080"}, `--api: want http(s)://host:port, got "localhost:8080"`},
		{"missing file", []string{"load", "--scenario", filepath.Join(dir, "none.yaml"), "--token", "t"}, "no such file"},
		{"bad value", []string{"load", "--scenario", bad, "--token", "t"}, "mix.hot_share: want a share in [0,1], got 2"},
		{"extra argument", []string{"load", "extra"}, "unknown command"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			var out bytes.Buffer
			err := orderctl.Run(t.Context(), c.args, func(string) string { return "" }, &out)
			if code := orderctl.Code(err); code != orderctl.ExitUsage || !strings.Contains(err.Error(), c.want) {
				t.Errorf("exit %d, error %v; want %d and %q", code, err, orderctl.ExitUsage, c.want)
			}
		})
	}
}

// The scenario's promotions are created through the api (with a catalog:write key orderctl load
// creates itself under --seed-data) and priced before the load; a second run with the same
// promotion id updates it instead of failing.
func TestLoadCommandCreatesPromotions(t *testing.T) {
	t.Parallel()
	p := testenv.NewPipeline(t, testenv.PipelineOptions{APIEnv: map[string]string{"CATALOG_REFRESH_INTERVAL": "200ms"}})
	dir := t.TempDir()
	scenario := filepath.Join(dir, "tiny.yaml")
	promo := tinyScenario + "promotions:\n  - {id: tiny-hot, kind: percent, percent_off: 20, hot: true, stock_cap: 2, per_customer_limit: 1, starts: 0s, ends: 10m}\n"
	if err := os.WriteFile(scenario, []byte(promo), 0o644); err != nil {
		t.Fatal(err)
	}
	env := p.Env(nil)
	for i, want := range []string{"promotion tiny-hot created: 20% off, cap 2 per SKU, 1 per customer, over cap base on LG-HOT-1", "promotion tiny-hot existed; updated"} {
		out := filepath.Join(dir, "outcomes.json")
		var stdout bytes.Buffer
		code := orderctl.Code(orderctl.Run(t.Context(), []string{"load", "--scenario", scenario, "--api", p.API.URL,
			"--token", p.Token, "--seed-data", "--out", out}, func(k string) string { return env[k] }, &stdout))
		if code != 0 {
			t.Fatalf("run %d: exit code %d, want 0:\n%s", i+1, code, stdout.String())
		}
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("run %d: output lacks %q:\n%s", i+1, want, stdout.String())
		}
		f, err := os.Open(out)
		if err != nil {
			t.Fatal(err)
		}
		res, err := loadgen.ReadResult(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Promotions) != 1 || res.Promotions[0] != "tiny-hot" {
			t.Errorf("run %d: outcomes name promotions %v, want [tiny-hot]", i+1, res.Promotions)
		}
	}
	// The api priced hot orders with it: the cap of 2 was used up (no order-worker runs here, so
	// the holds stay and keep their promotional units).
	if sold, err := p.Store.PromoSold(t.Context(), "LG-HOT-1", "tiny-hot"); err != nil || sold != 2 {
		t.Errorf("promotional units held under tiny-hot: %d, %v; want the cap, 2", sold, err)
	}
}

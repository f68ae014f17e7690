package loadgen_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/orderpipe/orderpipe/internal/loadgen"
)

// TestScenarioFiles parses every file in scenarios/.
func TestScenarioFiles(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("../../scenarios/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 2 {
		t.Fatalf("found %d scenario files in scenarios/, want at least flash-sale.yaml and smoke.yaml", len(files))
	}
	for _, f := range files {
		s, err := loadgen.LoadScenario(f)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if want := strings.TrimSuffix(filepath.Base(f), ".yaml"); !strings.HasPrefix(s.Name, strings.SplitN(want, "-", 2)[0]) {
			t.Errorf("%s: name %q does not match the file name", f, s.Name)
		}
		if s.ExpectedBuyers() < 1 {
			t.Errorf("%s: brings %d buyers, want at least 1", f, s.ExpectedBuyers())
		}
	}
}

// TestFlashSaleIsTheStandardScenario checks the acceptance size of the standard scenario: at
// least 20,000 buyers for 1,000 units of 3 hot SKUs, plus background SKUs.
func TestFlashSaleIsTheStandardScenario(t *testing.T) {
	t.Parallel()
	s, err := loadgen.LoadScenario("../../scenarios/flash-sale.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var hotUnits int64
	for _, h := range s.Catalog.Hot {
		hotUnits += h.Stock
	}
	if len(s.Catalog.Hot) != 3 || hotUnits != 1000 {
		t.Errorf("hot SKUs %d with %d units, want 3 with 1000", len(s.Catalog.Hot), hotUnits)
	}
	if got := s.ExpectedBuyers(); got < 20000 {
		t.Errorf("buyers %d, want at least 20000", got)
	}
	if s.Catalog.Background.Count < 1 || s.Mix.HotShare >= 1 {
		t.Errorf("background count %d, hot share %g: want background traffic", s.Catalog.Background.Count, s.Mix.HotShare)
	}
	if got := len(s.Products()); got != 3+s.Catalog.Background.Count {
		t.Errorf("products %d, want %d", got, 3+s.Catalog.Background.Count)
	}
}

const validScenario = `
name: t
seed: 1
catalog:
  hot: [{sku: HOT-1, stock: 10}]
  background: {count: 5, stock: 7}
arrival:
  - {phase: ramp, from: 10, to: 20, for: 2s}
  - {phase: hold, rate: 20, for: 1s}
mix: {hot_share: 0.5, zipf_s: 1.2, max_lines: 2, max_qty: 2}
payment: {decline: 0.1}
duplicates: 0.1
retry: {statuses: [429], max: 2, backoff: 100ms}
chaos:
  - {at: 1s, action: kill, target: order-worker}
  - {at: 2s, action: broker-fault, kind: latency, for: 1s, args: {ms: "50"}}
promotions:
  - {id: hot-20, kind: percent, percent_off: 20, hot: true, stock_cap: 4, per_customer_limit: 2, starts: 0s, ends: 10m}
  - {id: bg-fixed, name: Background deal, kind: fixed, fixed_price_minor: 500, skus: [LG-BG-0002], over_cap: refuse, starts: 1s, ends: 1h}
`

func TestParseScenarioDefaultsAndCurve(t *testing.T) {
	t.Parallel()
	s, err := loadgen.ParseScenario([]byte(validScenario))
	if err != nil {
		t.Fatal(err)
	}
	if s.Settle.Duration != 120*time.Second || s.RequestTimeout.Duration != 10*time.Second || s.Retry.MaxWait.Duration != 5*time.Second {
		t.Errorf("defaults: settle %s, timeout %s, max_wait %s; want 2m0s, 10s, 5s", s.Settle, s.RequestTimeout, s.Retry.MaxWait)
	}
	if s.Chaos[0].For.Duration != 2*time.Second {
		t.Errorf("kill for %s, want the default 2s", s.Chaos[0].For)
	}
	if got := s.Length(); got != 3*time.Second {
		t.Errorf("length %s, want 3s", got)
	}
	for _, c := range []struct {
		at   time.Duration
		want float64
	}{{0, 10}, {time.Second, 15}, {2 * time.Second, 20}, {2500 * time.Millisecond, 20}, {3 * time.Second, 0}, {-time.Second, 0}} {
		if got := s.RateAt(c.at); got != c.want {
			t.Errorf("RateAt(%s) = %g, want %g", c.at, got, c.want)
		}
	}
	// ramp: (10+20)/2*2 = 30, hold: 20.
	if got := s.ExpectedBuyers(); got != 50 {
		t.Errorf("expected buyers %d, want 50", got)
	}
	if len(s.Promotions) != 2 || s.Promotions[0].Name != "hot-20" || s.Promotions[0].OverCap != "base" || s.Promotions[1].OverCap != "refuse" {
		t.Errorf("promotions %+v, want the name to default to the id and over_cap to base", s.Promotions)
	}
	if got := s.PromotionSKUs(s.Promotions[0]); len(got) != 1 || got[0] != "HOT-1" {
		t.Errorf("hot promotion covers %v, want [HOT-1]", got)
	}
	if got := s.PromotionIDs(); len(got) != 2 || got[0] != "hot-20" || got[1] != "bg-fixed" {
		t.Errorf("promotion ids %v, want [hot-20 bg-fixed]", got)
	}
	stock := s.Stock()
	if len(stock) != 6 || stock["HOT-1"] != 10 || stock["LG-BG-0005"] != 7 {
		t.Errorf("stock %v, want HOT-1: 10 and LG-BG-0001..5: 7", stock)
	}
}

func TestParseScenarioRejectsBadInput(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name, replace, with, want string
	}{
		{"unknown field", "seed: 1", "seed: 1\nsede: 2", "field sede not found"},
		{"share above 1", "hot_share: 0.5", "hot_share: 1.5", "mix.hot_share: want a share in [0,1]"},
		{"negative share", "duplicates: 0.1", "duplicates: -0.1", "duplicates: want a share in [0,1]"},
		{"payment shares over 1", "decline: 0.1", "decline: 0.6, slow: 0.6", "payment: decline + slow + hang is 1.2"},
		{"bad duration", "for: 1s}", "for: soon}", `want a duration such as 15s, got "soon"`},
		{"unknown phase", "phase: hold", "phase: plateau", `arrival[1].phase: want one of ramp, hold, spike, decay, got "plateau"`},
		{"zero-length phase", "rate: 20, for: 1s", "rate: 20, for: 0s", "arrival[1].for: want a positive duration"},
		{"decay going up", "phase: ramp, from: 10, to: 20", "phase: decay, from: 10, to: 20", "arrival[0].to: a decay goes down"},
		{"hold with from", "phase: hold, rate: 20", "phase: hold, rate: 20, from: 3", "arrival[1]: a hold has rate, not from/to"},
		{"bad sku", "sku: HOT-1", "sku: hot-1", `catalog.hot[0].sku: want an upper-case SKU`},
		{"zipf exponent", "zipf_s: 1.2", "zipf_s: 1", "mix.zipf_s: want an exponent in (1, 10]"},
		{"unknown chaos action", "action: kill", "action: nuke", `chaos[0].action: want one of kill, scale, broker-fault`},
		{"unknown chaos target", "target: order-worker", "target: api", `chaos[0].target: want one of order-worker, inventory-sync, notifier for kill, got "api"`},
		{"unknown fault kind", "kind: latency", "kind: meteor", `chaos[1].kind: want one of produce-error, fetch-error`},
		{"chaos after the run", "at: 2s", "at: 9s", "chaos[1].at: want a time within the run (0..3s), got 9s"},
		{"retry status", "statuses: [429]", "statuses: [200]", "retry.statuses[0]: want an HTTP error status"},
		{"bad name", "name: t", "name: Flash Sale", "name: want 1-64 lower-case"},
		{"promotion id", "id: hot-20", "id: Hot_20", `promotions[0].id: want 1-64 lower-case letters, digits or dashes, got "Hot_20"`},
		{"promotion id twice", "id: bg-fixed", "id: hot-20", "promotions[1].id: hot-20 is also the id of promotions[0]"},
		{"promotion kind", "kind: percent", "kind: bogo", `promotions[0].kind: want percent or fixed, got "bogo"`},
		{"percent out of range", "percent_off: 20", "percent_off: 100", "promotions[0].percent_off: want 1..99 for kind percent, got 100"},
		{"percent with a fixed price", "percent_off: 20", "percent_off: 20, fixed_price_minor: 5", "promotions[0].fixed_price_minor: not used by kind percent"},
		{"fixed without a price", "fixed_price_minor: 500", "fixed_price_minor: 0", "promotions[1].fixed_price_minor: want a positive price in minor units for kind fixed, got 0"},
		{"no skus", "hot: true, ", "", "promotions[0].skus: want at least one SKU, or hot: true"},
		{"sku not in the catalog", "skus: [LG-BG-0002]", "skus: [LG-BG-0099]", `promotions[1].skus[0]: "LG-BG-0099" is not a SKU of the scenario's catalog`},
		{"sku of two promotions", "skus: [LG-BG-0002]", "skus: [HOT-1]", "promotions[1].skus: HOT-1 is also priced by promotions[0]"},
		{"negative cap", "stock_cap: 4", "stock_cap: -1", "promotions[0].stock_cap: want > 0, or 0/absent for no cap, got -1"},
		{"negative limit", "per_customer_limit: 2", "per_customer_limit: -2", "promotions[0].per_customer_limit: want > 0, or 0/absent for no limit, got -2"},
		{"over_cap", "over_cap: refuse", "over_cap: queue", `promotions[1].over_cap: want base or refuse, got "queue"`},
		{"starts after the load", "starts: 1s", "starts: 3s", "promotions[1].starts: want a time within the load (0s..3s, excluded)"},
		{"ends before starts", "ends: 10m", "ends: 0s", "promotions[0].ends: want a time after starts (0s), got 0s"},
		{"unknown promotion field", "stock_cap: 4,", "stock_cap: 4, cap: 3,", "field cap not found"},
		{"wrong type", "seed: 1", "seed: many", "cannot unmarshal"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			in := strings.Replace(validScenario, c.replace, c.with, 1)
			if in == validScenario {
				t.Fatalf("replacement %q not found", c.replace)
			}
			_, err := loadgen.ParseScenario([]byte(in))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want one containing %q", err, c.want)
			}
		})
	}
	if _, err := loadgen.LoadScenario(filepath.Join(t.TempDir(), "missing.yaml")); err == nil || !os.IsNotExist(unwrapAll(err)) {
		t.Errorf("missing file: error %v, want not-exist", err)
	}
}

func unwrapAll(err error) error {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok || u.Unwrap() == nil {
			return err
		}
		err = u.Unwrap()
	}
}

func TestDurationJSONRoundTrip(t *testing.T) {
	t.Parallel()
	var d loadgen.Duration
	if err := d.UnmarshalJSON([]byte(`"1m30s"`)); err != nil || d.Duration != 90*time.Second {
		t.Fatalf("UnmarshalJSON(1m30s) = %s, %v", d, err)
	}
	b, _ := d.MarshalJSON()
	if string(b) != `"1m30s"` {
		t.Errorf("MarshalJSON = %s, want \"1m30s\"", b)
	}
	if err := d.UnmarshalJSON([]byte(`"soon"`)); err == nil {
		t.Errorf("UnmarshalJSON(soon): no error")
	}
}

// TestScenarioExpectations pins the arithmetic of Scenario.Expect on the shipped scenarios and
// checks that the recorded flash-sale run (docs/e2e-flash-sale.json) clears its floor, so the
// floor fails an empty run without failing a real one.
func TestScenarioExpectations(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		file                string
		buyers, minAccepted int
	}{
		// 600 buyers: 180 without a hot line (800 background units, up to 4 per order: 200),
		// 420 with one (60 hot units, up to 3 per line: 20); (180 + 20) / 3.
		{"smoke", 600, 66},
		// 4550 buyers: 3185 without a hot line (ample background), 1365 with one (600 units).
		{"chaos-kill", 4550, 1261},
		// 24000 buyers: 4800 without a hot line (75000 units / 6 = 12500), 19200 with one
		// (1000 units).
		{"flash-sale", 24000, 1933},
	} {
		s, err := loadgen.LoadScenario("../../scenarios/" + c.file + ".yaml")
		if err != nil {
			t.Fatal(err)
		}
		if got := s.Expect(); got != (loadgen.Expectation{Buyers: c.buyers, MinAccepted: c.minAccepted}) {
			t.Errorf("%s: Expect() = %+v, want buyers %d, min accepted %d", c.file, got, c.buyers, c.minAccepted)
		}
	}
	b, err := os.ReadFile("../../docs/e2e-flash-sale.json")
	if err != nil {
		t.Fatal(err)
	}
	var rec struct {
		Check struct {
			Summary map[string]int64 `json:"summary"`
		} `json:"check"`
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		t.Fatal(err)
	}
	if got := rec.Check.Summary["accepted_orders"]; got < 1933 {
		t.Errorf("the recorded flash-sale run accepted %d orders, below its floor 1933: the floor would fail a real run", got)
	}
}

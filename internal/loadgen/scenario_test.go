package loadgen_test

import (
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

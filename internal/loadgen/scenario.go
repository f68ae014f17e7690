// Package loadgen plays a flash-sale scenario against the real HTTP API: it reads the scenario
// file (catalog and stock, arrival phases, buyer mix, payment behaviour, duplicates, retries and
// the chaos steps another package executes), seeds the scenario's catalog and stock, and drives
// an open-model load with vegeta, where every arrival is one buyer with one intended order. Every
// request's outcome is recorded (accepted, refused with its reason, error, unknown) with its
// timings, and a per-second timeline is sampled while the run goes.
package loadgen

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/orderpipe/orderpipe/internal/promotion"
)

// Scenario is one load-test scenario, as read from its YAML file.
type Scenario struct {
	Name       string      `yaml:"name"`
	Seed       int64       `yaml:"seed"`
	Catalog    Catalog     `yaml:"catalog"`
	Arrival    []Phase     `yaml:"arrival"`
	Buyers     int         `yaml:"buyers"`
	Mix        Mix         `yaml:"mix"`
	Payment    Payment     `yaml:"payment"`
	Duplicates float64     `yaml:"duplicates"`
	Retry      Retry       `yaml:"retry"`
	Chaos      []ChaosStep `yaml:"chaos"`
	// Promotions are created through the api before the load (promotion.go).
	Promotions []Promotion `yaml:"promotions"`
	Settle     Duration    `yaml:"settle"`
	// RequestTimeout bounds one HTTP request; a request without an answer by then is "unknown".
	RequestTimeout Duration `yaml:"request_timeout"`
}

// Catalog is the scenario's products and their starting stock.
type Catalog struct {
	Hot        []HotSKU   `yaml:"hot"`
	Background Background `yaml:"background"`
}

// HotSKU is one SKU most buyers compete for, with its starting stock.
type HotSKU struct {
	SKU   string `yaml:"sku"`
	Stock int64  `yaml:"stock"`
}

// Background is the rest of the catalog, bought Zipf-like. With FromDemo the SKUs are the first
// Count SKUs of the demo catalog (internal/demo) that are not hot; otherwise they are generated
// (LG-BG-0001, LG-BG-0002, ...).
type Background struct {
	Count    int   `yaml:"count"`
	Stock    int64 `yaml:"stock"`
	FromDemo bool  `yaml:"from_demo"`
}

// Phase is one piece of the arrival curve. A ramp or decay goes linearly From -> To; a hold
// stays at Rate. Rates are new buyers per second.
type Phase struct {
	Phase string   `yaml:"phase"`
	From  float64  `yaml:"from"`
	To    float64  `yaml:"to"`
	Rate  float64  `yaml:"rate"`
	For   Duration `yaml:"for"`
}

// Mix shapes each buyer's order.
type Mix struct {
	HotShare     float64 `yaml:"hot_share"`     // share of buyers whose order has a hot SKU
	ZipfS        float64 `yaml:"zipf_s"`        // Zipf exponent of the background popularity (> 1)
	ExpressShare float64 `yaml:"express_share"` // share of express orders
	MaxLines     int     `yaml:"max_lines"`     // lines per order: 1..MaxLines
	MaxQty       int     `yaml:"max_qty"`       // units per line: 1..MaxQty
	HotMaxQty    int     `yaml:"hot_max_qty"`   // units per hot line: 1..HotMaxQty (default 1)
}

// Payment is the share of buyers given each special payment-simulator token (internal/paysim).
type Payment struct {
	Decline float64 `yaml:"decline"` // tok_decline_...: declined
	Slow    float64 `yaml:"slow"`    // tok_slow_...: three times the latency
	Hang    float64 `yaml:"hang"`    // tok_hang_...: no answer until the client gives up
}

// Retry is how buyers retry, like a browser: same body, same Idempotency-Key.
type Retry struct {
	Statuses []int    `yaml:"statuses"` // answers that make a buyer retry (429, 503)
	Max      int      `yaml:"max"`      // retries per submission, beyond the first attempt
	Backoff  Duration `yaml:"backoff"`  // wait before a retry when the answer has no Retry-After
	MaxWait  Duration `yaml:"max_wait"` // longest wait honoured from Retry-After (default 5s)
}

// ChaosStep is one fault injected during the run. loadgen only parses and validates the steps;
// the e2e runner executes them.
type ChaosStep struct {
	At       Duration          `yaml:"at"`
	For      Duration          `yaml:"for"`
	Action   string            `yaml:"action"`
	Target   string            `yaml:"target"`
	Kind     string            `yaml:"kind"`
	Replicas int               `yaml:"replicas"`
	Args     map[string]string `yaml:"args"`
}

// Duration is a time.Duration written as "15s", "500ms" or "2m" in the file.
type Duration struct{ time.Duration }

// UnmarshalYAML reads a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return fmt.Errorf("line %d: want a duration such as 15s, got %q", n.Line, n.Value)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("line %d: want a duration such as 15s, got %q", n.Line, s)
	}
	d.Duration = v
	return nil
}

// MarshalYAML writes the duration as a string.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return []byte(`"` + d.String() + `"`), nil }

// UnmarshalJSON reads a duration string such as "15s".
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("want a duration such as 15s, got %s", b)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("want a duration such as 15s, got %q", s)
	}
	d.Duration = v
	return nil
}

// Chaos actions, targets and broker fault kinds the runner knows.
var (
	ChaosActions      = []string{"kill", "scale", "broker-fault", "redis-restart-empty", "postgres-restart", "payment-outage"}
	ChaosTargets      = []string{"order-worker", "inventory-sync", "notifier"}
	BrokerFaultKinds  = []string{"produce-error", "fetch-error", "latency", "leader-move", "broker-remove", "broker-add"}
	phaseKinds        = []string{"ramp", "hold", "spike", "decay"}
	skuPattern        = regexp.MustCompile(`^[A-Z0-9][A-Z0-9-]{2,39}$`)
	namePattern       = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)
	defaultTimeout    = 10 * time.Second
	defaultMaxWait    = 5 * time.Second
	defaultSettle     = 120 * time.Second
	defaultChaosFor   = 2 * time.Second
	maxBuyersPerScene = 5_000_000
)

// LoadScenario reads and validates the scenario file at path.
func LoadScenario(path string) (*Scenario, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("scenario: %w", err)
	}
	s, err := ParseScenario(b)
	if err != nil {
		return nil, fmt.Errorf("scenario %s: %w", path, err)
	}
	return s, nil
}

// ParseScenario decodes a scenario strictly (unknown fields are errors), fills defaults and
// validates it; an error names the field that is wrong.
func ParseScenario(b []byte) (*Scenario, error) {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var s Scenario
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, errors.New("decode: more than one YAML document; want one scenario")
	}
	s.defaults()
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return &s, nil
}

func (s *Scenario) defaults() {
	if s.Settle.Duration == 0 {
		s.Settle.Duration = defaultSettle
	}
	if s.RequestTimeout.Duration == 0 {
		s.RequestTimeout.Duration = defaultTimeout
	}
	if s.Retry.MaxWait.Duration == 0 {
		s.Retry.MaxWait.Duration = defaultMaxWait
	}
	if s.Mix.MaxLines == 0 {
		s.Mix.MaxLines = 1
	}
	if s.Mix.MaxQty == 0 {
		s.Mix.MaxQty = 1
	}
	if s.Mix.HotMaxQty == 0 {
		s.Mix.HotMaxQty = 1
	}
	if s.Mix.ZipfS == 0 {
		s.Mix.ZipfS = 1.1
	}
	for i := range s.Promotions {
		p := &s.Promotions[i]
		if p.Name == "" {
			p.Name = p.ID
		}
		if p.OverCap == "" {
			p.OverCap = string(promotion.OverCapBase)
		}
	}
	for i := range s.Chaos {
		c := &s.Chaos[i]
		if c.For.Duration == 0 && (c.Action == "kill" || c.Action == "broker-fault" || c.Action == "payment-outage") {
			c.For.Duration = defaultChaosFor
		}
	}
}

// Validate checks every field and reports all problems at once, each naming its field.
func (s *Scenario) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	share := func(field string, v float64) {
		if math.IsNaN(v) || v < 0 || v > 1 {
			bad(field, "want a share in [0,1], got %g", v)
		}
	}
	if !namePattern.MatchString(s.Name) {
		bad("name", "want 1-64 lower-case letters, digits, '.', '_' or '-', got %q", s.Name)
	}
	if len(s.Catalog.Hot) == 0 && s.Catalog.Background.Count == 0 {
		bad("catalog", "want at least one hot SKU or a background count")
	}
	seen := map[string]bool{}
	for i, h := range s.Catalog.Hot {
		f := fmt.Sprintf("catalog.hot[%d]", i)
		switch {
		case !skuPattern.MatchString(h.SKU):
			bad(f+".sku", "want an upper-case SKU such as BRK-PAD-1001, got %q", h.SKU)
		case seen[h.SKU]:
			bad(f+".sku", "%s is listed twice", h.SKU)
		}
		seen[h.SKU] = true
		if h.Stock < 0 {
			bad(f+".stock", "want >= 0, got %d", h.Stock)
		}
	}
	bg := s.Catalog.Background
	if bg.Count < 0 || bg.Count > 9999 {
		bad("catalog.background.count", "want 0..9999, got %d", bg.Count)
	}
	if bg.Stock < 0 {
		bad("catalog.background.stock", "want >= 0, got %d", bg.Stock)
	}
	if len(s.Arrival) == 0 {
		bad("arrival", "want at least one phase")
	}
	for i, p := range s.Arrival {
		f := fmt.Sprintf("arrival[%d]", i)
		rate := func(field string, v float64) {
			if math.IsNaN(v) || v < 0 || v > 1e6 {
				bad(f+"."+field, "want a rate in [0, 1000000] per second, got %g", v)
			}
		}
		switch p.Phase {
		case "hold":
			rate("rate", p.Rate)
			if p.From != 0 || p.To != 0 {
				bad(f, "a hold has rate, not from/to")
			}
		case "ramp", "spike", "decay":
			rate("from", p.From)
			rate("to", p.To)
			if p.Rate != 0 {
				bad(f, "a %s has from/to, not rate", p.Phase)
			}
			if p.Phase == "decay" && p.To > p.From {
				bad(f+".to", "a decay goes down: to %g is above from %g", p.To, p.From)
			}
		default:
			bad(f+".phase", "want one of %s, got %q", strings.Join(phaseKinds, ", "), p.Phase)
		}
		if p.For.Duration <= 0 {
			bad(f+".for", "want a positive duration, got %s", p.For.Duration)
		}
	}
	if s.Buyers < 0 || s.Buyers > maxBuyersPerScene {
		bad("buyers", "want 0..%d (0: as many as the arrival curve brings), got %d", maxBuyersPerScene, s.Buyers)
	}
	share("mix.hot_share", s.Mix.HotShare)
	share("mix.express_share", s.Mix.ExpressShare)
	if s.Mix.HotShare > 0 && len(s.Catalog.Hot) == 0 {
		bad("mix.hot_share", "is %g but catalog.hot is empty", s.Mix.HotShare)
	}
	if s.Mix.HotShare < 1 && bg.Count == 0 {
		bad("mix.hot_share", "is %g < 1 but catalog.background.count is 0", s.Mix.HotShare)
	}
	if math.IsNaN(s.Mix.ZipfS) || s.Mix.ZipfS <= 1 || s.Mix.ZipfS > 10 {
		bad("mix.zipf_s", "want an exponent in (1, 10], got %g", s.Mix.ZipfS)
	}
	if s.Mix.MaxLines < 1 || s.Mix.MaxLines > 50 {
		bad("mix.max_lines", "want 1..50, got %d", s.Mix.MaxLines)
	}
	if s.Mix.MaxQty < 1 || s.Mix.MaxQty > 999 {
		bad("mix.max_qty", "want 1..999, got %d", s.Mix.MaxQty)
	}
	if s.Mix.HotMaxQty < 1 || s.Mix.HotMaxQty > 999 {
		bad("mix.hot_max_qty", "want 1..999, got %d", s.Mix.HotMaxQty)
	}
	share("payment.decline", s.Payment.Decline)
	share("payment.slow", s.Payment.Slow)
	share("payment.hang", s.Payment.Hang)
	if sum := s.Payment.Decline + s.Payment.Slow + s.Payment.Hang; sum > 1 {
		bad("payment", "decline + slow + hang is %g, want at most 1", sum)
	}
	share("duplicates", s.Duplicates)
	for i, st := range s.Retry.Statuses {
		if st < 400 || st > 599 {
			bad(fmt.Sprintf("retry.statuses[%d]", i), "want an HTTP error status 400..599, got %d", st)
		}
	}
	if s.Retry.Max < 0 || s.Retry.Max > 20 {
		bad("retry.max", "want 0..20, got %d", s.Retry.Max)
	}
	if s.Retry.Max > 0 && len(s.Retry.Statuses) == 0 {
		bad("retry.statuses", "retry.max is %d but no status is retried", s.Retry.Max)
	}
	if s.Retry.Backoff.Duration < 0 || s.Retry.Backoff.Duration > time.Minute {
		bad("retry.backoff", "want 0..1m, got %s", s.Retry.Backoff.Duration)
	}
	if s.Retry.MaxWait.Duration < 0 || s.Retry.MaxWait.Duration > 5*time.Minute {
		bad("retry.max_wait", "want 0..5m, got %s", s.Retry.MaxWait.Duration)
	}
	if s.Settle.Duration < 0 || s.Settle.Duration > time.Hour {
		bad("settle", "want 0..1h, got %s", s.Settle.Duration)
	}
	if s.RequestTimeout.Duration < 0 || s.RequestTimeout.Duration > 5*time.Minute {
		bad("request_timeout", "want 0..5m, got %s", s.RequestTimeout.Duration)
	}
	for i, c := range s.Chaos {
		validateChaos(fmt.Sprintf("chaos[%d]", i), c, s.Length(), bad)
	}
	s.validatePromotions(bad)
	return errors.Join(errs...)
}

func validateChaos(f string, c ChaosStep, length time.Duration, bad func(field, format string, args ...any)) {
	if c.At.Duration < 0 || c.At.Duration > length {
		bad(f+".at", "want a time within the run (0..%s), got %s", length, c.At.Duration)
	}
	if c.For.Duration < 0 {
		bad(f+".for", "want a non-negative duration, got %s", c.For.Duration)
	}
	needTarget := func(allowed ...string) {
		if !slices.Contains(allowed, c.Target) {
			bad(f+".target", "want one of %s for %s, got %q", strings.Join(allowed, ", "), c.Action, c.Target)
		}
	}
	noField := func(name string, set bool) {
		if set {
			bad(f+"."+name, "not used by %s", c.Action)
		}
	}
	switch c.Action {
	case "kill":
		needTarget(ChaosTargets...)
		noField("kind", c.Kind != "")
		noField("replicas", c.Replicas != 0)
	case "scale":
		needTarget(ChaosTargets...)
		if c.Replicas < 0 || c.Replicas > 16 {
			bad(f+".replicas", "want 0..16, got %d", c.Replicas)
		}
		noField("kind", c.Kind != "")
	case "broker-fault":
		if !slices.Contains(BrokerFaultKinds, c.Kind) {
			bad(f+".kind", "want one of %s, got %q", strings.Join(BrokerFaultKinds, ", "), c.Kind)
		}
		noField("target", c.Target != "")
		noField("replicas", c.Replicas != 0)
	case "redis-restart-empty", "postgres-restart", "payment-outage":
		noField("target", c.Target != "")
		noField("kind", c.Kind != "")
		noField("replicas", c.Replicas != 0)
	default:
		bad(f+".action", "want one of %s, got %q", strings.Join(ChaosActions, ", "), c.Action)
	}
}

// Length is how long the arrival curve lasts.
func (s *Scenario) Length() time.Duration {
	var d time.Duration
	for _, p := range s.Arrival {
		d += p.For.Duration
	}
	return d
}

// RateAt is the arrival rate (buyers per second) at t since the start; 0 after the last phase.
func (s *Scenario) RateAt(t time.Duration) float64 {
	if t < 0 {
		return 0
	}
	for _, p := range s.Arrival {
		if t < p.For.Duration {
			return p.rateAt(t)
		}
		t -= p.For.Duration
	}
	return 0
}

func (p Phase) rateAt(t time.Duration) float64 {
	if p.Phase == "hold" {
		return p.Rate
	}
	f := float64(t) / float64(p.For.Duration)
	return p.From + (p.To-p.From)*f
}

// arrivalsBy is the expected number of arrivals in [0, t): the integral of the rate curve.
func (s *Scenario) arrivalsBy(t time.Duration) float64 {
	var n float64
	for _, p := range s.Arrival {
		d := p.For.Duration
		if t <= 0 {
			break
		}
		span := min(t, d)
		if p.Phase == "hold" {
			n += p.Rate * span.Seconds()
		} else {
			// Trapezoid from the phase start to span.
			n += (p.From + p.rateAt(span)) / 2 * span.Seconds()
		}
		t -= span
	}
	return n
}

// ExpectedBuyers is how many buyers the run brings: the arrivals of the whole curve, capped by
// Buyers when set.
func (s *Scenario) ExpectedBuyers() int {
	n := int(math.Floor(s.arrivalsBy(s.Length()) + 1e-9))
	if s.Buyers > 0 && s.Buyers < n {
		return s.Buyers
	}
	return n
}

// Expectation is the least a run of the scenario must show to count as having exercised the
// pipeline at all; the checker's R0 compares a run with it, so a run in which the load never
// reached the api, or almost nothing was accepted, fails instead of passing vacuously (every
// invariant holds over zero orders).
type Expectation struct {
	// Buyers is ExpectedBuyers: the buyers the arrival curve brings.
	Buyers int `json:"buyers"`
	// MinAccepted is a third of the orders the scenario can sell: buyers without a hot line
	// (bounded by the background units, at the most units an order can ask for) plus hot buyers
	// (bounded by the hot units, at the most hot units a line can ask for). A third leaves room
	// for the Zipf-skewed background selling out early, declines and faults; a run below it was
	// not played against a working pipeline.
	MinAccepted int `json:"min_accepted"`
}

// Expect returns the scenario's Expectation.
func (s *Scenario) Expect() Expectation {
	buyers := s.ExpectedBuyers()
	hot := int(math.Round(float64(buyers) * s.Mix.HotShare))
	var hotUnits int64
	for _, h := range s.Catalog.Hot {
		hotUnits += h.Stock
	}
	bgUnits := int64(s.Catalog.Background.Count) * s.Catalog.Background.Stock
	perOrder := int64(max(1, s.Mix.MaxLines) * max(1, s.Mix.MaxQty))
	sellable := min(int64(buyers-hot), bgUnits/perOrder) + min(int64(hot), hotUnits/int64(max(1, s.Mix.HotMaxQty)))
	return Expectation{Buyers: buyers, MinAccepted: int(sellable / 3)}
}

package promotion

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/orderpipe/orderpipe/internal/order"
)

var t0 = time.Date(2026, 12, 1, 7, 0, 0, 0, time.UTC)

func promo(id string, pct int, from, to time.Duration) Promotion {
	return Promotion{ID: id, Name: id, Kind: KindPercent, PercentOff: pct, SKUs: []string{"TYR-1001"},
		StartsAt: t0.Add(from), EndsAt: t0.Add(to), TimeZone: "UTC", OverCap: OverCapBase}
}

func TestPriceFor(t *testing.T) {
	t.Parallel()
	tests := []struct {
		p    Promotion
		base int64
		want int64
	}{
		{Promotion{Kind: KindPercent, PercentOff: 30}, 10000, 7000},
		{Promotion{Kind: KindPercent, PercentOff: 30}, 4995, 3497}, // 3496.5 rounds half up
		{Promotion{Kind: KindPercent, PercentOff: 99}, 1, 1},       // never free
		{Promotion{Kind: KindFixed, FixedPriceMinor: 1999}, 4990, 1999},
		{Promotion{Kind: KindFixed, FixedPriceMinor: 9999}, 4990, 4990}, // never raises a price
	}
	for _, tt := range tests {
		if got := tt.p.PriceFor(tt.base); got != tt.want {
			t.Errorf("%+v PriceFor(%d) = %d, want %d", tt.p, tt.base, got, tt.want)
		}
	}
}

// The boundary rule: start inclusive, end exclusive, to the millisecond.
func TestEntryAtMillisecondBoundaries(t *testing.T) {
	t.Parallel()
	e := Build("TYR-1001", "tyres", 10000, []Promotion{promo("winter", 30, time.Hour, 2*time.Hour)}, t0)
	start, end := t0.Add(time.Hour), t0.Add(2*time.Hour)
	tests := []struct {
		at    time.Time
		promo bool
	}{
		{start.Add(-time.Millisecond), false},
		{start.Add(-time.Microsecond), false}, // acceptance times are truncated to the ms
		{start, true},
		{end.Add(-time.Millisecond), true},
		{end, false},
		{end.Add(time.Millisecond), false},
	}
	for _, tt := range tests {
		w, ok := e.At(tt.at.Truncate(time.Millisecond))
		if ok != tt.promo || (ok && (w.PriceMinor != 7000 || w.PromotionID != "winter")) {
			t.Errorf("At(%s) = %+v, %v; want promotional %v", tt.at.Format(time.RFC3339Nano), w, ok, tt.promo)
		}
	}
	if nb, ok := e.NextBoundary(start.Add(-time.Second)); !ok || !nb.Equal(start) {
		t.Errorf("next boundary before the start = %s, want %s", nb, start)
	}
	if nb, ok := e.NextBoundary(start); !ok || !nb.Equal(end) {
		t.Errorf("next boundary during = %s, want %s", nb, end)
	}
	if e.Stale(end.Add(-time.Millisecond)) || !e.Stale(end) {
		t.Error("the entry must turn stale exactly at the end")
	}
}

// Overlapping promotions: the lowest price wins in each stretch; ended promotions and others'
// SKUs are left out; an early end cuts the window.
func TestBuildTimeline(t *testing.T) {
	t.Parallel()
	a := promo("a", 10, 0, 4*time.Hour)
	b := promo("b", 30, time.Hour, 2*time.Hour)
	gone := promo("gone", 50, -2*time.Hour, -time.Hour)
	other := promo("other", 50, 0, time.Hour)
	other.SKUs = []string{"BRK-2002"}
	cut := promo("cut", 40, 3*time.Hour, 5*time.Hour)
	ended := t0.Add(3*time.Hour + 30*time.Minute)
	cut.EndedAt = &ended
	e := Build("TYR-1001", "tyres", 10000, []Promotion{a, b, gone, other, cut}, t0)
	type w struct {
		id       string
		from, to time.Duration
		price    int64
	}
	want := []w{
		{"a", 0, time.Hour, 9000},
		{"b", time.Hour, 2 * time.Hour, 7000},
		{"a", 2 * time.Hour, 3 * time.Hour, 9000},
		{"cut", 3 * time.Hour, 3*time.Hour + 30*time.Minute, 6000},
		{"a", 3*time.Hour + 30*time.Minute, 4 * time.Hour, 9000},
	}
	if len(e.Windows) != len(want) {
		t.Fatalf("got %d windows %+v, want %d", len(e.Windows), e.Windows, len(want))
	}
	for i, x := range want {
		g := e.Windows[i]
		if g.PromotionID != x.id || g.StartMs != t0.Add(x.from).UnixMilli() || g.EndMs != t0.Add(x.to).UnixMilli() || g.PriceMinor != x.price {
			t.Errorf("window %d = %+v, want %+v", i, g, x)
		}
	}
	// From the middle of b on, the past is dropped.
	later := Build("TYR-1001", "tyres", 10000, []Promotion{a, b}, t0.Add(90*time.Minute))
	if later.Windows[0].PromotionID != "b" || later.Windows[0].StartMs != t0.Add(time.Hour).UnixMilli() {
		t.Errorf("after 90 minutes the first window is %+v, want b", later.Windows[0])
	}
	// A category promotion applies to the category's SKUs only.
	c := promo("cat", 20, 0, time.Hour)
	c.SKUs, c.Category = nil, "tyres"
	if e := Build("TYR-1001", "tyres", 100, []Promotion{c}, t0); len(e.Windows) != 1 {
		t.Errorf("category promotion on its category: %+v", e)
	}
	if e := Build("BRK-2002", "brakes", 100, []Promotion{c}, t0); len(e.Windows) != 0 {
		t.Errorf("category promotion on another category: %+v", e)
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	good := promo("winter-tyres-30", 30, 0, time.Hour)
	if err := good.Validate(); err != nil {
		t.Fatalf("valid promotion: %v", err)
	}
	bad := Promotion{ID: "Bad Id", Kind: "half", SKUs: []string{"lower", "lower"}, Category: "x",
		StartsAt: t0, EndsAt: t0, TimeZone: "Mars/Base", StockCap: -1, PerCustomerLimit: -1, OverCap: "maybe"}
	err := bad.Validate()
	var inv *order.InvalidError
	if !errors.As(err, &inv) {
		t.Fatalf("got %v, want *order.InvalidError", err)
	}
	fields := map[string]bool{}
	for _, p := range inv.Problems {
		fields[p.Field] = true
	}
	for _, f := range []string{"id", "name", "kind", "category", "skus[0]", "skus[1]", "ends_at", "time_zone", "stock_cap", "per_customer_limit", "over_cap"} {
		if !fields[f] {
			t.Errorf("no problem for %s in %v", f, inv.Problems)
		}
	}
}

// A window shorter than MinWindow is refused naming the rule; Postgres would have stored 1 ns as
// an empty window and refused it with a check constraint (a 500).
func TestMinimumWindow(t *testing.T) {
	t.Parallel()
	start := time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)
	p := Promotion{ID: "p", Name: "x", Kind: KindPercent, PercentOff: 10, SKUs: []string{"BRK-PAD-1001"}, TimeZone: "UTC", OverCap: OverCapBase, StartsAt: start}
	for _, d := range []time.Duration{time.Nanosecond, time.Microsecond, MinWindow - time.Nanosecond} {
		p.EndsAt = start.Add(d)
		if err := p.Validate(); err == nil || !strings.Contains(err.Error(), "ends_at: must be at least 1 second") {
			t.Errorf("window of %s: %v, want ends_at naming the minimum window", d, err)
		}
	}
	p.EndsAt = start.Add(MinWindow)
	if err := p.Validate(); err != nil {
		t.Errorf("window of MinWindow: %v", err)
	}
}

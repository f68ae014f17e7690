package intake

import (
	"testing"
	"time"

	"github.com/orderpipe/orderpipe/internal/order"
	"github.com/orderpipe/orderpipe/internal/promotion"
)

// build gives the reservation's promotional units to the SKU's first lines, splits a line that
// is only partly promotional (promotional units first), keeps other lines at the base price, and
// adds the totals up.
func TestBuildSplitsPromotionalUnits(t *testing.T) {
	t.Parallel()
	s := &Service{cfg: Config{Currency: "EUR", HoldTTL: time.Minute}}
	w := &promotion.Window{PromotionID: "winter-30", PriceMinor: 7000}
	pr := priced{lines: []pricedLine{
		{Line: order.Line{SKU: "TYR-1", Name: "Tyre", Quantity: 3, UnitPriceMinor: 10000}, window: w},
		{Line: order.Line{SKU: "BRK-2", Name: "Pads", Quantity: 1, UnitPriceMinor: 4990}},
		{Line: order.Line{SKU: "TYR-1", Name: "Tyre", Quantity: 2, UnitPriceMinor: 10000}, window: w},
	}, shipping: 990}
	at := time.Date(2026, 12, 1, 7, 0, 0, 0, time.UTC)
	ev, err := s.build(Request{OrderID: "o-1", CustomerID: "c"}, pr, map[string]int64{"TYR-1": 4}, at)
	if err != nil {
		t.Fatal(err)
	}
	type l struct {
		sku   string
		qty   int
		price int64
		promo string
	}
	want := []l{{"TYR-1", 3, 7000, "winter-30"}, {"BRK-2", 1, 4990, ""}, {"TYR-1", 1, 7000, "winter-30"}, {"TYR-1", 1, 10000, ""}}
	if len(ev.Lines) != len(want) {
		t.Fatalf("got %d lines %+v, want %d", len(ev.Lines), ev.Lines, len(want))
	}
	var sub int64
	for i, x := range want {
		g := ev.Lines[i]
		if g.LineNo != i+1 || g.SKU != x.sku || g.Quantity != x.qty || g.UnitPriceMinor != x.price || g.PromotionID != x.promo || g.LineTotalMinor != int64(x.qty)*x.price {
			t.Errorf("line %d = %+v, want %+v", i+1, g, x)
		}
		sub += g.LineTotalMinor
	}
	if ev.SubtotalMinor != sub || ev.TotalMinor != sub+990 || !ev.PlacedAt.Equal(at) || !ev.HoldDeadline.Equal(pr.holdDeadline) {
		t.Errorf("totals or times: %+v", ev)
	}
	// No promotional units granted (cap used up, over_cap base): every unit at the base price.
	ev, err = s.build(Request{OrderID: "o-2"}, pr, nil, at)
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range ev.Lines {
		if g.PromotionID != "" || (g.SKU == "TYR-1" && g.UnitPriceMinor != 10000) {
			t.Errorf("without a grant, line %+v is promotional", g)
		}
	}
}

package postgres_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/orderpipe/orderpipe/internal/postgres"
)

// Facts counted per hour, SKU and category; the same events applied again change nothing; pages
// follow the cursor.
func TestReportsApplyOnceAndAggregate(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	for _, p := range []postgres.Product{
		{SKU: "BRK-1", Name: "Pads", Category: "brakes", Brand: "B", PriceMinor: 1000, Currency: "EUR", Active: true},
		{SKU: "BRK-2", Name: "Discs", Category: "brakes", Brand: "B", PriceMinor: 2500, Currency: "EUR", Active: true},
		{SKU: "FLT-1", Name: "Filter", Category: "filters", Brand: "B", PriceMinor: 500, Currency: "EUR", Active: true},
	} {
		if _, err := b.catalog.Upsert(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	store := postgres.NewReportStore(b.pool)
	h1 := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
	h2 := h1.Add(time.Hour)
	facts := []postgres.SaleFact{
		{EventID: uuid.NewString(), PlacedAt: h1.Add(5 * time.Minute), Currency: "EUR", Confirmed: true,
			Lines: []postgres.SaleLine{{SKU: "BRK-1", Quantity: 2, LineTotalMinor: 2000}, {SKU: "BRK-2", Quantity: 1, LineTotalMinor: 2500}}},
		{EventID: uuid.NewString(), PlacedAt: h1.Add(59 * time.Minute), Currency: "EUR", Confirmed: true,
			Lines: []postgres.SaleLine{{SKU: "FLT-1", Quantity: 3, LineTotalMinor: 1500}}},
		{EventID: uuid.NewString(), PlacedAt: h2, Currency: "EUR", Reason: "payment_declined",
			Lines: []postgres.SaleLine{{SKU: "BRK-1", Quantity: 1, LineTotalMinor: 1000}}},
		{EventID: uuid.NewString(), PlacedAt: h2.Add(time.Minute), Currency: "EUR", Reason: "out_of_stock",
			Lines: []postgres.SaleLine{{SKU: "GONE-1", Quantity: 4, LineTotalMinor: 400}}},
	}
	n, err := store.Apply(ctx, "reports", facts)
	if err != nil || n != 4 {
		t.Fatalf("apply: got %d %v, want 4 nil", n, err)
	}
	all := func(groupBy string) map[string]postgres.SalesRow {
		t.Helper()
		rows, err := store.Sales(ctx, postgres.SalesQuery{GroupBy: groupBy, From: h1, To: h2.Add(time.Hour), Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]postgres.SalesRow{}
		for _, r := range rows {
			out[r.Key] = r
		}
		return out
	}
	before := fmt.Sprint(all(postgres.DimHour), all(postgres.DimSKU), all(postgres.DimCategory))
	if n, err := store.Apply(ctx, "reports", append(facts[2:], facts...)); err != nil || n != 0 {
		t.Fatalf("apply again: got %d %v, want 0 nil", n, err)
	}
	if after := fmt.Sprint(all(postgres.DimHour), all(postgres.DimSKU), all(postgres.DimCategory)); after != before {
		t.Fatalf("replay changed the figures:\nbefore %s\nafter  %s", before, after)
	}
	hours := all(postgres.DimHour)
	if r := hours[postgres.HourKey(h1)]; r.Orders != 2 || r.Units != 6 || r.RevenueMinor != 6000 || r.CancelledOrders != 0 {
		t.Fatalf("hour 1: got %+v, want 2 orders, 6 units, 6000 revenue", r)
	}
	if r := hours[postgres.HourKey(h2)]; r.Orders != 0 || r.CancelledOrders != 2 || r.CancelledUnits != 5 ||
		r.Cancellations["payment_declined"] != 1 || r.Cancellations["out_of_stock"] != 1 {
		t.Fatalf("hour 2: got %+v, want 2 cancellations (declined, out of stock), 5 units", r)
	}
	skus := all(postgres.DimSKU)
	if r := skus["BRK-1"]; r.Orders != 1 || r.Units != 2 || r.RevenueMinor != 2000 || r.CancelledOrders != 1 || r.Category != "brakes" {
		t.Fatalf("BRK-1: got %+v", r)
	}
	if r := skus["GONE-1"]; r.Category != postgres.Uncategorized || r.CancelledUnits != 4 {
		t.Fatalf("GONE-1: got %+v, want uncategorized with 4 cancelled units", r)
	}
	cats := all(postgres.DimCategory)
	if r := cats["brakes"]; r.Orders != 1 || r.Units != 3 || r.RevenueMinor != 4500 || r.CancelledOrders != 1 {
		t.Fatalf("brakes: got %+v, want the two-line order counted once: 1 order, 3 units, 4500", r)
	}
	if r := cats["filters"]; r.Orders != 1 || r.Units != 3 || r.RevenueMinor != 1500 {
		t.Fatalf("filters: got %+v", r)
	}
	// Pages of one row follow the cursor through every SKU in order.
	var keys []string
	q := postgres.SalesQuery{GroupBy: postgres.DimSKU, From: h1, To: h2.Add(time.Hour), Limit: 1}
	for {
		rows, err := store.Sales(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) == 0 {
			break
		}
		keys = append(keys, rows[0].Key)
		q.AfterKey, q.AfterCurrency = rows[0].Key, rows[0].Currency
	}
	if got := fmt.Sprint(keys); got != "[BRK-1 BRK-2 FLT-1 GONE-1]" {
		t.Fatalf("pages: got %s, want [BRK-1 BRK-2 FLT-1 GONE-1]", got)
	}
	// The range is [from, to): hour 2 alone.
	rows, err := store.Sales(ctx, postgres.SalesQuery{GroupBy: postgres.DimHour, From: h2, To: h2.Add(time.Hour)})
	if err != nil || len(rows) != 1 || rows[0].Key != postgres.HourKey(h2) {
		t.Fatalf("hour 2 only: got %+v %v", rows, err)
	}
}

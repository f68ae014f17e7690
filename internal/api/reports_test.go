package api_test

import (
	"encoding/csv"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/orderpipe/orderpipe/internal/auth"
	"github.com/orderpipe/orderpipe/internal/postgres"
)

type salesRow struct {
	Key             string           `json:"key"`
	Currency        string           `json:"currency"`
	Category        string           `json:"category"`
	Orders          int64            `json:"orders"`
	Units           int64            `json:"units"`
	RevenueMinor    int64            `json:"revenue_minor"`
	CancelledOrders int64            `json:"cancelled_orders"`
	CancelledUnits  int64            `json:"cancelled_units"`
	Cancellations   map[string]int64 `json:"cancellations"`
}

// GET /v1/reports/sales over aggregates written by the reports store: JSON pages that follow the
// cursor, the same rows as CSV, the range and the scope; every answer checked against the spec.
func TestSalesReport(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{env: map[string]string{"CATALOG_REFRESH_INTERVAL": "100ms"}})
	ctx := t.Context()
	tok, k, err := auth.Generate("managers", []string{auth.ScopeReportsRead})
	if err != nil {
		t.Fatal(err)
	}
	if err := postgres.NewKeyStore(b.pool).Create(ctx, postgres.APIKey{ID: k.ID, Name: k.Name, SecretHash: k.SecretHash, Scopes: k.Scopes}); err != nil {
		t.Fatal(err)
	}
	h := time.Date(2025, 11, 3, 9, 0, 0, 0, time.UTC)
	line := func(sku string, qty int, price int64) postgres.SaleLine {
		return postgres.SaleLine{SKU: sku, Quantity: qty, LineTotalMinor: int64(qty) * price}
	}
	if _, err := postgres.NewReportStore(b.pool).Apply(ctx, "reports", []postgres.SaleFact{
		{EventID: uuid.NewString(), PlacedAt: h.Add(10 * time.Minute), Currency: "EUR", Confirmed: true,
			Lines: []postgres.SaleLine{line("BRK-PAD-1001", 2, 4990), line("FLT-OIL-2001", 1, 899)}},
		{EventID: uuid.NewString(), PlacedAt: h.Add(70 * time.Minute), Currency: "EUR", Confirmed: true,
			Lines: []postgres.SaleLine{line("BAT-70AH-3001", 1, 13900)}},
		{EventID: uuid.NewString(), PlacedAt: h.Add(80 * time.Minute), Currency: "EUR", Reason: "out_of_stock",
			Lines: []postgres.SaleLine{line("WIP-600-4001", 3, 1590)}},
		{EventID: uuid.NewString(), PlacedAt: h.Add(48 * time.Hour), Currency: "EUR", Confirmed: true,
			Lines: []postgres.SaleLine{line("TYR-2055516-5001", 4, 8950)}},
	}); err != nil {
		t.Fatal(err)
	}
	// Wait for the api's key cache to know the new key.
	deadline := time.Now().Add(10 * time.Second)
	for b.do(t, http.MethodGet, "/v1/reports/sales", tok, nil, nil).status == http.StatusUnauthorized {
		if time.Now().After(deadline) {
			t.Fatal("the new reports key was not loaded")
		}
		time.Sleep(50 * time.Millisecond)
	}
	rangeQ := url.Values{"from": {h.Format(time.RFC3339)}, "to": {h.Add(24 * time.Hour).Format(time.RFC3339)}}

	// JSON, two rows a page, following next_cursor.
	var rows []salesRow
	q := url.Values{"group_by": {"sku"}, "limit": {"2"}, "from": rangeQ["from"], "to": rangeQ["to"]}
	for page := 0; page < 10; page++ {
		r := b.do(t, http.MethodGet, "/v1/reports/sales?"+q.Encode(), tok, nil, nil)
		if r.status != http.StatusOK {
			t.Fatalf("page %d: %d %s", page, r.status, r.body)
		}
		var body struct {
			GroupBy    string     `json:"group_by"`
			Items      []salesRow `json:"items"`
			NextCursor string     `json:"next_cursor"`
		}
		r.json(t, &body)
		rows = append(rows, body.Items...)
		if body.NextCursor == "" {
			if r.header.Get("Link") != "" {
				t.Fatalf("last page has a Link header %q", r.header.Get("Link"))
			}
			break
		}
		if !strings.Contains(r.header.Get("Link"), `rel="next"`) {
			t.Fatalf("page %d: Link %q, want a rel=next link", page, r.header.Get("Link"))
		}
		q.Set("cursor", body.NextCursor)
	}
	if len(rows) != 4 {
		t.Fatalf("got %d SKU rows, want 4 (the tyre sold two days later is outside the range): %+v", len(rows), rows)
	}
	want := map[string]salesRow{
		"BRK-PAD-1001":  {Category: "brakes", Orders: 1, Units: 2, RevenueMinor: 9980},
		"FLT-OIL-2001":  {Category: "filters", Orders: 1, Units: 1, RevenueMinor: 899},
		"BAT-70AH-3001": {Category: "batteries", Orders: 1, Units: 1, RevenueMinor: 13900},
		"WIP-600-4001":  {Category: "wipers", CancelledOrders: 1, CancelledUnits: 3},
	}
	for _, r := range rows {
		w := want[r.Key]
		if r.Category != w.Category || r.Orders != w.Orders || r.Units != w.Units || r.RevenueMinor != w.RevenueMinor ||
			r.CancelledOrders != w.CancelledOrders || r.CancelledUnits != w.CancelledUnits || r.Currency != "EUR" {
			t.Errorf("row %s: got %+v, want %+v", r.Key, r, w)
		}
	}
	if rows[3].Key != "WIP-600-4001" || rows[3].Cancellations["out_of_stock"] != 1 {
		t.Errorf("last row %+v: want WIP-600-4001 with one out_of_stock cancellation", rows[3])
	}

	// The same report by hour, as CSV.
	r := b.do(t, http.MethodGet, "/v1/reports/sales?"+rangeQ.Encode(), tok, map[string]string{"Accept": "text/csv"}, nil)
	if r.status != http.StatusOK || !strings.HasPrefix(r.header.Get("Content-Type"), "text/csv") {
		t.Fatalf("csv: %d %s %s", r.status, r.header.Get("Content-Type"), r.body)
	}
	recs, err := csv.NewReader(strings.NewReader(string(r.body))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	wantCSV := [][]string{
		{"key", "currency", "category", "orders", "units", "revenue_minor", "cancelled_orders", "cancelled_units", "cancelled_payment_declined", "cancelled_out_of_stock", "cancelled_expired", "cancelled_invalid"},
		{"2025-11-03T09:00:00Z", "EUR", "", "1", "3", "10879", "0", "0", "0", "0", "0", "0"},
		{"2025-11-03T10:00:00Z", "EUR", "", "1", "1", "13900", "1", "3", "0", "1", "0", "0"},
	}
	if got := strings.Join(flatten(recs), "|"); got != strings.Join(flatten(wantCSV), "|") {
		t.Fatalf("csv:\ngot  %v\nwant %v", recs, wantCSV)
	}
	// JSON stays the default, and wins a tie.
	for _, accept := range []string{"", "application/json", "text/csv;q=0.5, application/json", "*/*"} {
		r := b.do(t, http.MethodGet, "/v1/reports/sales?group_by=category&"+rangeQ.Encode(), tok, map[string]string{"Accept": accept}, nil)
		if r.status != http.StatusOK || !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
			t.Errorf("Accept %q: %d %s, want JSON", accept, r.status, r.header.Get("Content-Type"))
		}
	}

	// Refusals.
	for _, c := range []struct {
		name, query, token string
		status             int
	}{
		{"unknown dimension", "group_by=week", tok, http.StatusBadRequest},
		{"from after to", "from=2025-11-04T00:00:00Z&to=2025-11-03T00:00:00Z", tok, http.StatusBadRequest},
		{"range over a year", "from=2020-01-01T00:00:00Z&to=2025-01-01T00:00:00Z", tok, http.StatusBadRequest},
		{"not a time", "from=yesterday", tok, http.StatusBadRequest},
		{"limit too big", "limit=5000", tok, http.StatusBadRequest},
		{"forged cursor", "cursor=bm90LWEtY3Vyc29y", tok, http.StatusBadRequest},
		{"no key", "", "", http.StatusUnauthorized},
		{"key without reports:read", "", b.reader, http.StatusForbidden},
	} {
		r := b.do(t, http.MethodGet, "/v1/reports/sales?"+c.query, c.token, nil, nil)
		if r.status != c.status {
			t.Errorf("%s: got %d %s, want %d", c.name, r.status, r.body, c.status)
			continue
		}
		r.problem(t)
	}
}

func flatten(recs [][]string) []string {
	var out []string
	for _, r := range recs {
		out = append(out, strings.Join(r, ","))
	}
	return out
}

package api_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/orderpipe/orderpipe/internal/auth"
	"github.com/orderpipe/orderpipe/internal/httpapi"
	"github.com/orderpipe/orderpipe/internal/paysim"
	"github.com/orderpipe/orderpipe/internal/postgres"
	"github.com/orderpipe/orderpipe/internal/testenv"
)

const hotSKU = "TYR-WINTER-7001"

var promoProducts = []postgres.Product{
	{SKU: hotSKU, Name: "Winter tyre 205/55 R16", Category: "tyres", Brand: "Continental", PriceMinor: 10000, Currency: "EUR", Active: true},
	{SKU: "TYR-WINTER-7002", Name: "Winter tyre 195/65 R15", Category: "tyres", Brand: "Michelin", PriceMinor: 8000, Currency: "EUR", Active: true},
	{SKU: "BRK-PAD-7003", Name: "Brake pads", Category: "brakes", Brand: "Brembo", PriceMinor: 4990, Currency: "EUR", Active: true},
}

// acceptedOrder is the 202 body of POST /v1/orders, as far as these tests read it.
type acceptedOrder struct {
	OrderID       string    `json:"order_id"`
	PlacedAt      time.Time `json:"placed_at"`
	SubtotalMinor int64     `json:"subtotal_minor"`
	TotalMinor    int64     `json:"total_minor"`
	ShippingMinor int64     `json:"shipping_minor"`
	Lines         []struct {
		SKU            string `json:"sku"`
		Quantity       int64  `json:"quantity"`
		UnitPriceMinor int64  `json:"unit_price_minor"`
		LineTotalMinor int64  `json:"line_total_minor"`
		PromotionID    string `json:"promotion_id"`
	} `json:"lines"`
}

// promoUnits checks the arithmetic and the prices of an accepted order (promotional lines at
// promoPrice under promoID, every other line at base) and returns its promotional units and
// all its units.
func (o acceptedOrder) promoUnits(t *testing.T, promoID string, base, promoPrice int64) (promo, all int64) {
	t.Helper()
	var sub int64
	for _, l := range o.Lines {
		switch {
		case l.PromotionID == promoID && l.UnitPriceMinor == promoPrice:
			promo += l.Quantity
		case l.PromotionID == "" && l.UnitPriceMinor == base:
		default:
			t.Fatalf("order %s line %+v: want %d under %s or %d without a promotion", o.OrderID, l, promoPrice, promoID, base)
		}
		if l.LineTotalMinor != l.Quantity*l.UnitPriceMinor {
			t.Fatalf("order %s line %+v does not add up", o.OrderID, l)
		}
		all += l.Quantity
		sub += l.LineTotalMinor
	}
	if sub != o.SubtotalMinor || o.SubtotalMinor+o.ShippingMinor != o.TotalMinor {
		t.Fatalf("order %s totals do not add up: lines %d, %+v", o.OrderID, sub, o)
	}
	return promo, all
}

func customerOrder(customer, token string, lines ...any) []byte {
	type line struct {
		SKU      string `json:"sku"`
		Quantity int    `json:"quantity"`
	}
	var ls []line
	for i := 0; i+1 < len(lines); i += 2 {
		ls = append(ls, line{SKU: lines[i].(string), Quantity: lines[i+1].(int)})
	}
	b, _ := json.Marshal(map[string]any{
		"customer_id": customer, "email": "buyer@example.com", "priority": "standard", "lines": ls,
		"payment":          map[string]string{"method": "card", "token": token},
		"shipping_address": map[string]string{"name": "Ada Buyer", "line1": "Hauptstr. 1", "city": "Berlin", "postal_code": "10115", "country": "DE"},
	})
	return b
}

func httpJSON(t *testing.T, client *http.Client, method, url, token string, body any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, rb
}

// Acceptance: a promotion of 500 units, at most 4 per customer, hit by 5,000 customers buying
// 1-6 units at once (a thousand of them twice): exactly 500 promotional units are sold, no
// customer gets more than 4, every order is priced correctly (promotional units at the
// promotional price, the rest at the base price); order-worker records each line's price and
// promotion in Postgres, declined orders give back units and allowance, and the promotion
// report counts what the confirmed orders bought.
func TestFlashSalePromotionCapAndCustomerLimit(t *testing.T) {
	t.Parallel()
	p := testenv.NewPipeline(t, testenv.PipelineOptions{
		Products: promoProducts,
		Stock:    map[string]int64{hotSKU: 100000, "TYR-WINTER-7002": 100, "BRK-PAD-7003": 100},
		Payment:  paysim.Config{Seed: 1},
		Keys:     map[string][]string{"merch": {auth.ScopeCatalogWrite}, "reports": {auth.ScopeReportsRead}},
	})
	client := &http.Client{Timeout: 20 * time.Second}
	now := time.Now()
	code, body := httpJSON(t, client, http.MethodPost, p.API.URL+"/v1/promotions", p.Keys["merch"], map[string]any{
		"id": "winter-30", "name": "Winter tyres -30%", "kind": "percent", "percent_off": 30,
		"skus": []string{hotSKU}, "starts_at": now.Add(-time.Minute).Format(time.RFC3339Nano),
		"ends_at": now.Add(time.Hour).Format(time.RFC3339Nano), "time_zone": "Europe/Berlin",
		"stock_cap": 500, "over_cap": "base", "per_customer_limit": 4,
	})
	if code != http.StatusCreated {
		t.Fatalf("create promotion: %d %s", code, body)
	}

	const customers, twice = 5000, 1000
	type placed struct {
		customer string
		declined bool
		order    acceptedOrder
	}
	bodies := make([][]byte, 0, customers+twice)
	owners := make([]string, 0, customers+twice)
	declined := map[string]bool{}
	for i := range customers + twice {
		c := i % customers
		cust := fmt.Sprintf("cust-%04d", c)
		qty := 1 + (i*7+c)%6
		token := "tok_visa_4242"
		if c%10 == 3 && i < customers { // every tenth customer's first order is declined
			token = "tok_decline_" + cust
			declined[cust] = true
		}
		bodies = append(bodies, customerOrder(cust, token, hotSKU, qty))
		owners = append(owners, cust)
	}
	var orders []placed
	p.PlaceEach(t, len(bodies), 48, func(i int) []byte { return bodies[i] }, func(i int, _ []byte, a testenv.Answer) {
		if a.Status != http.StatusAccepted {
			t.Errorf("order %d of %s: %d %s", i, owners[i], a.Status, a.Body)
			return
		}
		var o acceptedOrder
		if err := json.Unmarshal(a.Body, &o); err != nil {
			t.Errorf("order %d: %v", i, err)
			return
		}
		orders = append(orders, placed{customer: owners[i], declined: i < customers && declined[owners[i]], order: o})
	})
	if t.Failed() {
		t.FailNow()
	}
	var promoTotal, units int64
	perCustomer := map[string]int64{}
	declinedPromo := map[string]int64{}
	for _, o := range orders {
		pu, all := o.order.promoUnits(t, "winter-30", 10000, 7000)
		promoTotal += pu
		units += all
		perCustomer[o.customer] += pu
		if o.declined {
			declinedPromo[o.customer] += pu
		}
	}
	if promoTotal != 500 {
		t.Fatalf("promotional units sold %d, want exactly 500", promoTotal)
	}
	for c, n := range perCustomer {
		if n > 4 {
			t.Fatalf("customer %s bought %d promotional units, limit 4", c, n)
		}
	}
	sold, counters, err := p.Store.PromoCounters(t.Context(), hotSKU, "winter-30")
	if err != nil || sold != 500 {
		t.Fatalf("Redis sold counter %d (%v), want 500", sold, err)
	}
	for c, n := range perCustomer {
		if counters[c] != n {
			t.Fatalf("Redis counter of %s is %d, orders have %d", c, counters[c], n)
		}
	}
	st, err := p.Store.Availability(t.Context(), hotSKU)
	if err != nil || st.ATP != 100000-units || st.Held != units {
		t.Fatalf("stock atp %d held %d (%v), want %d and %d", st.ATP, st.Held, err, 100000-units, units)
	}

	// order-worker decides everything: declined orders are cancelled and release their holds,
	// which gives back their promotional units and the customers' allowance.
	p.Worker(t, nil)
	p.WaitDecided(t, len(orders), 3*time.Minute)
	testenv.WaitCommitted(t, p.Kafka, "order-worker", testenv.OrderWorkerTopics(), time.Minute)
	var wantBack int64
	for _, n := range declinedPromo {
		wantBack += n
	}
	if wantBack == 0 {
		t.Fatal("no declined order had promotional units; the test proves nothing about giving them back")
	}
	sold, counters, err = p.Store.PromoCounters(t.Context(), hotSKU, "winter-30")
	if err != nil || sold != 500-wantBack {
		t.Fatalf("after cancellations Redis sold %d (%v), want %d", sold, err, 500-wantBack)
	}
	for c, n := range declinedPromo {
		if counters[c] != perCustomer[c]-n {
			t.Fatalf("allowance of %s: counter %d, want %d", c, counters[c], perCustomer[c]-n)
		}
	}
	// Postgres records every line's price and promotion; the report counts confirmed orders.
	var pgUnits, pgRevenue, cancelledPromo int64
	if err := p.Pool.QueryRow(t.Context(), `
SELECT coalesce(sum(l.quantity) FILTER (WHERE o.status = 'confirmed'), 0),
       coalesce(sum(l.quantity * l.unit_price_minor) FILTER (WHERE o.status = 'confirmed'), 0),
       coalesce(sum(l.quantity) FILTER (WHERE o.status = 'cancelled'), 0)
FROM order_lines l JOIN orders o ON o.id = l.order_id WHERE l.promotion_id = 'winter-30'`).Scan(&pgUnits, &pgRevenue, &cancelledPromo); err != nil {
		t.Fatal(err)
	}
	if pgUnits != 500-wantBack || pgRevenue != pgUnits*7000 || cancelledPromo != wantBack {
		t.Fatalf("Postgres: confirmed promotional units %d revenue %d, cancelled %d; want %d, %d, %d",
			pgUnits, pgRevenue, cancelledPromo, 500-wantBack, (500-wantBack)*7000, wantBack)
	}
	code, body = httpJSON(t, client, http.MethodGet, p.API.URL+"/v1/reports/promotions?promotion_id=winter-30", p.Keys["reports"], nil)
	var rep struct {
		Items []struct {
			PromotionID  string `json:"promotion_id"`
			Units        int64  `json:"units"`
			RevenueMinor int64  `json:"revenue_minor"`
		} `json:"items"`
	}
	if err := json.Unmarshal(body, &rep); err != nil || code != http.StatusOK || len(rep.Items) != 1 ||
		rep.Items[0].Units != pgUnits || rep.Items[0].RevenueMinor != pgRevenue {
		t.Fatalf("promotion report: %d %s, want %d units and %d revenue", code, body, pgUnits, pgRevenue)
	}

	// The returned allowance is usable again: a declined customer buys promotional units anew.
	var again string
	for c, n := range declinedPromo {
		if n > 0 {
			again = c
			break
		}
	}
	var o acceptedOrder
	p.PlaceEach(t, 1, 1, func(int) []byte { return customerOrder(again, "tok_visa_4242", hotSKU, 4) }, func(_ int, _ []byte, a testenv.Answer) {
		if a.Status != http.StatusAccepted {
			t.Fatalf("new order of %s: %d %s", again, a.Status, a.Body)
		}
		_ = json.Unmarshal(a.Body, &o)
	})
	pu, _ := o.promoUnits(t, "winter-30", 10000, 7000)
	if want := min(4-(perCustomer[again]-declinedPromo[again]), wantBack); pu != want {
		t.Fatalf("customer %s got %d promotional units back, want %d", again, pu, want)
	}
}

// Acceptance: a promotion that starts and ends while orders arrive prices each order by the rule
// in effect at its acceptance time (placed_at, in milliseconds): promotional when
// starts_at <= placed_at < ends_at, the base price otherwise.
func TestPromotionWindowPricesByAcceptanceTime(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{products: promoProducts, stock: map[string]int64{hotSKU: 100000, "TYR-WINTER-7002": 10, "BRK-PAD-7003": 10}})
	// Far enough ahead that creating the promotion ends well before it starts, even on a busy
	// machine; the orders then run before, during and after the window.
	start := time.Now().Add(3 * time.Second).Truncate(time.Millisecond)
	end := start.Add(2 * time.Second)
	r := b.do(t, http.MethodPost, "/v1/promotions", b.catalog, nil, mustJSON(map[string]any{
		"id": "flash-window", "name": "Flash", "kind": "fixed", "fixed_price_minor": 5000, "skus": []string{hotSKU},
		"starts_at": start.Format(time.RFC3339Nano), "ends_at": end.Format(time.RFC3339Nano),
	}))
	if r.status != http.StatusCreated {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	var mu sync.Mutex
	var all []acceptedOrder
	var wg sync.WaitGroup
	stop := end.Add(1500 * time.Millisecond)
	for g := range 4 {
		wg.Go(func() {
			for i := 0; time.Now().Before(stop); i++ {
				r := b.place(t, uuid.NewString(), customerOrder(fmt.Sprintf("c-%d-%d", g, i), "tok_visa_4242", hotSKU, 1))
				if r.status != http.StatusAccepted {
					t.Errorf("place: %d %s", r.status, r.body)
					return
				}
				var o acceptedOrder
				r.json(t, &o)
				mu.Lock()
				all = append(all, o)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	var before, during, after int
	for _, o := range all {
		inWindow := !o.PlacedAt.Before(start) && o.PlacedAt.Before(end)
		want := int64(10000)
		if inWindow {
			want = 5000
		}
		if len(o.Lines) != 1 || o.Lines[0].UnitPriceMinor != want || (o.Lines[0].PromotionID == "flash-window") != inWindow {
			t.Fatalf("order placed at %s (window [%s, %s)): lines %+v, want unit price %d",
				o.PlacedAt.Format(time.RFC3339Nano), start.Format(time.RFC3339Nano), end.Format(time.RFC3339Nano), o.Lines, want)
		}
		switch {
		case o.PlacedAt.Before(start):
			before++
		case inWindow:
			during++
		default:
			after++
		}
	}
	if before == 0 || during == 0 || after == 0 {
		t.Fatalf("orders before/during/after the window: %d/%d/%d; want some in each", before, during, after)
	}
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// Acceptance: catalog reads answer 304 to a current ETag, and their ETag changes when the
// price (a promotion starts) or the stock (a sale) changes. They show the effective price,
// select fields, filter by category and brand, page with a cursor, and gzip on request.
func TestCatalogETagFollowsPriceAndStock(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{products: promoProducts, stock: map[string]int64{hotSKU: 50, "TYR-WINTER-7002": 0, "BRK-PAD-7003": 10}})
	path := "/v1/products/" + hotSKU
	type item struct {
		SKU                 string     `json:"sku"`
		PriceMinor          int64      `json:"price_minor"`
		EffectivePriceMinor int64      `json:"effective_price_minor"`
		PromotionID         string     `json:"promotion_id"`
		PromotionEndsAt     *time.Time `json:"promotion_ends_at"`
		Available           *int64     `json:"available"`
		Availability        string     `json:"availability"`
	}
	get := func(etag string) (response, item) {
		r := b.do(t, http.MethodGet, path, "", map[string]string{"If-None-Match": etag}, nil)
		var it item
		if r.status == http.StatusOK {
			r.json(t, &it)
		}
		return r, it
	}
	r, it := get("")
	etag := r.header.Get("ETag")
	if r.status != http.StatusOK || etag == "" || it.EffectivePriceMinor != 10000 || it.Available == nil || *it.Available != 50 || it.Availability != "in_stock" {
		t.Fatalf("first read: %d %s ETag %q", r.status, r.body, etag)
	}
	if cc := r.header.Get("Cache-Control"); cc != "public, max-age=5" {
		t.Fatalf("Cache-Control %q, want public, max-age=5", cc)
	}
	if r, _ := get(etag); r.status != http.StatusNotModified {
		t.Fatalf("If-None-Match with the current ETag: %d, want 304", r.status)
	}

	// The price changes: a promotion starts now.
	ends := time.Now().Add(time.Hour).Truncate(time.Millisecond)
	cr := b.do(t, http.MethodPost, "/v1/promotions", b.catalog, nil, mustJSON(map[string]any{
		"id": "tyres-20", "name": "Tyres -20%", "kind": "percent", "percent_off": 20, "category": "tyres",
		"starts_at": time.Now().Add(-time.Second).Format(time.RFC3339Nano), "ends_at": ends.Format(time.RFC3339Nano),
	}))
	if cr.status != http.StatusCreated {
		t.Fatalf("create promotion: %d %s", cr.status, cr.body)
	}
	r, it = get(etag)
	if r.status != http.StatusOK || r.header.Get("ETag") == etag || it.EffectivePriceMinor != 8000 || it.PriceMinor != 10000 ||
		it.PromotionID != "tyres-20" || it.PromotionEndsAt == nil || !it.PromotionEndsAt.Equal(ends) {
		t.Fatalf("after the promotion started: %d %s (ETag %q, old %q)", r.status, r.body, r.header.Get("ETag"), etag)
	}
	etag = r.header.Get("ETag")
	if r, _ := get(etag); r.status != http.StatusNotModified {
		t.Fatalf("If-None-Match after the price change: %d, want 304", r.status)
	}

	// The stock changes: a sale.
	if pr := b.place(t, uuid.NewString(), customerOrder("c-1", "tok_visa_4242", hotSKU, 2)); pr.status != http.StatusAccepted {
		t.Fatalf("place: %d %s", pr.status, pr.body)
	}
	r, it = get(etag)
	if r.status != http.StatusOK || r.header.Get("ETag") == etag || *it.Available != 48 {
		t.Fatalf("after a sale: %d %s (ETag %q, old %q)", r.status, r.body, r.header.Get("ETag"), etag)
	}

	// Lists: filters, fields, cursor.
	lr := b.do(t, http.MethodGet, "/v1/products?category=tyres&brand=Michelin&fields=effective_price_minor,availability", "", nil, nil)
	var page struct {
		Items      []map[string]any `json:"items"`
		NextCursor string           `json:"next_cursor"`
	}
	lr.json(t, &page)
	if lr.status != http.StatusOK || len(page.Items) != 1 || len(page.Items[0]) != 3 ||
		page.Items[0]["sku"] != "TYR-WINTER-7002" || page.Items[0]["effective_price_minor"] != float64(6400) || page.Items[0]["availability"] != "out_of_stock" {
		t.Fatalf("filtered list: %d %s", lr.status, lr.body)
	}
	if r := b.do(t, http.MethodGet, "/v1/products?fields=colour", "", nil, nil); r.status != http.StatusBadRequest {
		t.Fatalf("unknown field: %d, want 400", r.status)
	}
	var skus []string
	cursor := ""
	for range 5 {
		lr := b.do(t, http.MethodGet, "/v1/products?limit=1&fields=sku&cursor="+cursor, "", nil, nil)
		page.Items, page.NextCursor = nil, ""
		lr.json(t, &page)
		for _, it := range page.Items {
			skus = append(skus, it["sku"].(string))
		}
		if cursor = page.NextCursor; cursor == "" {
			break
		}
	}
	if fmt.Sprint(skus) != "[BRK-PAD-7003 TYR-WINTER-7001 TYR-WINTER-7002]" {
		t.Fatalf("paged SKUs %v", skus)
	}

	// gzip, read without the conformance transport (it would see compressed bytes).
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, b.url+"/v1/products", nil)
	req.Header.Set("Accept-Encoding", "gzip")
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.Header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("Content-Encoding %q, want gzip", resp.Header.Get("Content-Encoding"))
	}
	zr, err := gzip.NewReader(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(zr)
	page.Items = nil
	if err := json.Unmarshal(raw, &page); err != nil || len(page.Items) != 3 {
		t.Fatalf("gzip body: %v %s", err, raw)
	}
}

// The promotions API: create, read, change, end, and the 409 of a promotion that refuses
// over-cap units; bad input is a 422 naming the fields, unknown ids 404.
func TestPromotionsAPI(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{products: promoProducts, stock: map[string]int64{hotSKU: 100, "TYR-WINTER-7002": 10, "BRK-PAD-7003": 10}})
	type doc struct {
		ID            string    `json:"id"`
		Status        string    `json:"status"`
		StartsAt      time.Time `json:"starts_at"`
		StartsAtLocal string    `json:"starts_at_local"`
		StockCap      int64     `json:"stock_cap"`
		OverCap       string    `json:"over_cap"`
	}
	r := b.do(t, http.MethodPost, "/v1/promotions", b.catalog, nil, mustJSON(map[string]any{
		"id": "brakes-fixed", "name": "Pads for 39.90", "kind": "fixed", "fixed_price_minor": 3990, "skus": []string{"BRK-PAD-7003"},
		"starts_at": "2026-01-01T08:00:00+01:00", "ends_at": "2099-01-01T00:00:00Z", "time_zone": "Europe/Berlin",
		"stock_cap": 2, "over_cap": "refuse",
	}))
	var d doc
	r.json(t, &d)
	if r.status != http.StatusCreated || d.Status != "active" || !d.StartsAt.Equal(time.Date(2026, 1, 1, 7, 0, 0, 0, time.UTC)) ||
		d.StartsAtLocal != "2026-01-01T08:00:00.000+01:00" || r.header.Get("Location") != "/v1/promotions/brakes-fixed" {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	if r := b.do(t, http.MethodPost, "/v1/promotions", b.catalog, nil, r.body[:0]); r.status != http.StatusBadRequest {
		t.Fatalf("empty body: %d", r.status)
	}
	if r := b.do(t, http.MethodGet, "/v1/promotions", b.writer, nil, nil); r.status != http.StatusForbidden {
		t.Fatalf("without catalog:write: %d, want 403", r.status)
	}
	bad := b.do(t, http.MethodPost, "/v1/promotions", b.catalog, nil, mustJSON(map[string]any{
		"name": "x", "kind": "percent", "percent_off": 120, "skus": []string{"BRK-PAD-7003"}, "starts_at": "tomorrow", "ends_at": "2099-01-01T00:00:00Z",
	}))
	if bad.status != http.StatusUnprocessableEntity || bad.problem(t).fields()["starts_at"] == "" || bad.problem(t).Type != "https://orderpipe.dev/problems/invalid-promotion" {
		t.Fatalf("bad input: %d %s", bad.status, bad.body)
	}
	bad = b.do(t, http.MethodPost, "/v1/promotions", b.catalog, nil, []byte(`{"name":"x","kind":"percent","percent_off":"ten","discount_code":"X"}`))
	if p := bad.problem(t); bad.status != http.StatusUnprocessableEntity || p.Type != "https://orderpipe.dev/problems/invalid-promotion" || p.fields()["discount_code"] == "" {
		t.Fatalf("unknown field and wrong type: %d %s, want 422 invalid-promotion naming discount_code", bad.status, bad.body)
	}
	bad = b.do(t, http.MethodPost, "/v1/promotions", b.catalog, nil, mustJSON(map[string]any{
		"name": "x", "kind": "percent", "percent_off": 120, "skus": []string{"BRK-PAD-7003"}, "starts_at": "2099-01-02T00:00:00Z", "ends_at": "2099-01-01T00:00:00Z",
	}))
	if f := bad.problem(t).fields(); bad.status != http.StatusUnprocessableEntity || f["percent_off"] == "" || f["ends_at"] == "" {
		t.Fatalf("bad input: %d %s", bad.status, bad.body)
	}
	if r := b.do(t, http.MethodPost, "/v1/promotions", b.catalog, nil, mustJSON(map[string]any{
		"id": "brakes-fixed", "name": "again", "kind": "fixed", "fixed_price_minor": 1, "skus": []string{"BRK-PAD-7003"},
		"starts_at": "2026-01-01T08:00:00Z", "ends_at": "2099-01-01T00:00:00Z",
	})); r.status != http.StatusConflict {
		t.Fatalf("duplicate id: %d %s", r.status, r.body)
	}

	// Refuse mode: 2 promotional units; an order of 3 is refused whole, holding nothing.
	r = b.place(t, uuid.NewString(), customerOrder("c-1", "tok_visa_4242", "BRK-PAD-7003", 3))
	p := r.problem(t)
	if r.status != http.StatusConflict || p.Type != "https://orderpipe.dev/problems/promotion-limit" {
		t.Fatalf("over the cap with refuse: %d %s", r.status, r.body)
	}
	if st := b.stockOf(t, "BRK-PAD-7003"); st.ATP != 10 || st.Held != 0 {
		t.Fatalf("refused order left atp %d held %d", st.ATP, st.Held)
	}
	r = b.place(t, uuid.NewString(), customerOrder("c-1", "tok_visa_4242", "BRK-PAD-7003", 2))
	var o acceptedOrder
	r.json(t, &o)
	if pu, _ := o.promoUnits(t, "brakes-fixed", 4990, 3990); r.status != http.StatusAccepted || pu != 2 {
		t.Fatalf("within the cap: %d %s", r.status, r.body)
	}
	// The catalog shows it as orders see it: nothing can be bought until the window ends.
	b.waitShelf(t, "BRK-PAD-7003", "cap used up with refuse", func(s shelf) bool {
		return s.EffectivePriceMinor == 3990 && s.PromotionID == "brakes-fixed" && s.PromotionRemaining != nil && *s.PromotionRemaining == 0 &&
			s.Available != nil && *s.Available == 0 && s.Availability == "out_of_stock"
	})

	// PATCH: switch to base over the cap, raise it; the next order is split.
	r = b.do(t, http.MethodPatch, "/v1/promotions/brakes-fixed", b.catalog, nil, mustJSON(map[string]any{"over_cap": "base", "stock_cap": 3}))
	r.json(t, &d)
	if r.status != http.StatusOK || d.OverCap != "base" || d.StockCap != 3 {
		t.Fatalf("patch: %d %s", r.status, r.body)
	}
	b.waitShelf(t, "BRK-PAD-7003", "one promotional unit left", func(s shelf) bool {
		return s.EffectivePriceMinor == 3990 && s.PromotionID == "brakes-fixed" && s.PromotionRemaining != nil && *s.PromotionRemaining == 1 &&
			s.Available != nil && *s.Available == 8
	})
	r = b.place(t, uuid.NewString(), customerOrder("c-2", "tok_visa_4242", "BRK-PAD-7003", 3))
	o = acceptedOrder{}
	r.json(t, &o)
	if pu, all := o.promoUnits(t, "brakes-fixed", 4990, 3990); r.status != http.StatusAccepted || pu != 1 || all != 3 || len(o.Lines) != 2 {
		t.Fatalf("split order: %d %s", r.status, r.body)
	}
	// Cap used up with base: the catalog shows the base price the next order pays.
	b.waitShelf(t, "BRK-PAD-7003", "cap used up with base", func(s shelf) bool {
		return s.EffectivePriceMinor == 4990 && s.PriceMinor == 4990 && s.PromotionID == "" && s.PromotionEndsAt == nil &&
			s.PromotionRemaining == nil && s.Available != nil && *s.Available == 5
	})
	if r := b.do(t, http.MethodPatch, "/v1/promotions/nope", b.catalog, nil, mustJSON(map[string]any{"name": "x"})); r.status != http.StatusNotFound {
		t.Fatalf("patch unknown: %d", r.status)
	}

	// DELETE ends it now: the next order pays the base price; it stays listed.
	r = b.do(t, http.MethodDelete, "/v1/promotions/brakes-fixed", b.catalog, nil, nil)
	r.json(t, &d)
	if r.status != http.StatusOK || d.Status != "ended" {
		t.Fatalf("end: %d %s", r.status, r.body)
	}
	r = b.place(t, uuid.NewString(), customerOrder("c-3", "tok_visa_4242", "BRK-PAD-7003", 1))
	o = acceptedOrder{}
	r.json(t, &o)
	if pu, _ := o.promoUnits(t, "brakes-fixed", 4990, 3990); r.status != http.StatusAccepted || pu != 0 {
		t.Fatalf("after the end: %d %s", r.status, r.body)
	}
	var list struct {
		Items []doc `json:"items"`
	}
	r = b.do(t, http.MethodGet, "/v1/promotions", b.catalog, nil, nil)
	r.json(t, &list)
	if len(list.Items) != 1 || list.Items[0].Status != "ended" {
		t.Fatalf("list: %s", r.body)
	}
	r = b.do(t, http.MethodGet, "/v1/promotions?status=live", b.catalog, nil, nil)
	list.Items = nil
	r.json(t, &list)
	if len(list.Items) != 0 {
		t.Fatalf("live list: %s", r.body)
	}
	if r := b.do(t, http.MethodGet, "/v1/promotions/brakes-fixed", b.catalog, nil, nil); r.status != http.StatusOK {
		t.Fatalf("get: %d", r.status)
	}
}

// shelf is a product as GET /v1/products/{sku} shows it.
type shelf = httpapi.ProductView

// waitShelf reads the product until ok accepts it (the api's price cache follows a promotion
// change through pub/sub, so right after one it may still show the previous timeline).
func (b *bundle) waitShelf(t *testing.T, sku, what string, ok func(shelf) bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := b.do(t, http.MethodGet, "/v1/products/"+sku, "", nil, nil)
		var s shelf
		if r.status == http.StatusOK {
			r.json(t, &s)
			if ok(s) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: catalog shows %d %s", what, r.status, r.body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

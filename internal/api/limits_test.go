package api_test

import (
	"math"
	"net/http"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/orderpipe/orderpipe/internal/event"
	"github.com/orderpipe/orderpipe/internal/postgres"
)

// A promotion window shorter than the minimum is a 422 naming the rule, not a 500 from the
// check constraint (ends_at 1 ns after starts_at was equal once stored at microseconds).
func TestPromotionMinimumWindow(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	for _, ends := range []string{"2099-01-01T00:00:00.000000001Z", "2099-01-01T00:00:00.999999Z"} {
		r := b.do(t, http.MethodPost, "/v1/promotions", b.catalog, nil, []byte(`{"name":"Blink","kind":"percent","percent_off":10,"skus":["BRK-PAD-1001"],`+
			`"starts_at":"2099-01-01T00:00:00Z","ends_at":"`+ends+`","time_zone":"UTC","over_cap":"base"}`))
		if r.status != http.StatusUnprocessableEntity {
			t.Fatalf("ends_at %s: %d %s, want 422", ends, r.status, r.body)
		}
		if d := r.problem(t).fields()["ends_at"]; !strings.Contains(d, "1 second") {
			t.Errorf("ends_at %s: detail %q does not name the minimum window", ends, d)
		}
	}
	r := b.do(t, http.MethodPost, "/v1/promotions", b.catalog, nil, []byte(`{"name":"Second","kind":"percent","percent_off":10,"skus":["BRK-PAD-1001"],`+
		`"starts_at":"2099-01-01T00:00:00Z","ends_at":"2099-01-01T00:00:01Z","time_zone":"UTC","over_cap":"base"}`))
	if r.status != http.StatusCreated {
		t.Fatalf("a one-second window: %d %s, want 201", r.status, r.body)
	}
}

// Prices, quantities and totals have upper bounds every consumer can store and add up; above
// them the request is a 422 (issue 15: a price of MaxInt64 was confirmed and charged, then the
// reports consumer failed with bigint out of range).
func TestAmountUpperBounds(t *testing.T) {
	t.Parallel()
	huge := postgres.Product{SKU: "GLD-WHEEL-9001", Name: "Golden wheel", Category: "wheels", Brand: "Midas", PriceMinor: math.MaxInt64, Currency: "EUR", Active: true}
	b := setup(t, setupOpts{products: append(append([]postgres.Product{}, testProducts...), huge),
		stock: map[string]int64{"BRK-PAD-1001": 100, "GLD-WHEEL-9001": 10}})
	for _, price := range []string{"9223372036854775807", "100000001", "1e12"} {
		r := b.do(t, http.MethodPut, "/v1/products/SPK-NGK-7001", b.catalog, nil,
			[]byte(`{"name":"Spark plug","category":"spark-plugs","brand":"NGK","price_minor":`+price+`,"currency":"EUR","active":true}`))
		if r.status != http.StatusUnprocessableEntity || r.problem(t).fields()["price_minor"] == "" {
			t.Errorf("price_minor %s: %d %s, want 422 naming price_minor", price, r.status, r.body)
		}
	}
	if r := b.do(t, http.MethodPut, "/v1/products/SPK-NGK-7001", b.catalog, nil,
		[]byte(`{"name":"Spark plug","category":"spark-plugs","brand":"NGK","price_minor":100000000,"currency":"EUR","active":true}`)); r.status != http.StatusOK {
		t.Errorf("price_minor at the bound: %d %s, want 200", r.status, r.body)
	}
	r := b.do(t, http.MethodPost, "/v1/promotions", b.catalog, nil, []byte(`{"name":"Gold","kind":"fixed","fixed_price_minor":9223372036854775807,"skus":["BRK-PAD-1001"],`+
		`"starts_at":"2099-01-01T00:00:00Z","ends_at":"2099-02-01T00:00:00Z","time_zone":"UTC","over_cap":"base"}`))
	if r.status != http.StatusUnprocessableEntity || r.problem(t).fields()["fixed_price_minor"] == "" {
		t.Errorf("fixed_price_minor MaxInt64: %d %s, want 422 naming fixed_price_minor", r.status, r.body)
	}
	// A product priced above the bound before the bound existed cannot be ordered.
	r = b.place(t, uuid.NewString(), orderBody("GLD-WHEEL-9001", 1))
	if r.status != http.StatusUnprocessableEntity {
		t.Fatalf("order of a MaxInt64-priced product: %d %s, want 422", r.status, r.body)
	}
	if held := b.totalHeld(t, "GLD-WHEEL-9001"); held != 0 {
		t.Fatalf("%d units held after the refusal, want 0", held)
	}
	if n := len(b.records(t, event.TopicOrdersPlaced)); n != 0 {
		t.Fatalf("%d orders produced, want 0", n)
	}
	r = b.place(t, uuid.NewString(), []byte(strings.Replace(string(orderBody("BRK-PAD-1001", 1)), `"quantity":1`, `"quantity":9223372036854775807`, 1)))
	if r.status != http.StatusUnprocessableEntity || r.problem(t).fields()["lines[0].quantity"] == "" {
		t.Errorf("quantity MaxInt64: %d %s, want 422 naming lines[0].quantity", r.status, r.body)
	}
}

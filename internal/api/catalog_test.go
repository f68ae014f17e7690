package api_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/google/uuid"
)

func TestInventoryETagAndCacheControl(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	r := b.do(t, http.MethodGet, "/v1/inventory/BAT-70AH-3001", "", nil, nil)
	var a struct {
		SKU       string `json:"sku"`
		Available int64  `json:"available"`
		Status    string `json:"status"`
	}
	r.json(t, &a)
	if r.status != http.StatusOK || a.Available != 5 || a.Status != "low_stock" {
		t.Fatalf("%d %s, want 200 with 5 low_stock", r.status, r.body)
	}
	etag := r.header.Get("ETag")
	if etag == "" || r.header.Get("Cache-Control") != "public, max-age=2" {
		t.Fatalf("ETag %q Cache-Control %q", etag, r.header.Get("Cache-Control"))
	}
	if r := b.do(t, http.MethodGet, "/v1/inventory/BAT-70AH-3001", "", map[string]string{"If-None-Match": etag}, nil); r.status != http.StatusNotModified {
		t.Fatalf("If-None-Match with the current ETag: %d, want 304", r.status)
	}
	// Selling a unit changes the ETag.
	if r := b.place(t, uuid.NewString(), orderBody("BAT-70AH-3001", 1)); r.status != http.StatusAccepted {
		t.Fatalf("place: %d %s", r.status, r.body)
	}
	r = b.do(t, http.MethodGet, "/v1/inventory/BAT-70AH-3001", "", map[string]string{"If-None-Match": etag}, nil)
	r.json(t, &a)
	if r.status != http.StatusOK || a.Available != 4 || r.header.Get("ETag") == etag {
		t.Fatalf("after a sale: %d %s ETag %q (old %q)", r.status, r.body, r.header.Get("ETag"), etag)
	}
	r = b.do(t, http.MethodGet, "/v1/inventory/TYR-2055516-5001", "", nil, nil)
	r.json(t, &a)
	if a.Status != "out_of_stock" || a.Available != 0 {
		t.Fatalf("sold-out SKU: %s", r.body)
	}
	r = b.do(t, http.MethodGet, "/v1/inventory/BRK-PAD-1001", "", nil, nil)
	r.json(t, &a)
	if a.Status != "in_stock" || a.Available != 100 {
		t.Fatalf("in-stock SKU: %s", r.body)
	}
	if r := b.do(t, http.MethodGet, "/v1/inventory/NOPE-404", "", nil, nil); r.status != http.StatusNotFound {
		t.Fatalf("unknown SKU: %d, want 404", r.status)
	}
}

func TestProductsPaginationFilterAndPut(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	type page struct {
		Items []struct {
			SKU        string `json:"sku"`
			Category   string `json:"category"`
			PriceMinor int64  `json:"price_minor"`
		} `json:"items"`
		NextCursor string `json:"next_cursor"`
	}
	var all []string
	cursor := ""
	for range 10 {
		r := b.do(t, http.MethodGet, "/v1/products?limit=2&cursor="+cursor, "", nil, nil)
		var p page
		r.json(t, &p)
		if r.status != http.StatusOK || len(p.Items) > 2 {
			t.Fatalf("%d %s", r.status, r.body)
		}
		for _, it := range p.Items {
			all = append(all, it.SKU)
		}
		if p.NextCursor == "" {
			break
		}
		cursor = p.NextCursor
	}
	if len(all) != len(testProducts) {
		t.Fatalf("paged through %d products, want %d: %v", len(all), len(testProducts), all)
	}
	r := b.do(t, http.MethodGet, "/v1/products?category=brakes", "", nil, nil)
	var brakes page
	r.json(t, &brakes)
	if len(brakes.Items) != 2 {
		t.Fatalf("brakes: %s", r.body)
	}
	for _, bad := range []string{"?limit=0", "?limit=500", "?limit=x", "?cursor=%25%25"} {
		if r := b.do(t, http.MethodGet, "/v1/products"+bad, "", nil, nil); r.status != http.StatusBadRequest {
			t.Errorf("GET /v1/products%s: %d, want 400", bad, r.status)
		}
	}

	// PUT needs catalog:write, validates, and is visible at once; the new product starts
	// with no stock, so an order for it is an honest 409.
	body, _ := json.Marshal(map[string]any{"name": "Spark plug", "category": "spark-plugs", "brand": "NGK", "price_minor": 699, "currency": "EUR", "active": true})
	if r := b.do(t, http.MethodPut, "/v1/products/SPK-NGK-7001", b.writer, nil, body); r.status != http.StatusForbidden {
		t.Fatalf("PUT with orders key: %d, want 403", r.status)
	}
	if r := b.do(t, http.MethodPut, "/v1/products/SPK-NGK-7001", b.catalog, nil, body); r.status != http.StatusOK {
		t.Fatalf("PUT: %d %s", r.status, r.body)
	}
	if r := b.do(t, http.MethodGet, "/v1/products/SPK-NGK-7001", "", nil, nil); r.status != http.StatusOK {
		t.Fatalf("GET after PUT: %d %s", r.status, r.body)
	}
	if r := b.place(t, uuid.NewString(), orderBody("SPK-NGK-7001", 1)); r.status != http.StatusConflict {
		t.Fatalf("order for a product without stock: %d %s, want 409", r.status, r.body)
	}
	bad, _ := json.Marshal(map[string]any{"name": "", "category": "x", "brand": "y", "price_minor": -5, "currency": "euro"})
	r = b.do(t, http.MethodPut, "/v1/products/SPK-NGK-7001", b.catalog, nil, bad)
	if r.status != http.StatusUnprocessableEntity {
		t.Fatalf("invalid PUT: %d %s", r.status, r.body)
	}
	if p := r.problem(t); p.Type != "https://orderpipe.dev/problems/invalid-product" || p.Title != "Invalid product" {
		t.Errorf("invalid PUT: type %s, title %q; want invalid-product, Invalid product", p.Type, p.Title)
	}
	f := r.problem(t).fields()
	for _, want := range []string{"name", "price_minor", "currency", "active"} {
		if f[want] == "" {
			t.Errorf("invalid PUT does not name %s: %v", want, f)
		}
	}
	// Decoding errors (an unknown field, a wrong type) are the product's invalid fields too.
	bad = []byte(`{"name":"Spark plug","category":"spark-plugs","brand":"NGK","price_minor":"cheap","currency":"EUR","active":true,"colour":"red"}`)
	r = b.do(t, http.MethodPut, "/v1/products/SPK-NGK-7001", b.catalog, nil, bad)
	if p := r.problem(t); r.status != http.StatusUnprocessableEntity || p.Type != "https://orderpipe.dev/problems/invalid-product" ||
		p.fields()["colour"] == "" || p.fields()["price_minor"] == "" {
		t.Errorf("PUT with an unknown field and a wrong type: %d %s, want 422 invalid-product naming colour and price_minor", r.status, r.body)
	}
}

func TestHealthAndMetrics(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	for _, path := range []string{"/livez", "/healthz"} {
		if r := b.do(t, http.MethodGet, path, "", nil, nil); r.status != http.StatusOK {
			t.Fatalf("%s %d", path, r.status)
		}
	}
	r := b.do(t, http.MethodGet, "/readyz", "", nil, nil)
	var ready struct {
		Status string            `json:"status"`
		Checks map[string]string `json:"checks"`
	}
	r.json(t, &ready)
	if r.status != http.StatusOK || ready.Status != "ok" || ready.Checks["postgres"] != "ok" || ready.Checks["redis"] != "ok" || ready.Checks["kafka"] != "ok" {
		t.Fatalf("readyz %d %s", r.status, r.body)
	}
	b.place(t, uuid.NewString(), orderBody("BRK-PAD-1001", 1))
	m := b.do(t, http.MethodGet, "/metrics", "", nil, nil)
	for _, want := range []string{
		`orderpipe_http_requests_total{code="202",method="POST",route="/v1/orders"} 1`,
		`orderpipe_intake_orders_total{outcome="accepted"} 1`,
		`orderpipe_intake_produce_seconds_count 1`,
		`orderpipe_http_request_duration_seconds_bucket`,
		`orderpipe_kafka_`,
	} {
		if !contains(m.body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

func contains(b []byte, s string) bool { return strings.Contains(string(b), s) }

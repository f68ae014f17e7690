package api_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/orderpipe/orderpipe/internal/event"
)

// mutateOrder returns a valid order body changed by f.
func mutateOrder(t *testing.T, f func(m map[string]any)) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(orderBody("BRK-PAD-1001", 1), &m); err != nil {
		t.Fatal(err)
	}
	f(m)
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func address(m map[string]any) map[string]any { return m["shipping_address"].(map[string]any) }

// Text that Postgres cannot store or that readers disagree about is refused at the door, naming
// the field (issue 15: NUL in customer_id was accepted and charged; invalid UTF-8 was stored as
// U+FFFD; a duplicate key let the last one win).
func TestOrderTextIsStrict(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	tests := []struct {
		name  string
		body  []byte
		field string
	}{
		{"NUL in customer_id", mutateOrder(t, func(m map[string]any) { m["customer_id"] = "c-1001\x00x" }), "customer_id"},
		{"NUL in shipping_address.name", mutateOrder(t, func(m map[string]any) { address(m)["name"] = "Ada\x00Buyer" }), "shipping_address.name"},
		{"unit separator in line1", mutateOrder(t, func(m map[string]any) { address(m)["line1"] = "Hauptstr.\x1f1" }), "shipping_address.line1"},
		{"newline in city", mutateOrder(t, func(m map[string]any) { address(m)["city"] = "Ber\nlin" }), "shipping_address.city"},
		{"C1 control in name", mutateOrder(t, func(m map[string]any) { address(m)["name"] = "Ada\u0085" }), "shipping_address.name"},
		{"escape in email", mutateOrder(t, func(m map[string]any) { m["email"] = "buyer\x1b@example.com" }), "email"},
		{"duplicate customer_id", bytes.Replace(orderBody("BRK-PAD-1001", 1), []byte(`"customer_id":"c-1001"`), []byte(`"customer_id":"c-1001","customer_id":"c-2002"`), 1), "customer_id"},
		{"duplicate nested key", bytes.Replace(orderBody("BRK-PAD-1001", 1), []byte(`"quantity":1`), []byte(`"quantity":1,"quantity":900`), 1), "lines[0].quantity"},
		{"invalid UTF-8 in name", bytes.Replace(orderBody("BRK-PAD-1001", 1), []byte("Ada Buyer"), []byte("Ada \xff\xfeBuyer"), 1), ""},
		{"lone surrogate escape", bytes.Replace(orderBody("BRK-PAD-1001", 1), []byte("Ada Buyer"), []byte(`Ada \ud800Buyer`), 1), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := b.place(t, uuid.NewString(), tt.body)
			if r.status != http.StatusUnprocessableEntity {
				t.Fatalf("status %d %s, want 422", r.status, r.body)
			}
			p := r.problem(t)
			if !strings.HasSuffix(p.Type, "/invalid-order") {
				t.Fatalf("type %s, want invalid-order", p.Type)
			}
			if _, ok := p.fields()[tt.field]; !ok {
				t.Fatalf("problem does not name %q: %s", tt.field, r.body)
			}
		})
	}
	if held := b.totalHeld(t, "BRK-PAD-1001"); held != 0 {
		t.Fatalf("%d units held after refusals, want 0", held)
	}
	if n := len(b.records(t, event.TopicOrdersPlaced)); n != 0 {
		t.Fatalf("%d orders produced, want 0", n)
	}
}

// Every field of the wrong type is listed, not only the first (docs/errors.md).
func TestEveryWrongTypeIsListed(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	body := []byte(`{"customer_id":1001,"email":["x"],"priority":true,"lines":[{"sku":"BRK-PAD-1001","quantity":"one"},{"sku":7,"quantity":1.5}],` +
		`"payment":"card","shipping_address":{"name":"Ada","line1":"Hauptstr. 1","city":"Berlin","postal_code":10115,"country":"DE"}}`)
	r := b.place(t, uuid.NewString(), body)
	if r.status != http.StatusUnprocessableEntity {
		t.Fatalf("status %d %s, want 422", r.status, r.body)
	}
	f := r.problem(t).fields()
	for _, want := range []string{"customer_id", "email", "priority", "lines[0].quantity", "lines[1].sku", "lines[1].quantity", "payment", "shipping_address.postal_code"} {
		if f[want] == "" {
			t.Errorf("errors do not name %s: %v", want, f)
		}
	}
	// Body of a product: every wrong type too.
	r = b.do(t, http.MethodPut, "/v1/products/SPK-NGK-7001", b.catalog, nil,
		[]byte(`{"name":1,"category":"x","brand":false,"price_minor":"cheap","currency":"EUR","active":"yes"}`))
	f = r.problem(t).fields()
	for _, want := range []string{"name", "brand", "price_minor", "active"} {
		if f[want] == "" {
			t.Errorf("product errors do not name %s: %v", want, f)
		}
	}
}

// cardForms are the forms in which card numbers reached the topics (issue 15).
var cardForms = []string{
	"tok_4242424242424242",
	"4242.4242.4242.4242",
	"4242_4242_4242_4242",
	"4242/4242/4242/4242",
	"4242\t4242\t4242\t4242",
	"4242\n4242\n4242\n4242",
	"4242\u00a04242\u00a04242\u00a04242",
	"４２４２４２４２４２４２４２４２",
	"cc:4242424242424242 exp 12/29 cvc 123",
	"5555 5555 5555 4444",
}

// Anything that looks like a card number, in any free-text field of any request, is refused
// with card-data-rejected, and the number appears nowhere: not in the answer, the logs, the
// topics, Redis or Postgres.
func TestCardDataIsRefusedAndLeavesNoTrace(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{env: map[string]string{"CATALOG_REFRESH_INTERVAL": "100ms"}})
	wh := warehouseKey(t, b)
	type req struct {
		name        string
		method, url string
		token       string
		body        func(card string) []byte
		field       string
	}
	str := func(v any) string { s, _ := json.Marshal(v); return string(s) }
	reqs := []req{
		{"order token", http.MethodPost, "/v1/orders", b.writer, func(c string) []byte {
			return mutateOrder(t, func(m map[string]any) { m["payment"].(map[string]any)["token"] = c })
		}, "payment.token"},
		{"order name", http.MethodPost, "/v1/orders", b.writer, func(c string) []byte {
			return mutateOrder(t, func(m map[string]any) { address(m)["name"] = c })
		}, "shipping_address.name"},
		{"order line2", http.MethodPost, "/v1/orders", b.writer, func(c string) []byte {
			return mutateOrder(t, func(m map[string]any) { address(m)["line2"] = "c/o " + c })
		}, "shipping_address.line2"},
		{"order email", http.MethodPost, "/v1/orders", b.writer, func(c string) []byte {
			return mutateOrder(t, func(m map[string]any) { m["email"] = c + "@example.com" })
		}, "email"},
		{"order customer", http.MethodPost, "/v1/orders", b.writer, func(c string) []byte {
			return mutateOrder(t, func(m map[string]any) { m["customer_id"] = c })
		}, "customer_id"},
		{"product name", http.MethodPut, "/v1/products/SPK-NGK-7001", b.catalog, func(c string) []byte {
			return []byte(`{"name":` + str("Spark plug "+c) + `,"category":"spark-plugs","brand":"NGK","price_minor":699,"currency":"EUR","active":true}`)
		}, "name"},
		{"promotion name", http.MethodPost, "/v1/promotions", b.catalog, func(c string) []byte {
			return []byte(`{"name":` + str(c) + `,"kind":"percent","percent_off":10,"skus":["BRK-PAD-1001"],"starts_at":"2026-01-01T00:00:00Z","ends_at":"2099-01-01T00:00:00Z","time_zone":"UTC","over_cap":"base"}`)
		}, "name"},
		{"trade account name", http.MethodPut, "/v1/trade-accounts/garage-1", b.account, func(c string) []byte {
			return []byte(`{"name":` + str(c) + `}`)
		}, "name"},
		{"warehouse event id", http.MethodPost, "/v1/warehouse/stock", wh, func(c string) []byte {
			return stockBody(levelEvent(c, "WH-1", "BRK-PAD-1001", 1, 10))
		}, "events[0].id"},
	}
	for _, rq := range reqs {
		for i, card := range cardForms {
			t.Run(fmt.Sprintf("%s/%d", rq.name, i), func(t *testing.T) {
				r := b.do(t, rq.method, rq.url, rq.token, map[string]string{"Idempotency-Key": uuid.NewString()}, rq.body(card))
				if r.status != http.StatusUnprocessableEntity {
					t.Fatalf("status %d %s, want 422", r.status, r.body)
				}
				p := r.problem(t)
				if p.Type != "https://orderpipe.dev/problems/card-data-rejected" {
					t.Fatalf("type %s, want card-data-rejected", p.Type)
				}
				if _, ok := p.fields()[rq.field]; !ok {
					t.Errorf("problem does not name %s: %s", rq.field, r.body)
				}
				if strings.Contains(string(r.body), "4242") || strings.Contains(string(r.body), "5555") {
					t.Errorf("the answer echoes the card number: %s", r.body)
				}
			})
		}
	}
	// A card number in the path is refused as well.
	if r := b.do(t, http.MethodPut, "/v1/trade-accounts/4242-4242-4242-4242", b.account, nil, []byte(`{"name":"x"}`)); r.status != http.StatusUnprocessableEntity ||
		r.problem(t).Type != "https://orderpipe.dev/problems/card-data-rejected" || strings.Contains(string(r.body), "4242") {
		t.Errorf("card number as customer id: %d %s, want 422 card-data-rejected", r.status, r.body)
	}
	// Near-misses pass: the demo token, order ids, EANs and phone numbers.
	for _, ok := range []string{"tok_visa_4242", "tok_" + uuid.NewString(), "tok_ean_5901234123457", "tok_+49 151 2345 6789"} {
		if r := b.place(t, uuid.NewString(), mutateOrder(t, func(m map[string]any) { m["payment"].(map[string]any)["token"] = ok })); r.status != http.StatusAccepted {
			t.Errorf("token %q: %d %s, want 202", ok, r.status, r.body)
		}
	}

	// No trace anywhere. The digits of every form, normalised, are 4242... or 5555...
	traces := []string{"4242424242424242", "4242.4242", "4242_4242", "4242/4242", "4242\\t4242", "4242\\n4242", "４２４２", "5555 5555", "4242 4242"}
	found := func(where string, data []byte) {
		for _, tr := range traces {
			if bytes.Contains(data, []byte(tr)) {
				t.Errorf("%s holds %q", where, tr)
			}
		}
		if bytes.Contains(data, []byte("4242\u00a04242")) || bytes.Contains(data, []byte(`4242\u00a04242`)) {
			t.Errorf("%s holds the NBSP form", where)
		}
	}
	found("the api's logs", []byte(b.logs.String()))
	for _, topic := range []string{event.TopicOrdersPlaced, event.TopicOrdersPlacedPriority, event.TopicInventoryStock} {
		for _, rec := range b.records(t, topic) {
			found("topic "+topic, rec.Value)
		}
	}
	keys, err := b.rdb.Keys(t.Context(), b.prefix+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		found("redis key name", []byte(k))
		v, err := b.rdb.Dump(t.Context(), k).Result()
		if err == nil {
			found("redis key "+k, []byte(v))
		}
	}
	for _, table := range []string{"products", "promotions", "trade_accounts"} {
		var n int
		if err := b.pool.QueryRow(t.Context(), `SELECT count(*) FROM `+table+` x WHERE row_to_json(x)::text ~ '4242|5555|４２'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Errorf("postgres %s has %d rows with card digits", table, n)
		}
	}
}

// Control characters in catalog, promotion and trade-account requests are a 422 naming the
// field, never a 500 from Postgres (issue 15).
func TestControlsInCatalogPromotionsAndAccounts(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	tests := []struct {
		name, method, path, token string
		body                      string
		typ, field                string
	}{
		{"product name NUL", http.MethodPut, "/v1/products/SPK-NGK-7001", b.catalog,
			`{"name":"Spark\u0000plug","category":"spark-plugs","brand":"NGK","price_minor":699,"currency":"EUR","active":true}`, "invalid-product", "name"},
		{"product brand escape", http.MethodPut, "/v1/products/SPK-NGK-7001", b.catalog,
			`{"name":"Spark plug","category":"spark-plugs","brand":"NGK\u001b[31m","price_minor":699,"currency":"EUR","active":true}`, "invalid-product", "brand"},
		{"product sku NUL", http.MethodPut, "/v1/products/SPK%00NGK", b.catalog,
			`{"name":"Spark plug","category":"spark-plugs","brand":"NGK","price_minor":699,"currency":"EUR","active":true}`, "invalid-product", "sku"},
		{"promotion name NUL", http.MethodPost, "/v1/promotions", b.catalog,
			`{"name":"Winter\u0000","kind":"percent","percent_off":10,"skus":["BRK-PAD-1001"],"starts_at":"2026-01-01T00:00:00Z","ends_at":"2099-01-01T00:00:00Z","time_zone":"UTC","over_cap":"base"}`, "invalid-promotion", "name"},
		{"promotion category NUL", http.MethodPost, "/v1/promotions", b.catalog,
			`{"name":"Winter","kind":"percent","percent_off":10,"category":"tyres\u0000","starts_at":"2026-01-01T00:00:00Z","ends_at":"2099-01-01T00:00:00Z","time_zone":"UTC","over_cap":"base"}`, "invalid-promotion", "category"},
		{"promotion time zone NUL", http.MethodPost, "/v1/promotions", b.catalog,
			`{"name":"Winter","kind":"percent","percent_off":10,"skus":["BRK-PAD-1001"],"starts_at":"2026-01-01T00:00:00Z","ends_at":"2099-01-01T00:00:00Z","time_zone":"UTC\u0000","over_cap":"base"}`, "invalid-promotion", "time_zone"},
		{"promotion duplicate key", http.MethodPost, "/v1/promotions", b.catalog,
			`{"name":"Winter","name":"Summer","kind":"percent","percent_off":10,"skus":["BRK-PAD-1001"],"starts_at":"2026-01-01T00:00:00Z","ends_at":"2099-01-01T00:00:00Z","time_zone":"UTC","over_cap":"base"}`, "invalid-promotion", "name"},
		{"trade account id NUL", http.MethodPut, "/v1/trade-accounts/garage%00x", b.account, `{"name":"Garage"}`, "invalid-trade-account", "customer_id"},
		{"trade account id C1", http.MethodPut, "/v1/trade-accounts/garage%C2%85x", b.account, `{"name":"Garage"}`, "invalid-trade-account", "customer_id"},
		{"trade account name NUL", http.MethodPut, "/v1/trade-accounts/garage-1", b.account, `{"name":"Garage\u0000"}`, "invalid-trade-account", "name"},
		{"trade account name invalid UTF-8", http.MethodPut, "/v1/trade-accounts/garage-1", b.account, "{\"name\":\"Garage \xff\"}", "invalid-trade-account", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := b.do(t, tt.method, tt.path, tt.token, nil, []byte(tt.body))
			if r.status != http.StatusUnprocessableEntity {
				t.Fatalf("status %d %s, want 422", r.status, r.body)
			}
			p := r.problem(t)
			if p.Type != "https://orderpipe.dev/problems/"+tt.typ {
				t.Fatalf("type %s, want %s", p.Type, tt.typ)
			}
			if _, ok := p.fields()[tt.field]; !ok {
				t.Fatalf("problem does not name %q: %s", tt.field, r.body)
			}
		})
	}
}

// Duplicate keys in the warehouse webhook are refused: the published event must never carry
// both (issue 15).
func TestWarehouseDuplicateKeysRefused(t *testing.T) {
	t.Parallel()
	b, wh := webhookSetup(t)
	body := stockBody(`{"id":"ev-1","type":"com.orderpipe.stock.level","data":{"warehouse_id":"WH-1","sku":"BRK-PAD-1001","seq":1,"occurred_at":"2026-11-26T09:00:00Z","on_hand":5,"on_hand":1000}}`)
	r := b.do(t, http.MethodPost, "/v1/warehouse/stock", wh, nil, body)
	if r.status != http.StatusUnprocessableEntity || r.problem(t).fields()["events[0].data.on_hand"] == "" {
		t.Fatalf("duplicate on_hand: %d %s, want 422 naming events[0].data.on_hand", r.status, r.body)
	}
	if n := len(b.records(t, event.TopicInventoryStock)); n != 0 {
		t.Fatalf("%d stock events published, want 0", n)
	}
}

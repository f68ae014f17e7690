package reconcile_test

import (
	"bytes"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"testing"
	"time"

	"github.com/orderpipe/orderpipe/internal/auth"
	"github.com/orderpipe/orderpipe/internal/paysim"
	"github.com/orderpipe/orderpipe/internal/postgres"
	"github.com/orderpipe/orderpipe/internal/testenv"
)

// customerOrder is the body of an order of customer for qty units of sku, paid with token.
func customerOrder(customer, token, sku string, qty int) []byte {
	b, _ := json.Marshal(map[string]any{
		"customer_id": customer, "email": "buyer@example.com", "priority": "standard",
		"lines":            []map[string]any{{"sku": sku, "quantity": qty}},
		"payment":          map[string]string{"method": "card", "token": token},
		"shipping_address": map[string]string{"name": "Ada Buyer", "line1": "Hauptstr. 1", "city": "Berlin", "postal_code": "10115", "country": "DE"},
	})
	return b
}

// placeSerially places the orders one after the other (so the cap and the limits are taken in
// this order) and returns, per customer, the promotional units of promoID the answers granted.
// Every order must be accepted.
func placeSerially(t *testing.T, p *testenv.Pipeline, promoID string, orders []struct {
	customer, token string
	qty             int
}, sku string) map[string]int64 {
	t.Helper()
	got := map[string]int64{}
	p.PlaceEach(t, len(orders), 1, func(i int) []byte {
		return customerOrder(orders[i].customer, orders[i].token, sku, orders[i].qty)
	}, func(i int, _ []byte, a testenv.Answer) {
		if a.Status != http.StatusAccepted {
			t.Errorf("order of %s: %d %s", orders[i].customer, a.Status, a.Body)
			return
		}
		var o struct {
			Lines []struct {
				Quantity    int64  `json:"quantity"`
				PromotionID string `json:"promotion_id"`
			} `json:"lines"`
		}
		if err := json.Unmarshal(a.Body, &o); err != nil {
			t.Errorf("order of %s: %v", orders[i].customer, err)
			return
		}
		got[orders[i].customer] += 0
		for _, l := range o.Lines {
			if l.PromotionID == promoID {
				got[orders[i].customer] += l.Quantity
			}
		}
	})
	if t.Failed() {
		t.FailNow()
	}
	return got
}

// nonZero drops the customers with no units (a counter given back to 0 stays as a field).
func nonZero(m map[string]int64) map[string]int64 {
	out := map[string]int64{}
	for k, v := range m {
		if v != 0 {
			out[k] = v
		}
	}
	return out
}

// A flash sale through the real api and order-worker: some orders decided (one declined), some
// still in flight, then Redis loses every key of the pipeline and reconciliation rebuilds the
// SKU. The promotion's counters come back equal to Postgres' decided units plus the in-flight
// holds, per customer, and the sale goes on without exceeding the stock cap or any customer's
// limit: Postgres ends up with exactly the cap sold at the promotional price.
func TestFlashSaleCapSurvivesRedisLoss(t *testing.T) {
	t.Parallel()
	const sku, promoID, promoCap = "TYR-WIN-7101", "winter-30", 12
	p := testenv.NewPipeline(t, testenv.PipelineOptions{
		Products: []postgres.Product{{SKU: sku, Name: "Winter tyre", Category: "tyres", Brand: "Continental", PriceMinor: 10000, Currency: "EUR", Active: true}},
		Stock:    map[string]int64{sku: 100},
		Payment:  paysim.Config{Seed: 3},
		Env:      map[string]string{"PAYMENT_TIMEOUT": "2s"},
		// The timelines are lost with Redis too: republish them quickly after the flush.
		APIEnv: map[string]string{"PROMO_SCHEDULER_INTERVAL": "100ms", "PROMO_REPUBLISH_INTERVAL": "200ms", "CATALOG_REFRESH_INTERVAL": "200ms"},
		Keys:   map[string][]string{"merch": {auth.ScopeCatalogWrite}},
	})
	b := &bundle{pool: p.Pool, dbURL: p.DBURL, rdb: p.RDB, prefix: p.Prefix, store: p.Store, kafka: p.Kafka}
	b.attach(t, 0)
	ctx := t.Context()

	now := time.Now()
	body, _ := json.Marshal(map[string]any{
		"id": promoID, "name": "Winter tyres -30%", "kind": "percent", "percent_off": 30,
		"skus": []string{sku}, "starts_at": now.Add(-time.Minute).Format(time.RFC3339Nano),
		"ends_at": now.Add(time.Hour).Format(time.RFC3339Nano), "stock_cap": promoCap, "over_cap": "base", "per_customer_limit": 3,
	})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, p.API.URL+"/v1/promotions", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+p.Keys["merch"])
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	rb, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("create promotion: %d %s", resp.StatusCode, rb)
	}

	type order = struct {
		customer, token string
		qty             int
	}
	const visa = "tok_visa_4242"
	// Decided before the loss: bob's payment is declined (his units and allowance come back).
	first := placeSerially(t, p, promoID, []order{{"ann", visa, 2}, {"bob", "tok_decline_bob", 2}, {"cy", visa, 2}, {"dan", visa, 2}}, sku)
	worker := p.Worker(t, nil)
	p.WaitDecided(t, 4, time.Minute)
	testenv.WaitCommitted(t, p.Kafka, "order-worker", testenv.OrderWorkerTopics(), time.Minute)
	if err := worker.Stop(); err != nil {
		t.Fatal(err)
	}
	// In flight at the loss: ann has 1 promotional unit of her 3 left.
	inFlight := placeSerially(t, p, promoID, []order{{"ann", visa, 2}, {"eve", visa, 3}}, sku)
	if first["ann"] != 2 || first["bob"] != 2 || inFlight["ann"] != 1 || inFlight["eve"] != 3 {
		t.Fatalf("promotional units granted %v then %v, want 2 each, then ann 1 (her limit) and eve 3", first, inFlight)
	}

	// What the counters must be: Postgres' decided, not cancelled units plus the holds in flight.
	want := map[string]int64{}
	rows, err := p.Pool.Query(ctx, `
SELECT o.customer_id, sum(l.quantity)::bigint FROM order_lines l JOIN orders o ON o.id = l.order_id
WHERE l.promotion_id = $1 AND l.sku = $2 AND o.status <> 'cancelled' GROUP BY 1`, promoID, sku)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var c string
		var n int64
		if err := rows.Scan(&c, &n); err != nil {
			t.Fatal(err)
		}
		want[c] = n
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	var wantSold int64
	for c, n := range inFlight {
		want[c] += n
	}
	for _, n := range want {
		wantSold += n
	}
	if wantSold != 10 {
		t.Fatalf("decided and in-flight promotional units %v (sum %d), want 10 (bob's declined 2 given back)", want, wantSold)
	}
	sold, before, err := p.Store.PromoCounters(ctx, sku, promoID)
	if err != nil || sold != wantSold || !maps.Equal(nonZero(before), want) {
		t.Fatalf("counters before the loss: sold %d %v (%v), want %d %v", sold, before, err, wantSold, want)
	}

	b.flush(t)
	res, err := b.rec.Repair(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Rebuilt) != 1 || res.Rebuilt[0].Promotions != 1 || res.Rebuilt[0].Holds != 2 {
		t.Fatalf("repair: %+v, want the SKU rebuilt with 2 holds and the counters of one promotion", res.Rebuilt)
	}
	sold, after, err := p.Store.PromoCounters(ctx, sku, promoID)
	if err != nil || sold != wantSold || !maps.Equal(nonZero(after), want) {
		t.Fatalf("counters after the rebuild: sold %d %v (%v), want %d %v", sold, after, err, wantSold, want)
	}

	// Wait for the scheduler to republish the lost price timelines and the api to reload them
	// (otherwise the next orders would simply be priced at the base price).
	deadline := time.Now().Add(30 * time.Second)
	for {
		var shelf struct {
			PromotionID string `json:"promotion_id"`
		}
		resp, err := http.Get(p.API.URL + "/v1/products/" + sku)
		if err != nil {
			t.Fatal(err)
		}
		err = json.NewDecoder(resp.Body).Decode(&shelf)
		resp.Body.Close()
		if err == nil && resp.StatusCode == http.StatusOK && shelf.PromotionID == promoID {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the api does not price %s under %s again within 30s (%d, %v)", sku, promoID, resp.StatusCode, err)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// The sale goes on: 2 units left under the cap; ann is at her limit.
	later := placeSerially(t, p, promoID, []order{{"ann", visa, 1}, {"fay", visa, 3}, {"gus", visa, 2}}, sku)
	if want := map[string]int64{"ann": 0, "fay": 2, "gus": 0}; !maps.Equal(later, want) {
		t.Fatalf("promotional units after the rebuild %v, want %v (ann at her limit, then the cap)", later, want)
	}
	// Every order decided: Postgres sold exactly the cap at the promotional price.
	p.Worker(t, nil)
	p.WaitDecided(t, 9, time.Minute)
	var promoSold int64
	if err := p.Pool.QueryRow(ctx, `
SELECT coalesce(sum(l.quantity), 0) FROM order_lines l JOIN orders o ON o.id = l.order_id
WHERE l.promotion_id = $1 AND o.status <> 'cancelled'`, promoID).Scan(&promoSold); err != nil {
		t.Fatal(err)
	}
	if promoSold != promoCap {
		t.Fatalf("promotional units sold in Postgres %d, want the cap %d", promoSold, promoCap)
	}
}

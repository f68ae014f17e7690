package api_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/orderpipe/orderpipe/internal/event"
	"github.com/orderpipe/orderpipe/internal/postgres"
)

// 500 buyers race for 100 units: exactly 100 are accepted, the rest refused, Redis holds
// exactly the accepted units, and the topic carries exactly one OrderPlaced per acceptance.
func TestFlashSaleNeverOversells(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	const buyers, stock = 500, 100
	statuses := make([]int, buyers)
	ids := make([]string, buyers)
	var wg sync.WaitGroup
	for i := range buyers {
		wg.Go(func() {
			r := b.place(t, uuid.NewString(), orderBody("BRK-PAD-1001", 1))
			statuses[i] = r.status
			if r.status == http.StatusAccepted {
				var v struct {
					OrderID string `json:"order_id"`
				}
				r.json(t, &v)
				ids[i] = v.OrderID
			}
		})
	}
	wg.Wait()
	count := map[int]int{}
	for _, s := range statuses {
		count[s]++
	}
	if count[http.StatusAccepted] != stock || count[http.StatusConflict] != buyers-stock {
		t.Fatalf("statuses %v, want %d x 202 and %d x 409", count, stock, buyers-stock)
	}
	st := b.stockOf(t, "BRK-PAD-1001")
	if st.ATP != 0 || st.Held != stock {
		t.Fatalf("redis atp=%d held=%d, want 0 and %d", st.ATP, st.Held, stock)
	}
	recs := b.records(t, event.TopicOrdersPlaced)
	if len(recs) != stock {
		t.Fatalf("%d OrderPlaced records, want %d", len(recs), stock)
	}
	accepted := map[string]bool{}
	for _, id := range ids {
		if id != "" {
			accepted[id] = true
		}
	}
	seenOrder, seenEvent := map[string]bool{}, map[string]bool{}
	for _, r := range recs {
		env, p := decodePlaced(t, r)
		if seenOrder[p.OrderID] || seenEvent[env.ID] {
			t.Fatalf("duplicate record for order %s / event %s", p.OrderID, env.ID)
		}
		seenOrder[p.OrderID], seenEvent[env.ID] = true, true
		if !accepted[p.OrderID] || string(r.Key) != p.OrderID {
			t.Fatalf("record for order %s (key %s) was not answered 202", p.OrderID, r.Key)
		}
		if p.Lines[0].UnitPriceMinor != 4990 || p.TotalMinor != 4990 {
			t.Fatalf("order %s priced %d/%d, want the catalog price 4990", p.OrderID, p.Lines[0].UnitPriceMinor, p.TotalMinor)
		}
	}
}

func TestShortLineRefusesWholeOrderAndHoldsNothing(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	r := b.place(t, uuid.NewString(), orderBody("BRK-PAD-1001", 2, "BAT-70AH-3001", 6, "FLT-OIL-2001", 1))
	if r.status != http.StatusConflict {
		t.Fatalf("status %d, want 409: %s", r.status, r.body)
	}
	p := r.problem(t)
	if len(p.Short) != 1 || p.Short[0].SKU != "BAT-70AH-3001" || p.Short[0].Requested != 6 || p.Short[0].Available != 5 {
		t.Fatalf("short = %+v, want BAT-70AH-3001 requested 6 available 5", p.Short)
	}
	for sku, want := range map[string]int64{"BRK-PAD-1001": 100, "BAT-70AH-3001": 5, "FLT-OIL-2001": 50} {
		if st := b.stockOf(t, sku); st.ATP != want || st.Held != 0 {
			t.Errorf("%s: atp=%d held=%d, want atp=%d held=0", sku, st.ATP, st.Held, want)
		}
	}
	// Two short lines are both reported.
	r = b.place(t, uuid.NewString(), orderBody("BAT-70AH-3001", 9, "TYR-2055516-5001", 1))
	if p := r.problem(t); r.status != http.StatusConflict || len(p.Short) != 2 {
		t.Fatalf("status %d short %+v, want 409 with both lines", r.status, p.Short)
	}
	if n := len(b.records(t, event.TopicOrdersPlaced)); n != 0 {
		t.Fatalf("%d records produced for refused orders, want 0", n)
	}
}

func TestIdempotencyKey(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	key := uuid.NewString()
	body := orderBody("FLT-OIL-2001", 2)
	const retries = 20
	resps := make([]response, retries)
	var wg sync.WaitGroup
	for i := range retries {
		wg.Go(func() { resps[i] = b.place(t, key, body) })
	}
	wg.Wait()
	var first *response
	for i := range resps {
		switch resps[i].status {
		case http.StatusAccepted:
			if first == nil {
				first = &resps[i]
			} else if !bytes.Equal(first.body, resps[i].body) {
				t.Fatalf("two 202 answers differ:\n%s\n%s", first.body, resps[i].body)
			}
		case http.StatusConflict:
			if p := resps[i].problem(t); !strings.Contains(p.Type, "in-flight") {
				t.Fatalf("409 of type %s, want in-flight", p.Type)
			}
		default:
			t.Fatalf("status %d (%s), want 202 or 409 in flight", resps[i].status, resps[i].body)
		}
	}
	if first == nil {
		t.Fatal("no request was accepted")
	}
	if st := b.stockOf(t, "FLT-OIL-2001"); st.Held != 2 || st.ATP != 48 {
		t.Fatalf("atp=%d held=%d, want one hold of 2 (48/2)", st.ATP, st.Held)
	}
	if n := len(b.records(t, event.TopicOrdersPlaced)); n != 1 {
		t.Fatalf("%d records, want 1", n)
	}
	// A later retry replays the stored answer byte for byte, with Location.
	again := b.place(t, key, body)
	if again.status != http.StatusAccepted || !bytes.Equal(again.body, first.body) {
		t.Fatalf("replay = %d %s, want 202 %s", again.status, again.body, first.body)
	}
	if again.header.Get("Location") != first.header.Get("Location") || again.header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("replay headers %v, want Location %s and Idempotent-Replayed", again.header, first.header.Get("Location"))
	}
	// The same key with another body is refused and changes nothing.
	changed := b.place(t, key, orderBody("FLT-OIL-2001", 3))
	if changed.status != http.StatusUnprocessableEntity || !strings.Contains(changed.problem(t).Type, "idempotency-key-reused") {
		t.Fatalf("changed body: %d %s, want 422 idempotency-key-reused", changed.status, changed.body)
	}
	// Keys are scoped per API key: another key may use the same Idempotency-Key value.
	if st := b.stockOf(t, "FLT-OIL-2001"); st.Held != 2 {
		t.Fatalf("held %d after replays, want 2", st.Held)
	}
	// A refused answer (409 out of stock) is replayed too.
	oosKey := uuid.NewString()
	oos := b.place(t, oosKey, orderBody("TYR-2055516-5001", 1))
	oos2 := b.place(t, oosKey, orderBody("TYR-2055516-5001", 1))
	if oos.status != http.StatusConflict || oos2.status != http.StatusConflict || !bytes.Equal(oos.body, oos2.body) {
		t.Fatalf("409 replay: %d %s then %d %s", oos.status, oos.body, oos2.status, oos2.body)
	}
}

// The broker refusing every produce: the api answers 503 with Retry-After, releases the holds,
// and a retry with the same key after the broker recovers succeeds with the same order id.
func TestBrokerDownAnswers503AndHoldsNothing(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{env: map[string]string{"KAFKA_PRODUCE_TIMEOUT": "1s"}})
	fault := b.kafka.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Err: kerr.NotEnoughReplicas, Count: -1})
	key := uuid.NewString()
	body := orderBody("WIP-600-4001", 3, "BRK-PAD-1001", 1)
	r := b.place(t, key, body)
	if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" {
		t.Fatalf("status %d Retry-After %q, want 503 with Retry-After: %s", r.status, r.header.Get("Retry-After"), r.body)
	}
	r.problem(t)
	if held := b.totalHeld(t, "WIP-600-4001", "BRK-PAD-1001"); held != 0 {
		t.Fatalf("%d units held after 503, want 0", held)
	}
	if st := b.stockOf(t, "WIP-600-4001"); st.ATP != 20 {
		t.Fatalf("atp %d, want 20 restored", st.ATP)
	}
	fault.Remove()
	r = b.place(t, key, body)
	if r.status != http.StatusAccepted {
		t.Fatalf("retry after recovery: %d %s, want 202", r.status, r.body)
	}
	if held := b.totalHeld(t, "WIP-600-4001", "BRK-PAD-1001"); held != 4 {
		t.Fatalf("%d units held after the accepted retry, want 4", held)
	}
	if n := len(b.records(t, event.TopicOrdersPlaced)); n != 1 {
		t.Fatalf("%d records, want 1", n)
	}
}

func TestGetOrderRightAfterAcceptAndFromPostgres(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	r := b.place(t, uuid.NewString(), orderBody("BRK-PAD-1001", 2))
	if r.status != http.StatusAccepted {
		t.Fatalf("place: %d %s", r.status, r.body)
	}
	var accepted struct {
		OrderID    string `json:"order_id"`
		Status     string `json:"status"`
		TotalMinor int64  `json:"total_minor"`
	}
	r.json(t, &accepted)
	if loc := r.header.Get("Location"); loc != "/v1/orders/"+accepted.OrderID || accepted.Status != "pending" || accepted.TotalMinor != 9980 {
		t.Fatalf("accepted %+v Location %q", accepted, loc)
	}
	got := b.do(t, http.MethodGet, "/v1/orders/"+accepted.OrderID, b.reader, nil, nil)
	var view struct {
		Status string `json:"status"`
		Lines  []struct {
			SKU      string `json:"sku"`
			Quantity int    `json:"quantity"`
		} `json:"lines"`
	}
	got.json(t, &view)
	if got.status != http.StatusOK || view.Status != "pending" || len(view.Lines) != 1 || view.Lines[0].Quantity != 2 {
		t.Fatalf("GET right after 202: %d %s", got.status, got.body)
	}
	// Once the worker has written the order, Postgres answers.
	_, placed := decodePlaced(t, b.records(t, event.TopicOrdersPlaced)[0])
	addr, _ := json.Marshal(placed.ShippingAddress)
	if _, err := postgres.NewOrderStore(b.pool).Insert(t.Context(), postgres.Order{
		ID: placed.OrderID, Status: "cancelled", CancelReason: "payment_declined", CustomerID: placed.CustomerID,
		Email: placed.Email, Priority: placed.Priority, Currency: placed.Currency, SubtotalMinor: placed.SubtotalMinor,
		ShippingMinor: placed.ShippingMinor, TotalMinor: placed.TotalMinor, ShippingAddress: addr,
		PlacedAt: placed.PlacedAt, HoldDeadline: placed.HoldDeadline,
		Lines: []postgres.OrderLine{{LineNo: 1, SKU: "BRK-PAD-1001", Name: "Brake pads, front axle", Quantity: 2, UnitPriceMinor: 4990}},
	}); err != nil {
		t.Fatal(err)
	}
	got = b.do(t, http.MethodGet, "/v1/orders/"+accepted.OrderID, b.reader, nil, nil)
	var fromPG struct {
		Status       string `json:"status"`
		CancelReason string `json:"cancel_reason"`
	}
	got.json(t, &fromPG)
	if fromPG.Status != "cancelled" || fromPG.CancelReason != "payment_declined" {
		t.Fatalf("GET after worker wrote: %s", got.body)
	}
	unknown := b.do(t, http.MethodGet, "/v1/orders/"+uuid.NewString(), b.reader, nil, nil)
	if unknown.status != http.StatusNotFound {
		t.Fatalf("unknown order: %d, want 404", unknown.status)
	}
	unknown.problem(t)
	if r := b.do(t, http.MethodGet, "/v1/orders/not-a-uuid", b.reader, nil, nil); r.status != http.StatusNotFound {
		t.Fatalf("malformed id: %d, want 404", r.status)
	}
}

func TestExpressOrdersUseThePriorityLane(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	body := bytes.Replace(orderBody("BRK-PAD-1001", 1), []byte(`"priority":"standard"`), []byte(`"priority":"express"`), 1)
	r := b.place(t, uuid.NewString(), body)
	if r.status != http.StatusAccepted {
		t.Fatalf("%d %s", r.status, r.body)
	}
	var v struct {
		ShippingMinor int64 `json:"shipping_minor"`
		TotalMinor    int64 `json:"total_minor"`
	}
	r.json(t, &v)
	if v.ShippingMinor != 990 || v.TotalMinor != 4990+990 {
		t.Fatalf("express totals %+v, want shipping 990", v)
	}
	if n := len(b.records(t, event.TopicOrdersPlacedPriority)); n != 1 {
		t.Fatalf("%d records on the priority topic, want 1", n)
	}
	if n := len(b.records(t, event.TopicOrdersPlaced)); n != 0 {
		t.Fatalf("%d records on the standard topic, want 0", n)
	}
}

// A trade account's orders use the priority lane whatever their shipping; a removed account
// stops counting once the api's cache refreshes.
func TestTradeAccountOrdersUseThePriorityLane(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{trade: []string{"garage-17"}, env: map[string]string{"CATALOG_REFRESH_INTERVAL": "100ms"}})
	place := func(customer string) {
		t.Helper()
		if r := b.place(t, uuid.NewString(), customerOrder(customer, "tok_visa_4242", "BRK-PAD-1001", 1)); r.status != http.StatusAccepted {
			t.Fatalf("order of %s: %d %s", customer, r.status, r.body)
		}
	}
	// customers lists the customers whose orders are on topic, sorted, and checks that the lane
	// did not change the shipping.
	customers := func(topic string) []string {
		t.Helper()
		var out []string
		for _, r := range b.records(t, topic) {
			_, p := decodePlaced(t, r)
			if p.Priority != "standard" {
				t.Errorf("%s's order has priority %q, want standard (the lane does not change the shipping)", p.CustomerID, p.Priority)
			}
			out = append(out, p.CustomerID)
		}
		slices.Sort(out)
		return out
	}
	place("garage-17") // standard shipping, trade account
	place("c-1001")    // standard shipping, retail customer
	if got := customers(event.TopicOrdersPlacedPriority); !slices.Equal(got, []string{"garage-17"}) {
		t.Fatalf("priority lane: %v, want the trade account's order only", got)
	}
	if got := customers(event.TopicOrdersPlaced); !slices.Equal(got, []string{"c-1001"}) {
		t.Fatalf("standard lane: %v, want the retail order only", got)
	}
	if m := b.do(t, http.MethodGet, "/metrics", "", nil, nil); !contains(m.body, `orderpipe_intake_priority_lane_total{reason="trade_account"} 1`) {
		t.Errorf("/metrics does not count the trade account's order on the priority lane once")
	}

	if err := postgres.NewTradeAccountStore(b.pool).Remove(t.Context(), "garage-17"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(customers(event.TopicOrdersPlaced)) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("a removed trade account's orders still use the priority lane 10s later (cache refresh 100ms): standard %v, priority %v",
				customers(event.TopicOrdersPlaced), customers(event.TopicOrdersPlacedPriority))
		}
		place("garage-17")
		time.Sleep(50 * time.Millisecond)
	}
}

// The account system manages trade accounts over HTTP (scope accounts:write); a change applies to
// this api instance's next order at once.
func TestTradeAccountsAPI(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{}) // CATALOG_REFRESH_INTERVAL stays 5s: only the write's own reload can route at once
	const path = "/v1/trade-accounts/garage-9"
	if r := b.do(t, http.MethodPut, path, "", nil, []byte(`{"name":"Garage 9"}`)); r.status != http.StatusUnauthorized {
		t.Fatalf("PUT without a key: %d, want 401", r.status)
	}
	if r := b.do(t, http.MethodPut, path, b.catalog, nil, []byte(`{"name":"Garage 9"}`)); r.status != http.StatusForbidden {
		t.Fatalf("PUT with a catalog key: %d, want 403", r.status)
	}
	r := b.do(t, http.MethodPut, path, b.account, nil, []byte(`{"name":"Garage 9"}`))
	var a struct {
		CustomerID string    `json:"customer_id"`
		Name       string    `json:"name"`
		CreatedAt  time.Time `json:"created_at"`
	}
	r.json(t, &a)
	if r.status != http.StatusOK || a.CustomerID != "garage-9" || a.Name != "Garage 9" || a.CreatedAt.IsZero() {
		t.Fatalf("PUT: %d %s", r.status, r.body)
	}
	lane := func() string {
		t.Helper()
		before := len(b.records(t, event.TopicOrdersPlacedPriority))
		if r := b.place(t, uuid.NewString(), customerOrder("garage-9", "tok_visa_4242", "BRK-PAD-1001", 1)); r.status != http.StatusAccepted {
			t.Fatalf("order: %d %s", r.status, r.body)
		}
		if len(b.records(t, event.TopicOrdersPlacedPriority)) > before {
			return "priority"
		}
		return "standard"
	}
	if got := lane(); got != "priority" {
		t.Fatalf("order right after PUT: %s lane, want priority", got)
	}
	r = b.do(t, http.MethodGet, "/v1/trade-accounts", b.account, nil, nil)
	var list struct {
		Items []struct {
			CustomerID string `json:"customer_id"`
		} `json:"items"`
	}
	r.json(t, &list)
	if r.status != http.StatusOK || len(list.Items) != 1 || list.Items[0].CustomerID != "garage-9" {
		t.Fatalf("GET: %d %s", r.status, r.body)
	}
	for _, bad := range []struct {
		path, body, field string
	}{
		{path, `{"name":"x","tier":"gold"}`, "tier"},
		{path, `{"name":"` + strings.Repeat("n", 201) + `"}`, "name"},
		{"/v1/trade-accounts/" + strings.Repeat("c", 65), `{}`, "customer_id"},
	} {
		r := b.do(t, http.MethodPut, bad.path, b.account, nil, []byte(bad.body))
		if p := r.problem(t); r.status != http.StatusUnprocessableEntity || p.Type != "https://orderpipe.dev/problems/invalid-trade-account" || p.fields()[bad.field] == "" {
			t.Errorf("PUT %s: %d %s, want 422 invalid-trade-account naming %s", bad.body, r.status, r.body, bad.field)
		}
	}
	if r := b.do(t, http.MethodDelete, path, b.account, nil, nil); r.status != http.StatusNoContent {
		t.Fatalf("DELETE: %d %s", r.status, r.body)
	}
	if got := lane(); got != "standard" {
		t.Fatalf("order right after DELETE: %s lane, want standard", got)
	}
	if r := b.do(t, http.MethodDelete, path, b.account, nil, nil); r.status != http.StatusNotFound || r.problem(t).Type != "https://orderpipe.dev/problems/not-found" {
		t.Fatalf("DELETE again: %d %s, want 404 not-found", r.status, r.body)
	}
}

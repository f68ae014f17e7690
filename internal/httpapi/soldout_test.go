package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"github.com/redis/go-redis/v9"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/orderpipe/orderpipe/internal/api"
	"github.com/orderpipe/orderpipe/internal/auth"
	"github.com/orderpipe/orderpipe/internal/httpapi"
	"github.com/orderpipe/orderpipe/internal/postgres"
	"github.com/orderpipe/orderpipe/internal/redisstore"
	"github.com/orderpipe/orderpipe/internal/testenv"
)

const hotSKU = "BRK-PAD-1001"

// shop is a running api (the real process) over its own Postgres schema, Redis prefix and broker,
// with one SKU in stock.
type shop struct {
	url    string
	token  string
	store  *redisstore.Store
	rdb    *redis.Client
	prefix string
	client *http.Client
}

func openShop(t testing.TB, units int64, extraEnv ...map[string]string) *shop {
	t.Helper()
	pool, dbURL := testenv.Postgres(t)
	rdb, prefix := testenv.Redis(t)
	cluster := testenv.Kafka(t)
	ctx := t.Context()
	if _, err := postgres.NewCatalogStore(pool).UpsertMany(ctx, []postgres.Product{
		{SKU: hotSKU, Name: "Brake pads", Category: "brakes", Brand: "Brembo", PriceMinor: 4990, Currency: "EUR", Active: true},
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := postgres.NewStockStore(pool).SeedMissing(ctx, map[string]int64{hotSKU: units}); err != nil {
		t.Fatal(err)
	}
	s := &shop{store: redisstore.New(rdb, prefix), rdb: rdb, prefix: prefix, client: &http.Client{Timeout: 10 * time.Second}}
	if _, err := s.store.SeedStock(ctx, map[string]int64{hotSKU: units}); err != nil {
		t.Fatal(err)
	}
	tok, k, err := auth.Generate("checkout", []string{auth.ScopeOrdersWrite, auth.ScopeOrdersRead})
	if err != nil {
		t.Fatal(err)
	}
	if err := postgres.NewKeyStore(pool).Create(ctx, postgres.APIKey{ID: k.ID, Name: k.Name, SecretHash: k.SecretHash, Scopes: k.Scopes}); err != nil {
		t.Fatal(err)
	}
	s.token = tok
	env := map[string]string{
		"DATABASE_URL": dbURL, "DATABASE_MAX_CONNS": "4", "REDIS_ADDRS": rdb.Options().Addr, "REDIS_KEY_PREFIX": prefix,
		"KAFKA_BROKERS": strings.Join(cluster.ListenAddrs(), ","), "API_ADDR": "127.0.0.1:0", "API_DRAIN_DELAY": "0s",
		"RATE_LIMIT_PER_SECOND": "0", "LOG_LEVEL": "info",
	}
	for _, m := range extraEnv {
		for k, v := range m {
			env[k] = v
		}
	}
	proc := testenv.Start(t, "api", api.Run, env)
	s.url = proc.URL
	return s
}

var orderBody = []byte(`{"customer_id":"c-1","email":"buyer@example.com","priority":"standard",
"lines":[{"sku":"` + hotSKU + `","quantity":1}],"payment":{"method":"card","token":"tok_visa"},
"shipping_address":{"name":"Ada Buyer","line1":"Hauptstr. 1","city":"Berlin","postal_code":"10115","country":"DE"}}`)

func (s *shop) order(t testing.TB) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, s.url+"/v1/orders", bytes.NewReader(orderBody))
	req.Header.Set("Authorization", "Bearer "+s.token)
	req.Header.Set("Idempotency-Key", uuid.NewString())
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func (s *shop) available(t testing.TB) int64 {
	t.Helper()
	resp, err := s.client.Get(s.url + "/v1/inventory/" + hotSKU)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var a struct {
		Available int64 `json:"available"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
		t.Fatal(err)
	}
	return a.Available
}

// metric returns the value of a counter, or the sample count of a histogram, from /metrics.
func (s *shop) metric(t testing.TB, name string) float64 {
	t.Helper()
	resp, err := s.client.Get(s.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	mf, ok := mfs[name]
	if !ok {
		return 0
	}
	var v float64
	for _, m := range mf.GetMetric() {
		switch {
		case m.Counter != nil:
			v += m.Counter.GetValue()
		case m.Histogram != nil:
			v += float64(m.Histogram.GetSampleCount())
		}
	}
	return v
}

// waitMetric waits until the api's metric name reaches at least want. within only bounds a wait
// for an event that is not coming (a broken api); it is not what the test measures.
func (s *shop) waitMetric(t testing.TB, name string, want float64, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for s.metric(t, name) < want {
		if time.Now().After(deadline) {
			t.Fatalf("%s did not reach %v within %s", name, want, within)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// announce sets sku's units in Redis, announces it on stock-changed (what inventory-sync does
// after a delivery) and waits until the api has handled the announcement. The api must have
// subscribed first (waitMetric on orderpipe_api_stock_view_resets_total): an announcement
// published before the subscription is lost, and a test that waited for a sale instead would
// then pass on the SoldOutTTL alone.
func (s *shop) announce(t testing.TB, units int64) {
	t.Helper()
	before := s.metric(t, "orderpipe_api_stock_changed_total")
	if err := s.store.SetStock(t.Context(), hotSKU, units); err != nil {
		t.Fatal(err)
	}
	if err := s.store.PublishStockChanged(t.Context(), hotSKU); err != nil {
		t.Fatal(err)
	}
	s.waitMetric(t, "orderpipe_api_stock_changed_total", before+1, 10*time.Second)
}

// waitSellable places orders until one is accepted and returns how long that took.
func (s *shop) waitSellable(t testing.TB, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		code, body := s.order(t)
		if code == http.StatusAccepted {
			return time.Since(start)
		}
		if code != http.StatusConflict {
			t.Fatalf("order: %d %s", code, body)
		}
		if time.Since(start) > within {
			t.Fatalf("not sellable %s after the restock", within)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Once a SKU is known sold out its orders are refused without the reservation's Redis call; a
// restock announced on stock-changed makes it sellable at once, and one whose announcement was
// lost within SoldOutTTL.
func TestSoldOutFastPath(t *testing.T) {
	t.Parallel()
	s := openShop(t, 3)
	s.waitMetric(t, "orderpipe_api_stock_view_resets_total", 1, 10*time.Second) // subscribed
	for range 3 {
		if code, body := s.order(t); code != http.StatusAccepted {
			t.Fatalf("order while in stock: %d %s", code, body)
		}
	}
	// The fourth finds ATP 0 in Redis: refused, and the SKU is now known sold out.
	if code, body := s.order(t); code != http.StatusConflict || !bytes.Contains(body, []byte(`"available":0`)) {
		t.Fatalf("order of a sold-out SKU: %d %s, want 409 with available 0", code, body)
	}
	reserves, fast := s.metric(t, "orderpipe_intake_reserve_seconds"), s.metric(t, "orderpipe_intake_soldout_fastpath_total")
	start := time.Now()
	for range 25 {
		code, body := s.order(t)
		if code != http.StatusConflict || !bytes.Contains(body, []byte(`"sku":"`+hotSKU+`"`)) {
			t.Fatalf("order while known sold out: %d %s, want 409 naming the SKU", code, body)
		}
	}
	// Each time the SoldOutTTL ends, one order asks Redis again (and marks the SKU anew).
	allowed := float64(int(time.Since(start)/httpapi.SoldOutTTL) + 1)
	if got := s.metric(t, "orderpipe_intake_reserve_seconds") - reserves; got > allowed {
		t.Fatalf("%v reservations reached Redis while the SKU was known sold out, want at most %v", got, allowed)
	}
	// Every one of the 25 refusals took exactly one of the two ways.
	reached := s.metric(t, "orderpipe_intake_reserve_seconds") - reserves
	if got := s.metric(t, "orderpipe_intake_soldout_fastpath_total") - fast; got+reached != 25 {
		t.Fatalf("fast-path refusals %v + reservations %v, want 25", got, reached)
	}

	// Restock, announced (what inventory-sync does after a delivery): once the api has handled
	// the announcement, the very next order is sold, with no wait for the mark to expire.
	if code, _ := s.order(t); code != http.StatusConflict {
		t.Fatalf("order before the restock: %d, want 409", code)
	}
	s.announce(t, 2)
	if code, body := s.order(t); code != http.StatusAccepted {
		t.Fatalf("first order after an announced restock: %d %s, want 202", code, body)
	}
	if got := s.available(t); got != 1 {
		t.Fatalf("availability after the restock and a sale: %d, want 1", got)
	}

	// Sell out again, then restock without an announcement (a lost message): the SoldOutTTL
	// bounds how long the SKU stays refused.
	if code, _ := s.order(t); code != http.StatusAccepted {
		t.Fatalf("last unit: %d", code)
	}
	if code, _ := s.order(t); code != http.StatusConflict {
		t.Fatalf("after the last unit: %d, want 409", code)
	}
	if err := s.store.SetStock(t.Context(), hotSKU, 1); err != nil {
		t.Fatal(err)
	}
	// waitSellable fails the test if the SKU stays refused well past the mark's lifetime (a mark
	// that never expires); the bound is generous so a busy machine does not fail it.
	took := s.waitSellable(t, httpapi.SoldOutTTL+5*time.Second)
	t.Logf("sellable %s after an unannounced restock (marks last %s)", took, httpapi.SoldOutTTL)
}

// Availability is cached in process and dropped when the SKU is announced.
func TestAvailabilityCacheFollowsAnnouncements(t *testing.T) {
	t.Parallel()
	// A long cache lifetime, so only the announcement can make the change visible (a slow
	// machine must not let the cache expire between the two reads).
	s := openShop(t, 7, map[string]string{"INVENTORY_CACHE_MAX_AGE": "10m"})
	// The api subscribes in the background and drops its whole cache once the subscription is
	// established; announcements published before that are lost. Wait for that drop (the resets
	// metric), so every announcement below is delivered, and wait for each announcement to be
	// handled (the announcements metric), not only for its change to show: a change can also show
	// through the drop, with its announcement still on its way to drop the cache again later.
	deadline := time.Now().Add(10 * time.Second)
	for s.metric(t, "orderpipe_api_stock_view_resets_total") < 1 {
		if time.Now().After(deadline) {
			t.Fatal("stock-changed subscription not established within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	published := 0
	announce := func(units int64) {
		t.Helper()
		if err := s.store.SetStock(t.Context(), hotSKU, units); err != nil {
			t.Fatal(err)
		}
		if err := s.store.PublishStockChanged(t.Context(), hotSKU); err != nil {
			t.Fatal(err)
		}
		published++
		deadline := time.Now().Add(5 * time.Second)
		for s.metric(t, "orderpipe_api_stock_changed_total") < float64(published) {
			if time.Now().After(deadline) {
				t.Fatalf("announcement %d not handled within 5s", published)
			}
			time.Sleep(5 * time.Millisecond)
		}
		if got := s.available(t); got != units {
			t.Fatalf("available %d after the announced change to %d", got, units)
		}
	}
	if got := s.available(t); got != 7 {
		t.Fatalf("available %d, want 7", got)
	}
	announce(8)
	if err := s.store.SetStock(t.Context(), hotSKU, 9); err != nil { // not announced
		t.Fatal(err)
	}
	if got := s.available(t); got != 8 {
		t.Fatalf("available %d right after an unannounced change, want the cached 8", got)
	}
	announce(9)
}

// A mark based on a Redis read that an announcement overtook is ignored, and marks expire.
func TestStockViewIgnoresOvertakenMarks(t *testing.T) {
	t.Parallel()
	v := httpapi.NewStockView(func(context.Context, string) (redisstore.Stock, error) {
		return redisstore.Stock{Known: true}, nil
	}, time.Minute, prometheus.NewRegistry())
	since := v.Epoch()
	v.Changed(hotSKU) // restock announced while the reservation was on its way
	v.MarkSoldOut(hotSKU, since)
	if v.SoldOut(hotSKU) {
		t.Fatalf("sold out after an overtaken mark, want available")
	}
	v.MarkSoldOut(hotSKU, v.Epoch())
	if !v.SoldOut(hotSKU) {
		t.Fatalf("not sold out after a current mark")
	}
	since = v.Epoch()
	v.Reset()
	v.MarkSoldOut("OTHER-1", since)
	if v.SoldOut(hotSKU) || v.SoldOut("OTHER-1") {
		t.Fatalf("marks survived a reset")
	}
	if _, err := v.Availability(t.Context(), hotSKU); err != nil || !v.SoldOut(hotSKU) {
		t.Fatalf("an availability read of 0 did not mark the SKU sold out (%v)", err)
	}
}

// With SOLDOUT_GATE=before-idempotency a sold-out SKU's orders are refused before the
// idempotency protocol: no idempotency record is written, no Redis call is made, and a restock
// announcement lets orders through again.
func TestSoldOutGateBeforeIdempotency(t *testing.T) {
	t.Parallel()
	s := openShop(t, 1, map[string]string{"SOLDOUT_GATE": "before-idempotency"})
	s.waitMetric(t, "orderpipe_api_stock_view_resets_total", 1, 10*time.Second) // subscribed
	if code, body := s.order(t); code != http.StatusAccepted {
		t.Fatalf("first order: %d %s", code, body)
	}
	if code, body := s.order(t); code != http.StatusConflict { // learns the SKU is sold out
		t.Fatalf("second order: %d %s", code, body)
	}
	idemBefore := countKeys(t, s, "idem:*")
	gate := s.metric(t, "orderpipe_http_soldout_gate_total")
	for range 20 {
		if code, body := s.order(t); code != http.StatusConflict || !bytes.Contains(body, []byte(hotSKU)) {
			t.Fatalf("order for a sold-out SKU: %d %s, want 409 naming it", code, body)
		}
	}
	if got := s.metric(t, "orderpipe_http_soldout_gate_total") - gate; got != 20 {
		t.Fatalf("gate refused %v orders, want 20", got)
	}
	if got := countKeys(t, s, "idem:*"); got != idemBefore {
		t.Fatalf("%d idempotency records after gated refusals, want %d (no Redis call)", got, idemBefore)
	}
	// A restock (announced) makes the SKU sellable again: the first order after the api handled
	// the announcement is sold.
	s.announce(t, 5)
	if code, body := s.order(t); code != http.StatusAccepted {
		t.Fatalf("first order after an announced restock: %d %s, want 202", code, body)
	}
}

func countKeys(t *testing.T, s *shop, pattern string) int {
	t.Helper()
	keys, err := s.rdb.Keys(t.Context(), s.prefix+pattern).Result()
	if err != nil {
		t.Fatal(err)
	}
	return len(keys)
}

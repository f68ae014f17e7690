package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderpipe/orderpipe/internal/auth"
	"github.com/orderpipe/orderpipe/internal/catalog"
	"github.com/orderpipe/orderpipe/internal/event"
	"github.com/orderpipe/orderpipe/internal/httpapi"
	"github.com/orderpipe/orderpipe/internal/input"
	"github.com/orderpipe/orderpipe/internal/intake"
	"github.com/orderpipe/orderpipe/internal/kafka"
	"github.com/orderpipe/orderpipe/internal/postgres"
	"github.com/orderpipe/orderpipe/internal/pricing"
	"github.com/orderpipe/orderpipe/internal/promotion"
	"github.com/orderpipe/orderpipe/internal/redisstore"
	"github.com/orderpipe/orderpipe/internal/testenv"
)

// The fuzz targets drive the real routes of the api (httpapi.New: authentication, rate limit,
// query limits, idempotency, decoders, handlers) over real stores, built once per target: the
// Redis store on testenv.Redis (holds, idempotency records, rate limits, pending orders), a
// franz-go producer to testenv.Kafka (every topic provisioned), and the Postgres stores on
// testenv.Postgres (products, promotions, trade accounts). The properties, observed in those
// stores: never a panic, never a 5xx; a refused request leaves no trace (no new Redis key under
// the test's prefix but the rate limiter's, no topic's end offset moved, no row saved; card data
// not even in an idempotency record); an accepted request round-trips (what was stored or
// produced decodes to what was sent, and passes the input gate). Each input gets its own
// Idempotency-Key, and what an accepted input wrote is removed after it, so inputs stay
// independent.

var fuzzCfg = httpapi.Config{
	MaxBodyBytes: 64 << 10, MaxLines: 50, MaxQuantity: 999,
	IdempotencyTTL: time.Hour, IdempotencyLease: time.Minute, PendingTTL: time.Hour,
	RateLimit: 1 << 20, RateBurst: 1 << 20, // the limiter runs (on Redis) but never refuses a fuzz input
}

var fuzzProducts = []postgres.Product{
	{SKU: "BRK-PAD-1001", Name: "Brake pads", Category: "brakes", Brand: "Brembo", PriceMinor: 4990, Currency: "EUR", Active: true},
	{SKU: "FLT-OIL-2001", Name: "Oil filter", Category: "filters", Brand: "Mann", PriceMinor: 899, Currency: "EUR", Active: true},
}

const fuzzWarehouseSecret = "fuzz-secret"

// fuzzEnv is the api over real stores, shared by every input of one fuzz target.
type fuzzEnv struct {
	e        *echo.Echo
	token    string
	rdb      *redis.Client
	prefix   string
	pool     *pgxpool.Pool
	products *postgres.CatalogStore
	promos   *postgres.PromotionStore
	adm      *kadm.Client
	topics   []string
	consumer *kgo.Client // every topic from the start; consumed counts what was read
	consumed int64
	v        *event.Validator
	keys     atomic.Int64
}

func fuzzServer(f *testing.F) *fuzzEnv {
	f.Helper()
	ctx := f.Context()
	log := slog.New(slog.DiscardHandler)
	v, err := event.NewValidator()
	if err != nil {
		f.Fatal(err)
	}
	pool, _ := testenv.Postgres(f)
	rdb, prefix := testenv.Redis(f)
	cluster := testenv.Kafka(f)
	store := redisstore.New(rdb, prefix)

	kcl, err := kafka.NewClient(kafka.ClientConfig{Brokers: cluster.ListenAddrs(), ClientID: "fuzz-api", ProduceTimeout: 10 * time.Second})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(kcl.Close)
	adm := kadm.NewClient(kcl)
	listed, err := adm.ListTopics(ctx)
	if err != nil {
		f.Fatal(err)
	}
	consumer, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...), kgo.ConsumeTopics(listed.Names()...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(consumer.Close)

	// The catalog in Postgres, stock in both (plenty: accepted orders never run it out).
	products := postgres.NewCatalogStore(pool)
	stock := postgres.NewStockStore(pool)
	onHand := map[string]int64{}
	for _, p := range fuzzProducts {
		if _, err := products.Upsert(ctx, p); err != nil {
			f.Fatal(err)
		}
		onHand[p.SKU] = 1 << 40
	}
	if _, err := stock.SeedMissing(ctx, onHand); err != nil {
		f.Fatal(err)
	}
	if _, err := store.SeedStock(ctx, onHand); err != nil {
		f.Fatal(err)
	}
	cat := catalog.New(func(ctx context.Context) ([]catalog.Product, error) {
		rows, err := products.All(ctx)
		out := make([]catalog.Product, len(rows))
		for i, p := range rows {
			out[i] = catalog.Product{SKU: p.SKU, Name: p.Name, Category: p.Category, Brand: p.Brand, PriceMinor: p.PriceMinor, Currency: p.Currency, Active: p.Active}
		}
		return out, err
	})
	if err := cat.Refresh(ctx); err != nil {
		f.Fatal(err)
	}
	token, key, err := auth.Generate("fuzz", auth.AllScopes)
	if err != nil {
		f.Fatal(err)
	}
	keys := auth.NewKeys(func(context.Context) ([]auth.Key, error) { return []auth.Key{key}, nil })
	if err := keys.Refresh(ctx); err != nil {
		f.Fatal(err)
	}

	promos := postgres.NewPromotionStore(pool)
	publisher := pricing.NewPublisher(pricing.Stores{Catalog: products, Promotions: promos}, store)
	trade := postgres.NewTradeAccountStore(pool)
	reg := prometheus.NewRegistry()
	svc := intake.New(intake.Config{HoldTTL: time.Minute, ProduceTimeout: 10 * time.Second, Currency: "EUR", Source: "/orderpipe/api"},
		store, kcl, cat, v, log, reg)
	e, err := httpapi.New(fuzzCfg, httpapi.Deps{
		Keys: keys, Catalog: cat, Intake: svc, Store: store,
		Promotions: &pricing.Service{Store: promos, Publisher: publisher},
		TradeAccounts: &httpapi.TradeAccounts{
			Add: trade.Add, Remove: trade.Remove, All: trade.All, Changed: func(context.Context) error { return nil },
		},
		SaveProduct: func(ctx context.Context, p catalog.Product) (catalog.Product, error) { // as the api saves one
			row, err := products.Upsert(ctx, postgres.Product{SKU: p.SKU, Name: p.Name, Category: p.Category, Brand: p.Brand, PriceMinor: p.PriceMinor, Currency: p.Currency, Active: p.Active})
			if err != nil {
				return catalog.Product{}, err
			}
			if _, err := stock.SeedMissing(ctx, map[string]int64{p.SKU: 0}); err != nil {
				return catalog.Product{}, err
			}
			if _, err := store.SeedStock(ctx, map[string]int64{p.SKU: 0}); err != nil {
				return catalog.Product{}, err
			}
			return catalog.Product{SKU: row.SKU, Name: row.Name, Category: row.Category, Brand: row.Brand, PriceMinor: row.PriceMinor, Currency: row.Currency, Active: row.Active}, nil
		},
		Warehouse: httpapi.WarehouseDeps{
			Secret: func(string) ([]byte, bool) { return []byte(fuzzWarehouseSecret), true },
			Publish: func(ctx context.Context, recs []*kgo.Record) error {
				return kcl.ProduceSync(ctx, recs...).FirstErr()
			},
			Validator: v,
		},
		Draining: func() bool { return false },
		Log:      log, Registry: reg, Gatherer: reg,
	})
	if err != nil {
		f.Fatal(err)
	}
	return &fuzzEnv{e: e, token: token, rdb: rdb, prefix: prefix, pool: pool, products: products, promos: promos,
		adm: adm, topics: listed.Names(), consumer: consumer, v: v}
}

// idemKey is a new Idempotency-Key, so that no input replays another's answer.
func (fe *fuzzEnv) idemKey() string { return fmt.Sprintf("fuzz-%d", fe.keys.Add(1)) }

// trace is what the stores hold that a request could have written: the Redis keys under the
// prefix (but the rate limiter's, which counts every authenticated request) and the sum of every
// topic's end offset.
type trace struct {
	keys     map[string]bool
	produced int64
}

func (fe *fuzzEnv) trace(t *testing.T) trace {
	t.Helper()
	ctx := context.Background()
	tr := trace{keys: map[string]bool{}}
	iter := fe.rdb.Scan(ctx, 0, fe.prefix+"*", 1000).Iterator()
	for iter.Next(ctx) {
		if k := iter.Val(); !strings.HasPrefix(k, fe.prefix+"rl:") {
			tr.keys[k] = true
		}
	}
	if err := iter.Err(); err != nil {
		t.Fatalf("scan redis: %v", err)
	}
	ends, err := fe.adm.ListEndOffsets(ctx, fe.topics...)
	if err != nil {
		t.Fatalf("list end offsets: %v", err)
	}
	if err := ends.Error(); err != nil {
		t.Fatalf("list end offsets: %v", err)
	}
	ends.Each(func(o kadm.ListedOffset) { tr.produced += o.Offset })
	return tr
}

// newKeys are the Redis keys in after that were not in before.
func (before trace) newKeys(after trace) []string {
	var ks []string
	for k := range after.keys {
		if !before.keys[k] {
			ks = append(ks, k)
		}
	}
	slices.Sort(ks)
	return ks
}

// noTrace fails t if anything was written between before and after.
func (fe *fuzzEnv) noTrace(t *testing.T, a fuzzAnswer, before, after trace) {
	t.Helper()
	if ks := before.newKeys(after); len(ks) > 0 {
		t.Fatalf("answered %d and left Redis keys %q", a.status, ks)
	}
	if n := after.produced - before.produced; n != 0 {
		t.Fatalf("answered %d and produced %d records", a.status, n)
	}
}

// forget deletes the Redis keys an accepted input added, so the next input starts as this one did.
func (fe *fuzzEnv) forget(t *testing.T, before, after trace) {
	t.Helper()
	if ks := before.newKeys(after); len(ks) > 0 {
		if err := fe.rdb.Unlink(context.Background(), ks...).Err(); err != nil {
			t.Fatalf("unlink %q: %v", ks, err)
		}
	}
}

// produced reads the n records produced since the last call.
func (fe *fuzzEnv) produced(t *testing.T, n int64) []*kgo.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out []*kgo.Record
	for int64(len(out)) < n {
		fs := fe.consumer.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d produced records: %v", len(out), n, ctx.Err())
		}
		fs.EachError(func(topic string, p int32, err error) { t.Fatalf("consume %s/%d: %v", topic, p, err) })
		out = append(out, fs.Records()...)
	}
	fe.consumed += int64(len(out))
	if int64(len(out)) != n {
		t.Fatalf("read %d records, want the %d produced", len(out), n)
	}
	return out
}

type fuzzAnswer struct {
	status int
	header http.Header
	body   []byte
	typ    string
}

func (fe *fuzzEnv) do(tb testing.TB, method, target string, body []byte, header map[string]string) fuzzAnswer {
	tb.Helper()
	req := httptest.NewRequest(method, "/", bytes.NewReader(body))
	if u, err := url.ParseRequestURI(target); err == nil {
		req.URL = u
	} else {
		req.URL.Path = target
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+fe.token)
	for k, v := range header {
		req.Header[http.CanonicalHeaderKey(k)] = []string{v} // as sent, unchecked
	}
	rec := httptest.NewRecorder()
	fe.e.ServeHTTP(rec, req)
	a := fuzzAnswer{status: rec.Code, header: rec.Header(), body: rec.Body.Bytes()}
	var p struct {
		Type string `json:"type"`
	}
	if json.Unmarshal(a.body, &p) == nil {
		a.typ = strings.TrimPrefix(p.Type, "https://orderpipe.dev/problems/")
	}
	if a.status >= 500 {
		tb.Fatalf("%s %s: %d %s", method, target, a.status, a.body)
	}
	// Card data in the answer's values (decoded: the raw text has escapes such as \u0026 whose
	// digits are not the value's).
	if ps, err := input.JSON(a.body, input.Options{}); err == nil && input.HasCard(ps) {
		tb.Fatalf("%s %s: the answer carries card data: %d %s", method, target, a.status, a.body)
	}
	return a
}

// checkCardRefusal asserts: a body with card data anywhere is refused as such.
func checkCardRefusal(t *testing.T, body []byte, a fuzzAnswer) bool {
	t.Helper()
	ps, _ := input.JSON(body, input.Options{})
	if input.HasCard(ps) {
		if a.status != http.StatusUnprocessableEntity || a.typ != "card-data-rejected" {
			t.Fatalf("a body with card data: %d %s, want 422 card-data-rejected", a.status, a.body)
		}
		return true
	}
	return false
}

func validOrder() []byte {
	return []byte(`{"customer_id":"c-1001","email":"buyer@example.com","priority":"standard","lines":[{"sku":"BRK-PAD-1001","quantity":2}],` +
		`"payment":{"method":"card","token":"tok_visa_4242"},"shipping_address":{"name":"Ada Buyer","line1":"Hauptstr. 1","city":"Berlin","postal_code":"10115","country":"DE"}}`)
}

// placeOrderRequest and productInput are what the api decodes, as a client writes them.
type placeOrderRequest struct {
	CustomerID string `json:"customer_id"`
	Email      string `json:"email"`
	Payment    struct {
		Token string `json:"token"`
	} `json:"payment"`
	ShippingAddress struct {
		Name       string `json:"name"`
		Line1      string `json:"line1"`
		Line2      string `json:"line2"`
		City       string `json:"city"`
		PostalCode string `json:"postal_code"`
	} `json:"shipping_address"`
}

type productInput struct {
	Name       string `json:"name"`
	Category   string `json:"category"`
	Brand      string `json:"brand"`
	PriceMinor int64  `json:"price_minor"`
}

// placeOrder posts body with key and checks the order properties: a refusal leaves no trace
// (with card data, no idempotency record either); an acceptance produced exactly one
// OrderPlaced that says what was sent. It removes what an acceptance left in Redis.
func (fe *fuzzEnv) placeOrder(t *testing.T, body []byte, key string) fuzzAnswer {
	t.Helper()
	before := fe.trace(t)
	a := fe.do(t, http.MethodPost, "/v1/orders", body, map[string]string{"Idempotency-Key": key})
	after := fe.trace(t)
	defer fe.forget(t, before, after)
	if checkCardRefusal(t, body, a) {
		fe.noTrace(t, a, before, after) // not even the idempotency record
	}
	if a.status != http.StatusAccepted {
		// A final refusal is recorded for replay (the idempotency record), nothing else.
		for _, k := range before.newKeys(after) {
			if !strings.HasPrefix(k, fe.prefix+"idem:") || a.typ == "card-data-rejected" {
				t.Fatalf("answered %d %s and left the Redis key %q", a.status, a.body, k)
			}
		}
		if n := after.produced - before.produced; n != 0 {
			t.Fatalf("answered %d and produced %d records", a.status, n)
		}
		return a
	}
	recs := fe.produced(t, after.produced-before.produced)
	if len(recs) != 1 {
		t.Fatalf("accepted and produced %d records, want 1", len(recs))
	}
	// Round trip: the event decodes, passes its schema and the gate, and says what was sent.
	env, err := event.FromRecord(recs[0])
	if err != nil {
		t.Fatal(err)
	}
	placed, err := event.Decode[event.OrderPlaced](fe.v, env)
	if err != nil {
		t.Fatalf("the produced OrderPlaced does not decode: %v", err)
	}
	var req placeOrderRequest
	if err := json.Unmarshal(body, &req); err != nil {
		t.Fatalf("accepted a body encoding/json refuses: %v", err)
	}
	got, want := placed.ShippingAddress, req.ShippingAddress
	if placed.CustomerID != req.CustomerID || placed.Email != req.Email || placed.Payment.Token != req.Payment.Token ||
		got.Name != want.Name || got.Line1 != want.Line1 || got.Line2 != want.Line2 || got.City != want.City || got.PostalCode != want.PostalCode {
		t.Fatalf("the event %+v does not say what was sent %+v", placed, req)
	}
	if ps, err := input.JSON(env.Data, input.Options{}); err != nil || input.HasCard(ps) {
		t.Fatalf("produced data the gate refuses: %v %+v", err, ps)
	}
	return a
}

func FuzzPlaceOrderBody(f *testing.F) {
	addBodySeeds(f, validOrder(), "customer_id", "email", "token", "name", "line1", "quantity", "sku", "priority")
	fe := fuzzServer(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		fe.placeOrder(t, body, fe.idemKey())
	})
}

func FuzzIdempotencyKey(f *testing.F) {
	for _, k := range []string{"fuzz-key", "", " ", "a\x00b", "k\r\nX-Injected: 1", "ключ", strings.Repeat("k", 255), strings.Repeat("k", 256),
		"*", "idem:*", "~!@#$%^&*()_+{}|:\"<>?`-=[]\\;',./", "\x7f"} {
		f.Add(k)
	}
	fe := fuzzServer(f)
	body := validOrder()
	f.Fuzz(func(t *testing.T, key string) {
		// The same key is fresh in every input: what an input left in Redis is removed after it.
		before := fe.trace(t)
		first := fe.do(t, http.MethodPost, "/v1/orders", body, map[string]string{"Idempotency-Key": key})
		if valid := key != "" && len(key) <= 255 && !strings.ContainsFunc(key, func(r rune) bool { return r < 0x20 || r > 0x7e }); !valid {
			if first.status != http.StatusBadRequest {
				t.Fatalf("Idempotency-Key %q: %d %s, want 400", key, first.status, first.body)
			}
			fe.noTrace(t, first, before, fe.trace(t))
			return
		}
		// The same key and body again: the first answer, replayed; one order produced.
		again := fe.do(t, http.MethodPost, "/v1/orders", body, map[string]string{"Idempotency-Key": key})
		after := fe.trace(t)
		defer fe.forget(t, before, after)
		if first.status != http.StatusAccepted {
			t.Fatalf("a valid order with Idempotency-Key %q: %d %s, want 202", key, first.status, first.body)
		}
		if n := after.produced - before.produced; n != 1 {
			t.Fatalf("two requests with one Idempotency-Key produced %d records, want 1", n)
		}
		fe.produced(t, 1)
		if again.status != first.status || !bytes.Equal(again.body, first.body) || again.header.Get("Idempotent-Replayed") != "true" ||
			again.header.Get(echo.HeaderLocation) != first.header.Get(echo.HeaderLocation) {
			t.Fatalf("Idempotency-Key %q: the replay is %d %v %s, the first answer %d %v %s",
				key, again.status, again.header, again.body, first.status, first.header, first.body)
		}
	})
}

func FuzzPutProductBody(f *testing.F) {
	valid := []byte(`{"name":"Spark plug","category":"spark-plugs","brand":"NGK","price_minor":699,"currency":"EUR","active":true}`)
	addBodySeeds(f, valid, "name", "category", "brand", "price_minor", "active")
	fe := fuzzServer(f)
	const sku = "SPK-NGK-7001"
	f.Fuzz(func(t *testing.T, body []byte) {
		ctx := context.Background()
		row := func() (postgres.Product, bool) {
			p, err := fe.products.Get(ctx, sku)
			if errors.Is(err, postgres.ErrNotFound) {
				return p, false
			}
			if err != nil {
				t.Fatalf("read product %s: %v", sku, err)
			}
			return p, true
		}
		was, existed := row()
		tr := fe.trace(t)
		a := fe.do(t, http.MethodPut, "/v1/products/"+sku, body, nil)
		checkCardRefusal(t, body, a)
		now, exists := row()
		if a.status >= 300 {
			if exists != existed || now != was {
				t.Fatalf("answered %d and saved %+v (was %+v)", a.status, now, was)
			}
			fe.noTrace(t, a, tr, fe.trace(t))
			return
		}
		var in productInput
		if err := json.Unmarshal(body, &in); err != nil || !exists || now.Name != in.Name || now.Category != in.Category || now.Brand != in.Brand || now.PriceMinor != in.PriceMinor {
			t.Fatalf("answered %d and saved %+v, sent %s", a.status, now, body)
		}
		checkText(t, now.Name, now.Category, now.Brand, now.Currency)
	})
}

func FuzzCreatePromotionBody(f *testing.F) {
	valid := []byte(`{"id":"winter-10","name":"Winter","kind":"percent","percent_off":10,"skus":["BRK-PAD-1001"],"starts_at":"2099-01-01T00:00:00Z","ends_at":"2099-02-01T00:00:00Z","time_zone":"Europe/Berlin","over_cap":"base"}`)
	addBodySeeds(f, valid, "id", "name", "category", "starts_at", "ends_at", "time_zone", "fixed_price_minor")
	f.Add(replaceValue(valid, "ends_at", `"2099-01-01T00:00:00.000000001Z"`))
	fe := fuzzServer(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		ctx := context.Background()
		a := fe.do(t, http.MethodPost, "/v1/promotions", body, nil)
		checkCardRefusal(t, body, a)
		var ids []string
		rows, err := fe.pool.Query(ctx, `SELECT id FROM promotions`)
		if err == nil {
			ids, err = pgx.CollectRows(rows, pgx.RowTo[string])
		}
		if err != nil {
			t.Fatalf("read promotions: %v", err)
		}
		// Every input starts with no promotion: an accepted one is deleted after its checks.
		defer func() {
			if _, err := fe.pool.Exec(ctx, `DELETE FROM promotions`); err != nil {
				t.Fatalf("delete promotions: %v", err)
			}
		}()
		if a.status >= 300 {
			if len(ids) != 0 {
				t.Fatalf("answered %d and saved promotions %q", a.status, ids)
			}
			return
		}
		if len(ids) != 1 {
			t.Fatalf("answered %d and saved %d promotions, want 1", a.status, len(ids))
		}
		p, err := fe.promos.Get(ctx, ids[0])
		if err != nil {
			t.Fatalf("read promotion %q: %v", ids[0], err)
		}
		var sent struct {
			ID   string `json:"id"`
			Name string `json:"name"`
		}
		if err := json.Unmarshal(body, &sent); err != nil || (sent.ID != "" && p.ID != sent.ID) || p.Name != sent.Name { // no id: the api names it
			t.Fatalf("saved %+v, sent %s", p, body)
		}
		if p.EndsAt.Sub(p.StartsAt) < promotion.MinWindow {
			t.Fatalf("saved a window of %s", p.EndsAt.Sub(p.StartsAt))
		}
		checkText(t, append([]string{p.ID, p.Name, p.Category, p.TimeZone}, p.SKUs...)...)
	})
}

func FuzzPutTradeAccount(f *testing.F) {
	f.Add("garage-9", []byte(`{"name":"Garage 9"}`))
	f.Add("garage\x009", []byte(`{"name":"Garage 9"}`))
	f.Add("4242-4242-4242-4242", []byte(`{"name":"x"}`))
	f.Add("g", []byte(`{"name":"Garage\u0000","name":"x"}`))
	f.Add("g", []byte(`{"name":"tok_4242424242424242"}`))
	f.Add("g", []byte(``))
	fe := fuzzServer(f)
	f.Fuzz(func(t *testing.T, id string, body []byte) {
		if strings.ContainsAny(id, "/?#%") || id == "" {
			return // not one path segment
		}
		ctx := context.Background()
		a := fe.do(t, http.MethodPut, "/v1/trade-accounts/"+id, body, nil)
		if len(body) > 0 {
			checkCardRefusal(t, body, a)
		}
		if input.HasCardNumber(id) && a.typ != "card-data-rejected" {
			t.Fatalf("a card number as customer id: %d %s", a.status, a.body)
		}
		rows, err := fe.pool.Query(ctx, `SELECT customer_id, name, created_at FROM trade_accounts`)
		var saved []postgres.TradeAccount
		if err == nil {
			saved, err = pgx.CollectRows(rows, pgx.RowToStructByPos[postgres.TradeAccount])
		}
		if err != nil {
			t.Fatalf("read trade accounts: %v", err)
		}
		defer func() { // every input starts with none
			if _, err := fe.pool.Exec(ctx, `DELETE FROM trade_accounts`); err != nil {
				t.Fatalf("delete trade accounts: %v", err)
			}
		}()
		if a.status >= 300 {
			if len(saved) != 0 {
				t.Fatalf("answered %d and saved %+v", a.status, saved)
			}
			return
		}
		if len(saved) != 1 || saved[0].CustomerID != id {
			t.Fatalf("answered %d and saved %+v, sent %q", a.status, saved, id)
		}
		checkText(t, saved[0].CustomerID, saved[0].Name)
	})
}

func FuzzWarehouseStockBody(f *testing.F) {
	valid := []byte(`{"events":[{"id":"ev-1","type":"com.orderpipe.stock.level","data":{"warehouse_id":"WH-1","sku":"BRK-PAD-1001","seq":1,"occurred_at":"2026-11-26T09:00:00Z","on_hand":5}}]}`)
	addBodySeeds(f, valid, "id", "warehouse_id", "sku", "seq", "on_hand", "occurred_at", "data")
	f.Add([]byte(`{"events":[{"id":"ev-2","type":"com.orderpipe.stock.adjusted","data":{"warehouse_id":"WH-1","sku":"FLT-OIL-2001","seq":2,"occurred_at":"2026-11-26T09:00:00Z","delta":-2,"reason":"damaged"}}]}`))
	fe := fuzzServer(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		before := fe.trace(t)
		sig := httpapi.SignWarehouseBody([]byte(fuzzWarehouseSecret), body, time.Now()) // signed, so validation is reached
		a := fe.do(t, http.MethodPost, "/v1/warehouse/stock", body, map[string]string{httpapi.SignatureHeader: sig})
		checkCardRefusal(t, body, a)
		after := fe.trace(t)
		if a.status != http.StatusAccepted {
			fe.noTrace(t, a, before, after)
			return
		}
		for _, r := range fe.produced(t, after.produced-before.produced) {
			env, err := event.FromRecord(r)
			if err != nil {
				t.Fatal(err)
			}
			if ps, err := input.JSON(env.Data, input.Options{}); err != nil || len(ps) > 0 {
				t.Fatalf("published data the gate refuses: %v %+v", err, ps)
			}
			if _, err := event.DecodeStock(fe.v, env); err != nil {
				t.Fatalf("published an event that does not decode: %v", err)
			}
		}
	})
}

// The cursor and category limits of GET /v1/products in schemas/openapi.yaml.
var cursorPattern = regexp.MustCompile(`^[A-Za-z0-9_-]*$`)

func FuzzProductsCursor(f *testing.F) {
	f.Add("", "brakes")
	f.Add("", "")
	f.Add("not-a-cursor", "brakes")
	f.Add("eyJzIjoiQlJLLVBBRC0xMDAxIn0", "filters")
	f.Add("a+b/c=", "x")
	f.Add(strings.Repeat("A", 88), strings.Repeat("c", 64))
	f.Add(strings.Repeat("A", 89), strings.Repeat("c", 65))
	f.Add("\x00", "\xff")
	f.Add("ok", "ключ")
	fe := fuzzServer(f)
	f.Fuzz(func(t *testing.T, cursor, category string) {
		q := url.Values{"cursor": {cursor}, "category": {category}}
		a := fe.do(t, http.MethodGet, "/v1/products?"+q.Encode(), nil, nil)
		outOfLimit := utf8.RuneCountInString(cursor) > 88 || !cursorPattern.MatchString(cursor) ||
			utf8.RuneCountInString(category) > 64
		if outOfLimit && a.status != http.StatusBadRequest {
			t.Fatalf("cursor %q category %q: %d %s, want 400", cursor, category, a.status, a.body)
		}
		if a.status != http.StatusOK && a.status != http.StatusBadRequest {
			t.Fatalf("cursor %q category %q: %d %s, want 200 or 400", cursor, category, a.status, a.body)
		}
	})
}

func addBodySeeds(f *testing.F, valid []byte, fields ...string) {
	f.Add(valid)
	for _, k := range fields {
		for _, v := range []string{`"x\u0000y"`, `"\u001b[31m"`, `"tok_4242424242424242"`, `"4242.4242.4242.4242"`, `"４２４２４２４２４２４２４２４２"`,
			`"cc:4242424242424242 exp 12/29 cvc 123"`, `"\ud800"`, `1`, `null`, `[]`, `{}`, `9223372036854775807`} {
			f.Add(bytes.Replace(valid, []byte(`"`+k+`":`), []byte(`"`+k+`":`+v+`,"`+k+`":`), 1)) // a duplicate as well
			f.Add(replaceValue(valid, k, v))
		}
	}
	f.Add([]byte(`{`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`{"a":1}{}`))
	f.Add([]byte("{\"name\":\"\xff\"}"))
}

// replaceValue sets the value of the first key k of a compact JSON document.
func replaceValue(doc []byte, k, v string) []byte {
	key := []byte(`"` + k + `":`)
	i := bytes.Index(doc, key)
	if i < 0 {
		return doc
	}
	start := i + len(key)
	var raw json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(doc[start:]))
	if dec.Decode(&raw) != nil {
		return doc
	}
	end := start + int(dec.InputOffset())
	return append(append(append([]byte{}, doc[:start]...), v...), doc[end:]...)
}

// checkText: stored text passes the gate.
func checkText(t *testing.T, texts ...string) {
	t.Helper()
	for _, s := range texts {
		if ps := input.Text("", s, false); len(ps) > 0 {
			t.Fatalf("stored %q, which the gate refuses: %+v", s, ps)
		}
	}
}

package api_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderpipe/orderpipe/internal/api"
	"github.com/orderpipe/orderpipe/internal/auth"
	"github.com/orderpipe/orderpipe/internal/event"
	"github.com/orderpipe/orderpipe/internal/postgres"
	"github.com/orderpipe/orderpipe/internal/redisstore"
	"github.com/orderpipe/orderpipe/internal/testenv"
)

// bundle is one running api with its own Postgres schema, Redis prefix and broker.
type bundle struct {
	url     string
	pool    *pgxpool.Pool
	rdb     *redis.Client
	store   *redisstore.Store
	kafka   *kfake.Cluster
	writer  string // token with orders:write, orders:read
	reader  string // token with orders:read only
	catalog string // token with catalog:write
	account string // token with accounts:write
	client  *http.Client
	stop    func() error
	prefix  string          // Redis key prefix of this api
	logs    *testenv.Buffer // the api's log lines
}

type setupOpts struct {
	env       map[string]string
	redisAddr string // default: the test Redis
	kafkaOpts []kfake.Opt
	products  []postgres.Product
	stock     map[string]int64
	trade     []string // customer ids with a trade account before the api starts
	// warehouses registered before the api starts (the api loads the registry at start, then
	// every CATALOG_REFRESH_INTERVAL)
	warehouses []postgres.Warehouse
}

var testProducts = []postgres.Product{
	{SKU: "BRK-PAD-1001", Name: "Brake pads, front axle", Category: "brakes", Brand: "Brembo", PriceMinor: 4990, Currency: "EUR", Active: true},
	{SKU: "FLT-OIL-2001", Name: "Oil filter", Category: "filters", Brand: "Mann-Filter", PriceMinor: 899, Currency: "EUR", Active: true},
	{SKU: "BAT-70AH-3001", Name: "Battery 70Ah EFB", Category: "batteries", Brand: "Varta", PriceMinor: 13900, Currency: "EUR", Active: true},
	{SKU: "WIP-600-4001", Name: "Wiper blade 600mm", Category: "wipers", Brand: "Bosch", PriceMinor: 1590, Currency: "EUR", Active: true},
	{SKU: "TYR-2055516-5001", Name: "Winter tyre 205/55 R16", Category: "tyres", Brand: "Continental", PriceMinor: 8950, Currency: "EUR", Active: true},
	{SKU: "OLD-PART-9001", Name: "Discontinued part", Category: "brakes", Brand: "Bosch", PriceMinor: 100, Currency: "EUR", Active: false},
}

func setup(t *testing.T, o setupOpts) *bundle {
	t.Helper()
	pool, dbURL := testenv.Postgres(t)
	rdb, prefix := testenv.Redis(t)
	cluster := testenv.Kafka(t, o.kafkaOpts...)
	b := &bundle{pool: pool, rdb: rdb, store: redisstore.New(rdb, prefix), kafka: cluster, prefix: prefix}
	ctx := t.Context()

	products := o.products
	if products == nil {
		products = testProducts
	}
	if _, err := postgres.NewCatalogStore(pool).UpsertMany(ctx, products); err != nil {
		t.Fatalf("seed catalog: %v", err)
	}
	stock := o.stock
	if stock == nil {
		stock = map[string]int64{"BRK-PAD-1001": 100, "FLT-OIL-2001": 50, "BAT-70AH-3001": 5, "WIP-600-4001": 20, "TYR-2055516-5001": 0}
	}
	if _, err := postgres.NewStockStore(pool).SeedMissing(ctx, stock); err != nil {
		t.Fatalf("seed stock: %v", err)
	}
	if _, err := b.store.SeedStock(ctx, stock); err != nil {
		t.Fatalf("seed redis stock: %v", err)
	}
	for _, id := range o.trade {
		if _, err := postgres.NewTradeAccountStore(pool).Add(ctx, id, ""); err != nil {
			t.Fatalf("seed trade account: %v", err)
		}
	}
	for _, w := range o.warehouses {
		if _, err := postgres.NewInventoryStore(pool).AddWarehouse(ctx, w); err != nil {
			t.Fatalf("register warehouse: %v", err)
		}
	}
	keys := postgres.NewKeyStore(pool)
	mk := func(name string, scopes ...string) string {
		tok, k, err := auth.Generate(name, scopes)
		if err != nil {
			t.Fatal(err)
		}
		if err := keys.Create(ctx, postgres.APIKey{ID: k.ID, Name: k.Name, SecretHash: k.SecretHash, Scopes: k.Scopes}); err != nil {
			t.Fatalf("create key: %v", err)
		}
		return tok
	}
	b.writer = mk("checkout", auth.ScopeOrdersWrite, auth.ScopeOrdersRead)
	b.reader = mk("viewer", auth.ScopeOrdersRead)
	b.catalog = mk("merchandiser", auth.ScopeCatalogWrite)
	b.account = mk("accounts", auth.ScopeAccountsWrite)

	redisAddr := o.redisAddr
	if redisAddr == "" {
		redisAddr = rdb.Options().Addr
	}
	env := map[string]string{
		"DATABASE_URL":          dbURL,
		"DATABASE_MAX_CONNS":    "4",
		"REDIS_ADDRS":           redisAddr,
		"REDIS_KEY_PREFIX":      prefix,
		"KAFKA_BROKERS":         strings.Join(cluster.ListenAddrs(), ","),
		"KAFKA_PRODUCE_TIMEOUT": "2s",
		"API_ADDR":              "127.0.0.1:0",
		"API_DRAIN_DELAY":       "0s",
		"RATE_LIMIT_PER_SECOND": "0",
		"LOG_LEVEL":             "info",
	}
	for k, v := range o.env {
		env[k] = v
	}
	proc := testenv.Start(t, "api", api.Run, env)
	b.url, b.stop, b.logs = proc.URL, proc.Stop, proc.Logs
	b.client = &http.Client{Timeout: 15 * time.Second, Transport: conformance(t, http.DefaultTransport)}
	return b
}

// response is a decoded HTTP answer.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %d body %q: %v", r.status, r.body, err)
	}
}

// problem decodes an RFC 9457 problem document, checking its content type and status field.
func (r response) problem(t *testing.T) problemDoc {
	t.Helper()
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("content type %q, want application/problem+json (status %d, body %s)", ct, r.status, r.body)
	}
	var p problemDoc
	r.json(t, &p)
	if p.Status != r.status || p.Type == "" || p.Title == "" {
		t.Fatalf("problem %+v does not match status %d or lacks type/title", p, r.status)
	}
	return p
}

type problemDoc struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
	Errors []struct {
		Field  string `json:"field"`
		Detail string `json:"detail"`
	} `json:"errors"`
	Short []struct {
		SKU       string `json:"sku"`
		Requested int64  `json:"requested"`
		Available int64  `json:"available"`
	} `json:"short"`
}

func (p problemDoc) fields() map[string]string {
	m := map[string]string{}
	for _, e := range p.Errors {
		m[e.Field] = e.Detail
	}
	return m
}

func (b *bundle) do(t *testing.T, method, path, token string, header map[string]string, body []byte) response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, b.url+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		if v == "" {
			req.Header.Del(k)
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := b.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	rb, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: rb}
}

// place posts an order with a fresh or given Idempotency-Key.
func (b *bundle) place(t *testing.T, key string, body []byte) response {
	t.Helper()
	return b.do(t, http.MethodPost, "/v1/orders", b.writer, map[string]string{"Idempotency-Key": key}, body)
}

func orderBody(lines ...any) []byte {
	type line struct {
		SKU      string `json:"sku"`
		Quantity int    `json:"quantity"`
	}
	var ls []line
	for i := 0; i+1 < len(lines); i += 2 {
		ls = append(ls, line{SKU: lines[i].(string), Quantity: lines[i+1].(int)})
	}
	b, _ := json.Marshal(map[string]any{
		"customer_id": "c-1001",
		"email":       "buyer@example.com",
		"priority":    "standard",
		"lines":       ls,
		"payment":     map[string]string{"method": "card", "token": "tok_visa_4242"},
		"shipping_address": map[string]string{
			"name": "Ada Buyer", "line1": "Hauptstr. 1", "city": "Berlin", "postal_code": "10115", "country": "DE",
		},
	})
	return b
}

// stockOf reads Redis counters for sku.
func (b *bundle) stockOf(t *testing.T, sku string) redisstore.Stock {
	t.Helper()
	st, err := b.store.Availability(t.Context(), sku)
	if err != nil {
		t.Fatalf("availability %s: %v", sku, err)
	}
	return st
}

// totalHeld sums held units over the given SKUs.
func (b *bundle) totalHeld(t *testing.T, skus ...string) int64 {
	t.Helper()
	var n int64
	for _, s := range skus {
		n += b.stockOf(t, s).Held
	}
	return n
}

// records reads every record of topic from the test broker: it asks for the end offsets first,
// then consumes until it has them all.
func (b *bundle) records(t *testing.T, topic string) []*kgo.Record {
	t.Helper()
	return testenv.Records(t, b.kafka, topic)
}

func decodePlaced(t *testing.T, r *kgo.Record) (event.Envelope, event.OrderPlaced) {
	t.Helper()
	env, err := event.FromRecord(r)
	if err != nil {
		t.Fatalf("record at %s/%d@%d: %v", r.Topic, r.Partition, r.Offset, err)
	}
	var p event.OrderPlaced
	if err := json.Unmarshal(env.Data, &p); err != nil {
		t.Fatal(err)
	}
	return env, p
}

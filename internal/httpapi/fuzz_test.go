package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderpipe/orderpipe/internal/auth"
	"github.com/orderpipe/orderpipe/internal/catalog"
	"github.com/orderpipe/orderpipe/internal/event"
	"github.com/orderpipe/orderpipe/internal/input"
	"github.com/orderpipe/orderpipe/internal/intake"
	"github.com/orderpipe/orderpipe/internal/postgres"
	"github.com/orderpipe/orderpipe/internal/promotion"
	"github.com/orderpipe/orderpipe/internal/redisstore"
)

// The fuzz targets drive the real decoders and handlers of each body through Echo, with
// in-memory stand-ins for Redis, Kafka and Postgres that remember every write. The properties:
// never a panic, never a 5xx; a refused request leaves no trace (nothing held, produced, stored
// or saved; card data not even in the idempotency record); an accepted request round-trips (what
// was stored or produced decodes to what was sent, and passes the input gate).

var fuzzCfg = Config{MaxBodyBytes: 64 << 10, MaxLines: 50, MaxQuantity: 999, IdempotencyTTL: time.Hour, IdempotencyLease: time.Minute, PendingTTL: time.Hour}

// memory is every write the stand-ins saw during one request.
type memory struct {
	mu       sync.Mutex
	held     map[string][]string // order id -> SKUs held
	produced []*kgo.Record
	begun    int      // idempotency records begun
	stored   [][]byte // idempotency answers stored
	saved    []any    // products, promotions, trade accounts saved
}

func (m *memory) reset() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.held, m.produced, m.begun, m.stored, m.saved = map[string][]string{}, nil, 0, nil, nil
}

func (m *memory) Reserve(_ context.Context, orderID string, lines []redisstore.Line, _ time.Time) (redisstore.Reservation, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, l := range lines {
		m.held[orderID] = append(m.held[orderID], l.SKU)
	}
	return redisstore.Reservation{OK: true}, nil
}

func (m *memory) Release(_ context.Context, orderID string, _ []string) ([]redisstore.HoldResult, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.held, orderID)
	return nil, nil
}

func (m *memory) ProduceSync(_ context.Context, rs ...*kgo.Record) kgo.ProduceResults {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.produced = append(m.produced, rs...)
	out := make(kgo.ProduceResults, len(rs))
	for i, r := range rs {
		out[i] = kgo.ProduceResult{Record: r}
	}
	return out
}

func (m *memory) BeginIdempotent(_ context.Context, _, _, _, newID string, _, _ time.Duration, _ time.Time) (redisstore.IdemBegin, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.begun++
	return redisstore.IdemBegin{Outcome: redisstore.IdemNew, ID: newID}, nil
}

func (m *memory) FinishIdempotent(_ context.Context, _, _ string, _ int, _ string, body []byte, _ ...redisstore.Snapshot) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.stored = append(m.stored, append([]byte(nil), body...))
	return nil
}

func (m *memory) AbortIdempotent(context.Context, string, string) error { return nil }
func (m *memory) Allow(context.Context, string, int, int) (redisstore.RateResult, error) {
	return redisstore.RateResult{Allowed: true, Remaining: 1}, nil
}
func (m *memory) Availability(context.Context, string) (redisstore.Stock, error) {
	return redisstore.Stock{}, nil
}
func (m *memory) PendingOrder(context.Context, string) ([]byte, bool, error) { return nil, false, nil }
func (m *memory) PromoSold(context.Context, string, string) (int64, error)   { return 0, nil }

func (m *memory) save(v any) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.saved = append(m.saved, v)
}

// Promotions, in memory.
func (m *memory) Create(_ context.Context, p promotion.Promotion) (promotion.Promotion, error) {
	if err := p.Validate(); err != nil {
		return promotion.Promotion{}, err
	}
	m.save(p)
	return p, nil
}
func (m *memory) Update(ctx context.Context, p promotion.Promotion) (promotion.Promotion, error) {
	return m.Create(ctx, p)
}
func (m *memory) End(context.Context, string) (promotion.Promotion, error) {
	return promotion.Promotion{}, postgres.ErrNotFound
}
func (m *memory) Get(context.Context, string) (promotion.Promotion, error) {
	return promotion.Promotion{}, postgres.ErrNotFound
}
func (m *memory) List(context.Context, bool) ([]promotion.Promotion, error) { return nil, nil }
func (m *memory) Sales(context.Context, string) ([]postgres.PromotionSales, error) {
	return nil, nil
}

var fuzzProducts = []catalog.Product{
	{SKU: "BRK-PAD-1001", Name: "Brake pads", Category: "brakes", Brand: "Brembo", PriceMinor: 4990, Currency: "EUR", Active: true},
	{SKU: "FLT-OIL-2001", Name: "Oil filter", Category: "filters", Brand: "Mann", PriceMinor: 899, Currency: "EUR", Active: true},
}

const fuzzWarehouseSecret = "fuzz-secret"

// fuzzServer is an Echo server with the routes whose bodies are fuzzed.
func fuzzServer(tb testing.TB) (*echo.Echo, *memory) {
	tb.Helper()
	v, err := event.NewValidator()
	if err != nil {
		tb.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	mem := &memory{}
	mem.reset()
	cat := catalog.New(func(context.Context) ([]catalog.Product, error) { return fuzzProducts, nil })
	if err := cat.Refresh(context.Background()); err != nil {
		tb.Fatal(err)
	}
	svc := intake.New(intake.Config{HoldTTL: time.Minute, ProduceTimeout: time.Second, Currency: "EUR", Source: "/orderpipe/api"},
		mem, mem, cat, v, log, prometheus.NewRegistry())
	e := echo.New()
	e.HTTPErrorHandler = errorHandler(log)
	asKey := func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			c.Set(keyCtxKey, auth.Key{ID: "fuzzkey00001", Name: "fuzz"})
			return next(c)
		}
	}
	e.POST("/v1/orders", handlePlaceOrder(fuzzCfg, svc), asKey, idempotent(fuzzCfg, mem, log))
	e.PUT("/v1/products/:sku", handlePutProduct(fuzzCfg, cat, func(_ context.Context, p catalog.Product) (catalog.Product, error) {
		mem.save(p)
		return p, nil
	}, nil))
	e.POST("/v1/promotions", handleCreatePromotion(fuzzCfg, mem))
	ta := TradeAccounts{
		Add: func(_ context.Context, id, name string) (postgres.TradeAccount, error) {
			a := postgres.TradeAccount{CustomerID: id, Name: name, CreatedAt: time.Now()}
			mem.save(a)
			return a, nil
		},
		Remove:  func(context.Context, string) error { return nil },
		All:     func(context.Context) ([]postgres.TradeAccount, error) { return nil, nil },
		Changed: func(context.Context) error { return nil },
	}
	e.PUT("/v1/trade-accounts/:customer_id", handlePutTradeAccount(fuzzCfg, ta, log))
	e.POST("/v1/warehouse/stock", handleWarehouseStock(fuzzCfg, cat, WarehouseDeps{
		Secret: func(string) ([]byte, bool) { return []byte(fuzzWarehouseSecret), true },
		Publish: func(_ context.Context, recs []*kgo.Record) error {
			mem.mu.Lock()
			defer mem.mu.Unlock()
			mem.produced = append(mem.produced, recs...)
			return nil
		},
		Validator: v,
	}))
	return e, mem
}

type fuzzAnswer struct {
	status int
	body   []byte
	typ    string
}

func fuzzDo(tb testing.TB, e *echo.Echo, method, path string, body []byte, header map[string]string) fuzzAnswer {
	tb.Helper()
	req := httptest.NewRequest(method, "/", bytes.NewReader(body))
	req.URL.Path = path
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, req)
	a := fuzzAnswer{status: rec.Code, body: rec.Body.Bytes()}
	var p struct {
		Type string `json:"type"`
	}
	if json.Unmarshal(a.body, &p) == nil {
		a.typ = strings.TrimPrefix(p.Type, "https://orderpipe.dev/problems/")
	}
	if a.status >= 500 {
		tb.Fatalf("%s %s: %d %s", method, path, a.status, a.body)
	}
	// Card data in the answer's values (decoded: the raw text has escapes such as \u0026 whose
	// digits are not the value's).
	if ps, err := input.JSON(a.body, input.Options{}); err == nil && input.HasCard(ps) {
		tb.Fatalf("%s %s: the answer carries card data: %d %s", method, path, a.status, a.body)
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

func FuzzPlaceOrderBody(f *testing.F) {
	addBodySeeds(f, validOrder(), "customer_id", "email", "token", "name", "line1", "quantity", "sku", "priority")
	e, mem := fuzzServer(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		mem.reset()
		a := fuzzDo(t, e, http.MethodPost, "/v1/orders", body, map[string]string{"Idempotency-Key": "fuzz-key"})
		mem.mu.Lock()
		defer mem.mu.Unlock()
		if checkCardRefusal(t, body, a) && (mem.begun != 0 || len(mem.stored) != 0) {
			t.Fatalf("card data reached the idempotency record")
		}
		if a.status != http.StatusAccepted {
			if len(mem.held) != 0 {
				t.Fatalf("answered %d and left holds %v", a.status, mem.held)
			}
			if len(mem.produced) != 0 {
				t.Fatalf("answered %d and produced %d records", a.status, len(mem.produced))
			}
			return
		}
		if len(mem.produced) != 1 {
			t.Fatalf("accepted and produced %d records, want 1", len(mem.produced))
		}
		// Round trip: the event decodes, passes its schema and the gate, and says what was sent.
		v, _ := event.NewValidator()
		env, err := event.FromRecord(mem.produced[0])
		if err != nil {
			t.Fatal(err)
		}
		placed, err := event.Decode[event.OrderPlaced](v, env)
		if err != nil {
			t.Fatalf("the produced OrderPlaced does not decode: %v", err)
		}
		var req placeOrderRequest
		if err := json.Unmarshal(body, &req); err != nil {
			t.Fatalf("accepted a body encoding/json refuses: %v", err)
		}
		got := placed.ShippingAddress
		want := req.ShippingAddress
		if placed.CustomerID != req.CustomerID || placed.Email != req.Email || placed.Payment.Token != req.Payment.Token ||
			got.Name != want.Name || got.Line1 != want.Line1 || got.Line2 != want.Line2 || got.City != want.City || got.PostalCode != want.PostalCode {
			t.Fatalf("the event %+v does not say what was sent %+v", placed, req)
		}
	})
}

func FuzzPutProductBody(f *testing.F) {
	valid := []byte(`{"name":"Spark plug","category":"spark-plugs","brand":"NGK","price_minor":699,"currency":"EUR","active":true}`)
	addBodySeeds(f, valid, "name", "category", "brand", "price_minor", "active")
	e, mem := fuzzServer(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		mem.reset()
		a := fuzzDo(t, e, http.MethodPut, "/v1/products/SPK-NGK-7001", body, nil)
		checkCardRefusal(t, body, a)
		roundTrip(t, a, mem, func(saved any) {
			p := saved.(catalog.Product)
			var in productInput
			if err := json.Unmarshal(body, &in); err != nil || p.Name != in.Name || p.Category != in.Category || p.Brand != in.Brand || p.PriceMinor != in.PriceMinor {
				t.Fatalf("saved %+v, sent %s", p, body)
			}
			checkText(t, p.Name, p.Category, p.Brand, p.Currency)
		})
	})
}

func FuzzCreatePromotionBody(f *testing.F) {
	valid := []byte(`{"id":"winter-10","name":"Winter","kind":"percent","percent_off":10,"skus":["BRK-PAD-1001"],"starts_at":"2099-01-01T00:00:00Z","ends_at":"2099-02-01T00:00:00Z","time_zone":"Europe/Berlin","over_cap":"base"}`)
	addBodySeeds(f, valid, "id", "name", "category", "starts_at", "ends_at", "time_zone", "fixed_price_minor")
	f.Add(replaceValue(valid, "ends_at", `"2099-01-01T00:00:00.000000001Z"`))
	e, mem := fuzzServer(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		mem.reset()
		a := fuzzDo(t, e, http.MethodPost, "/v1/promotions", body, nil)
		checkCardRefusal(t, body, a)
		roundTrip(t, a, mem, func(saved any) {
			p := saved.(promotion.Promotion)
			if p.EndsAt.Sub(p.StartsAt) < promotion.MinWindow {
				t.Fatalf("saved a window of %s", p.EndsAt.Sub(p.StartsAt))
			}
			checkText(t, append([]string{p.ID, p.Name, p.Category, p.TimeZone}, p.SKUs...)...)
		})
	})
}

func FuzzPutTradeAccount(f *testing.F) {
	f.Add("garage-9", []byte(`{"name":"Garage 9"}`))
	f.Add("garage\x009", []byte(`{"name":"Garage 9"}`))
	f.Add("4242-4242-4242-4242", []byte(`{"name":"x"}`))
	f.Add("g", []byte(`{"name":"Garage\u0000","name":"x"}`))
	f.Add("g", []byte(`{"name":"tok_4242424242424242"}`))
	f.Add("g", []byte(``))
	e, mem := fuzzServer(f)
	f.Fuzz(func(t *testing.T, id string, body []byte) {
		if strings.ContainsAny(id, "/?#%") || id == "" {
			return // not one path segment
		}
		mem.reset()
		a := fuzzDo(t, e, http.MethodPut, "/v1/trade-accounts/"+id, body, nil)
		if len(body) > 0 {
			checkCardRefusal(t, body, a)
		}
		if input.HasCardNumber(id) && a.typ != "card-data-rejected" {
			t.Fatalf("a card number as customer id: %d %s", a.status, a.body)
		}
		roundTrip(t, a, mem, func(saved any) {
			acc := saved.(postgres.TradeAccount)
			if acc.CustomerID != id {
				t.Fatalf("saved %q, sent %q", acc.CustomerID, id)
			}
			checkText(t, acc.CustomerID, acc.Name)
		})
	})
}

func FuzzWarehouseStockBody(f *testing.F) {
	valid := []byte(`{"events":[{"id":"ev-1","type":"com.orderpipe.stock.level","data":{"warehouse_id":"WH-1","sku":"BRK-PAD-1001","seq":1,"occurred_at":"2026-11-26T09:00:00Z","on_hand":5}}]}`)
	addBodySeeds(f, valid, "id", "warehouse_id", "sku", "seq", "on_hand", "occurred_at", "data")
	f.Add([]byte(`{"events":[{"id":"ev-2","type":"com.orderpipe.stock.adjusted","data":{"warehouse_id":"WH-1","sku":"FLT-OIL-2001","seq":2,"occurred_at":"2026-11-26T09:00:00Z","delta":-2,"reason":"damaged"}}]}`))
	e, mem := fuzzServer(f)
	v, err := event.NewValidator()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		mem.reset()
		sig := SignWarehouseBody([]byte(fuzzWarehouseSecret), body, time.Now()) // signed, so validation is reached
		a := fuzzDo(t, e, http.MethodPost, "/v1/warehouse/stock", body, map[string]string{SignatureHeader: sig})
		checkCardRefusal(t, body, a)
		mem.mu.Lock()
		defer mem.mu.Unlock()
		if a.status != http.StatusAccepted {
			if len(mem.produced) != 0 {
				t.Fatalf("answered %d and published %d events", a.status, len(mem.produced))
			}
			return
		}
		for _, r := range mem.produced {
			env, err := event.FromRecord(r)
			if err != nil {
				t.Fatal(err)
			}
			if ps, err := input.JSON(env.Data, input.Options{}); err != nil || len(ps) > 0 {
				t.Fatalf("published data the gate refuses: %v %+v", err, ps)
			}
			if _, err := event.DecodeStock(v, env); err != nil {
				t.Fatalf("published an event that does not decode: %v", err)
			}
		}
	})
}

// roundTrip: a 2xx saved exactly one thing (checked by check); anything else saved nothing.
func roundTrip(t *testing.T, a fuzzAnswer, mem *memory, check func(saved any)) {
	t.Helper()
	mem.mu.Lock()
	saved := append([]any(nil), mem.saved...)
	mem.mu.Unlock()
	if a.status >= 300 {
		if len(saved) != 0 {
			t.Fatalf("answered %d and saved %+v", a.status, saved)
		}
		return
	}
	if len(saved) != 1 {
		t.Fatalf("answered %d and saved %d things, want 1", a.status, len(saved))
	}
	check(saved[0])
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

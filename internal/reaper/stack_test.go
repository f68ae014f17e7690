package reaper_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/orderpipe/orderpipe/internal/api"
	"github.com/orderpipe/orderpipe/internal/auth"
	"github.com/orderpipe/orderpipe/internal/orderworker"
	"github.com/orderpipe/orderpipe/internal/paysim"
	"github.com/orderpipe/orderpipe/internal/postgres"
	"github.com/orderpipe/orderpipe/internal/redisstore"
	"github.com/orderpipe/orderpipe/internal/testenv"
)

// stack is the whole pipeline of one test (the pattern of internal/orderworker's tests): its
// own Postgres schema, Redis prefix and broker, a payment simulator, the real api process and
// order-workers started on demand.
type stack struct {
	pool   *pgxpool.Pool
	dbURL  string
	rdb    *redis.Client
	prefix string
	store  *redisstore.Store
	kafka  *kfake.Cluster
	sim    *paysim.Server
	simURL string
	api    *testenv.Proc
	token  string
}

func setupStack(t *testing.T, sim paysim.Config, onHand map[string]int64, apiEnv map[string]string) *stack {
	t.Helper()
	s := &stack{}
	s.pool, s.dbURL = testenv.Postgres(t)
	s.rdb, s.prefix = testenv.Redis(t)
	s.store = redisstore.New(s.rdb, s.prefix)
	s.kafka = testenv.Kafka(t)
	s.sim = paysim.New(sim)
	srv := httptest.NewServer(s.sim.Handler())
	t.Cleanup(srv.Close)
	s.simURL = srv.URL
	ctx := t.Context()
	var products []postgres.Product
	for sku := range onHand {
		products = append(products, postgres.Product{SKU: sku, Name: "Part " + sku, Category: "parts", Brand: "Bosch", PriceMinor: 1000, Currency: "EUR", Active: true})
	}
	if _, err := postgres.NewCatalogStore(s.pool).UpsertMany(ctx, products); err != nil {
		t.Fatal(err)
	}
	if _, err := postgres.NewStockStore(s.pool).SeedMissing(ctx, onHand); err != nil {
		t.Fatal(err)
	}
	if _, err := s.store.SeedStock(ctx, onHand); err != nil {
		t.Fatal(err)
	}
	tok, k, err := auth.Generate("checkout", []string{auth.ScopeOrdersWrite, auth.ScopeOrdersRead})
	if err != nil {
		t.Fatal(err)
	}
	if err := postgres.NewKeyStore(s.pool).Create(ctx, postgres.APIKey{ID: k.ID, Name: k.Name, SecretHash: k.SecretHash, Scopes: k.Scopes}); err != nil {
		t.Fatal(err)
	}
	s.token = tok
	env := map[string]string{"API_ADDR": "127.0.0.1:0", "API_DRAIN_DELAY": "0s", "RATE_LIMIT_PER_SECOND": "0"}
	for k, v := range apiEnv {
		env[k] = v
	}
	s.api = testenv.Start(t, "api", api.Run, s.env(env))
	return s
}

func (s *stack) env(extra map[string]string) map[string]string {
	env := map[string]string{
		"DATABASE_URL":             s.dbURL,
		"DATABASE_MAX_CONNS":       "8",
		"REDIS_ADDRS":              s.rdb.Options().Addr,
		"REDIS_KEY_PREFIX":         s.prefix,
		"KAFKA_BROKERS":            strings.Join(s.kafka.ListenAddrs(), ","),
		"LOG_LEVEL":                "info",
		"PAYMENT_URL":              s.simURL,
		"PAYMENT_TIMEOUT":          "500ms",
		"PAYMENT_MAX_ATTEMPTS":     "2",
		"PAYMENT_BACKOFF_INITIAL":  "20ms",
		"PAYMENT_BACKOFF_MAX":      "100ms",
		"PAYMENT_BREAKER_OPEN_FOR": "500ms",
		"WORKER_ADMIN_ADDR":        "127.0.0.1:0",
		"ORDER_WORKER_MAX_STARVE":  "500ms",
	}
	for k, v := range extra {
		env[k] = v
	}
	return env
}

func (s *stack) worker(t *testing.T, extra map[string]string) *testenv.Proc {
	t.Helper()
	return testenv.Start(t, "order-worker", orderworker.Run, s.env(extra))
}

// place posts n one-line orders with concurrency c and returns the accepted order ids and how
// many answers each status got.
func (s *stack) place(t *testing.T, n, c int, sku string) (map[string]bool, map[int]int) {
	t.Helper()
	var mu sync.Mutex
	accepted := map[string]bool{}
	statuses := map[int]int{}
	sem := make(chan struct{}, c)
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 20 * time.Second}
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			body, _ := json.Marshal(map[string]any{
				"customer_id": "c-" + uuid.NewString()[:8], "email": "buyer@example.com", "priority": "standard",
				"lines":            []map[string]any{{"sku": sku, "quantity": 1}},
				"payment":          map[string]string{"method": "card", "token": "tok_card_" + uuid.NewString()[:8]},
				"shipping_address": map[string]string{"name": "Ada Buyer", "line1": "Hauptstr. 1", "city": "Berlin", "postal_code": "10115", "country": "DE"},
			})
			req, _ := http.NewRequest(http.MethodPost, s.api.URL+"/v1/orders", bytes.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+s.token)
			req.Header.Set("Idempotency-Key", uuid.NewString())
			req.Header.Set("Content-Type", "application/json")
			resp, err := client.Do(req)
			if err != nil {
				t.Errorf("order %d: %v", i, err)
				return
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			mu.Lock()
			defer mu.Unlock()
			statuses[resp.StatusCode]++
			if resp.StatusCode == http.StatusAccepted {
				var v struct {
					OrderID string `json:"order_id"`
				}
				_ = json.Unmarshal(b, &v)
				accepted[v.OrderID] = true
			}
		})
	}
	wg.Wait()
	return accepted, statuses
}

// statusOf returns every decided order's status and cancel reason.
func (s *stack) statusOf(t *testing.T) map[string]string {
	t.Helper()
	rows, err := s.pool.Query(t.Context(), `SELECT id::text, status || coalesce('/' || cancel_reason, '') FROM orders`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var id, st string
		if err := rows.Scan(&id, &st); err != nil {
			t.Fatal(err)
		}
		out[id] = st
	}
	return out
}

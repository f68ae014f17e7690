package reconcile_test

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
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderpipe/orderpipe/internal/api"
	"github.com/orderpipe/orderpipe/internal/auth"
	"github.com/orderpipe/orderpipe/internal/event"
	"github.com/orderpipe/orderpipe/internal/orderworker"
	"github.com/orderpipe/orderpipe/internal/paysim"
	"github.com/orderpipe/orderpipe/internal/postgres"
	"github.com/orderpipe/orderpipe/internal/testenv"
)

// stack is the whole pipeline of one test (the pattern of internal/orderworker's tests): the
// bundle's Postgres schema, Redis prefix and broker, a payment simulator, the real api process
// and order-workers started on demand.
type stack struct {
	*bundle
	sim    *paysim.Server
	simURL string
	api    *testenv.Proc
	token  string
}

func setupStack(t *testing.T, sim paysim.Config, onHand map[string]int64, settle time.Duration) *stack {
	t.Helper()
	s := &stack{bundle: setup(t, onHand, settle)}
	s.sim = paysim.New(sim)
	srv := httptest.NewServer(s.sim.Handler())
	t.Cleanup(srv.Close)
	s.simURL = srv.URL
	tok, k, err := auth.Generate("checkout", []string{auth.ScopeOrdersWrite, auth.ScopeOrdersRead})
	if err != nil {
		t.Fatal(err)
	}
	if err := postgres.NewKeyStore(s.pool).Create(t.Context(), postgres.APIKey{ID: k.ID, Name: k.Name, SecretHash: k.SecretHash, Scopes: k.Scopes}); err != nil {
		t.Fatal(err)
	}
	s.token = tok
	s.api = testenv.Start(t, "api", api.Run, s.env(map[string]string{"API_ADDR": "127.0.0.1:0", "API_DRAIN_DELAY": "0s", "RATE_LIMIT_PER_SECOND": "0"}))
	return s
}

func (s *stack) env(extra map[string]string) map[string]string {
	env := map[string]string{
		"DATABASE_URL":                s.dbURL,
		"DATABASE_MAX_CONNS":          "8",
		"REDIS_ADDRS":                 s.rdb.Options().Addr,
		"REDIS_KEY_PREFIX":            s.prefix,
		"KAFKA_BROKERS":               strings.Join(s.kafka.ListenAddrs(), ","),
		"LOG_LEVEL":                   "info",
		"PAYMENT_URL":                 s.simURL,
		"PAYMENT_TIMEOUT":             "2s",
		"PAYMENT_MAX_ATTEMPTS":        "2",
		"PAYMENT_BACKOFF_INITIAL":     "20ms",
		"PAYMENT_BACKOFF_MAX":         "100ms",
		"PAYMENT_BREAKER_OPEN_FOR":    "500ms",
		"WORKER_ADMIN_ADDR":           "127.0.0.1:0",
		"ORDER_WORKER_RETRY_IN_PLACE": "2s",
		"ORDER_WORKER_RETRY_TIERS":    "1s,2s",
		"ORDER_WORKER_MAX_STARVE":     "500ms",
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

// place posts n orders with concurrency c and returns the accepted order ids (with their units
// per SKU) and how many answers each status got.
func (s *stack) place(t *testing.T, n, c int, body func(i int) (sku string, qty int)) (map[string]int, map[int]int) {
	t.Helper()
	var mu sync.Mutex
	accepted := map[string]int{}
	statuses := map[int]int{}
	sem := make(chan struct{}, c)
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 20 * time.Second}
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			sku, qty := body(i)
			req, _ := http.NewRequest(http.MethodPost, s.api.URL+"/v1/orders", bytes.NewReader(orderJSON(sku, qty)))
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
			switch resp.StatusCode {
			case http.StatusAccepted:
				var v struct {
					OrderID string `json:"order_id"`
				}
				_ = json.Unmarshal(b, &v)
				accepted[v.OrderID] = qty
			case http.StatusConflict, http.StatusServiceUnavailable:
			default:
				t.Errorf("order %d: %d %s", i, resp.StatusCode, b)
			}
		})
	}
	wg.Wait()
	return accepted, statuses
}

func orderJSON(sku string, qty int) []byte {
	b, _ := json.Marshal(map[string]any{
		"customer_id": "c-" + uuid.NewString()[:8], "email": "buyer@example.com", "priority": "standard",
		"lines":            []map[string]any{{"sku": sku, "quantity": qty}},
		"payment":          map[string]string{"method": "card", "token": "tok_card_" + uuid.NewString()[:8]},
		"shipping_address": map[string]string{"name": "Ada Buyer", "line1": "Hauptstr. 1", "city": "Berlin", "postal_code": "10115", "country": "DE"},
	})
	return b
}

// waitDecided waits until every accepted order has a row in Postgres.
func (s *stack) waitDecided(t *testing.T, n int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		var got int
		if err := s.pool.QueryRow(t.Context(), `SELECT count(*) FROM orders`).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d accepted orders decided after %s", got, n, within)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitSettled waits until order-worker has committed everything on its source and retry topics.
func (s *stack) waitSettled(t *testing.T, within time.Duration) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.kafka.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	topics := []string{event.TopicOrdersPlaced, event.TopicOrdersPlacedPriority, event.RetryTopic("order-worker", 1), event.RetryTopic("order-worker", 2)}
	deadline := time.Now().Add(within)
	for {
		lag := int64(-1)
		ends, err := adm.ListEndOffsets(t.Context(), topics...)
		committed, cerr := adm.FetchOffsets(t.Context(), "order-worker")
		if err == nil && cerr == nil {
			lag = 0
			ends.Each(func(o kadm.ListedOffset) {
				at := int64(0)
				if c, ok := committed.Lookup(o.Topic, o.Partition); ok {
					at = c.At
				}
				lag += o.Offset - at
			})
		}
		if lag == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("order-worker not settled after %s: lag %d (%v %v)", within, lag, err, cerr)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// outcomes counts decided orders by status and reason.
func (s *stack) outcomes(t *testing.T) map[string]int {
	t.Helper()
	rows, err := s.pool.Query(t.Context(), `SELECT status || coalesce('/' || cancel_reason, ''), count(*) FROM orders GROUP BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var k string
		var n int
		if err := rows.Scan(&k, &n); err != nil {
			t.Fatal(err)
		}
		out[k] = n
	}
	return out
}

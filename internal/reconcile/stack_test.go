package reconcile_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/orderpipe/orderpipe/internal/paysim"
	"github.com/orderpipe/orderpipe/internal/postgres"
	"github.com/orderpipe/orderpipe/internal/testenv"
)

// stack is the whole pipeline of one test (testenv.Pipeline) with the bundle's reconciler over
// the pipeline's Postgres schema, Redis prefix and broker.
type stack struct {
	*bundle
	*testenv.Pipeline
}

func setupStack(t *testing.T, sim paysim.Config, onHand map[string]int64, settle time.Duration) *stack {
	t.Helper()
	var products []postgres.Product
	for sku := range onHand {
		products = append(products, postgres.Product{SKU: sku, Name: "Part " + sku, Category: "parts", Brand: "Bosch", PriceMinor: 1000, Currency: "EUR", Active: true})
	}
	p := testenv.NewPipeline(t, testenv.PipelineOptions{Products: products, Stock: onHand, Payment: sim,
		Env: map[string]string{"PAYMENT_TIMEOUT": "2s"}})
	b := &bundle{pool: p.Pool, dbURL: p.DBURL, rdb: p.RDB, prefix: p.Prefix, store: p.Store, kafka: p.Kafka}
	b.attach(t, settle)
	return &stack{bundle: b, Pipeline: p}
}

// place posts n orders with concurrency c and returns the accepted order ids (with their units
// per SKU) and how many answers each status got.
func (s *stack) place(t *testing.T, n, c int, pick func(i int) (sku string, qty int)) (map[string]int, map[int]int) {
	t.Helper()
	accepted := map[string]int{}
	statuses := map[int]int{}
	qtys := make([]int, n)
	body := func(i int) []byte {
		sku, qty := pick(i)
		qtys[i] = qty
		return testenv.OrderJSON("tok_card_"+uuid.NewString()[:8], "standard", sku, qty)
	}
	s.PlaceEach(t, n, c, body, func(i int, _ []byte, a testenv.Answer) {
		statuses[a.Status]++
		switch a.Status {
		case http.StatusAccepted:
			accepted[a.OrderID] = qtys[i]
		case http.StatusConflict, http.StatusServiceUnavailable:
		default:
			t.Errorf("order %d: %d %s", i, a.Status, a.Body)
		}
	})
	return accepted, statuses
}

// waitSettled waits until order-worker has committed everything on its source and retry topics.
func (s *stack) waitSettled(t *testing.T, within time.Duration) {
	t.Helper()
	s.WaitSettled(t, "order-worker", testenv.OrderWorkerTopics(), within)
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

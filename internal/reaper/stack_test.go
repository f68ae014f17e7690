package reaper_test

import (
	"net/http"
	"testing"

	"github.com/google/uuid"

	"github.com/orderpipe/orderpipe/internal/paysim"
	"github.com/orderpipe/orderpipe/internal/postgres"
	"github.com/orderpipe/orderpipe/internal/testenv"
)

// stack is the whole pipeline of one test (testenv.Pipeline): its own Postgres schema, Redis
// prefix and broker, a payment simulator, the real api process and order-workers started on
// demand.
type stack struct {
	*testenv.Pipeline
}

func setupStack(t *testing.T, sim paysim.Config, onHand map[string]int64, apiEnv map[string]string) *stack {
	t.Helper()
	var products []postgres.Product
	for sku := range onHand {
		products = append(products, postgres.Product{SKU: sku, Name: "Part " + sku, Category: "parts", Brand: "Bosch", PriceMinor: 1000, Currency: "EUR", Active: true})
	}
	return &stack{testenv.NewPipeline(t, testenv.PipelineOptions{
		Products: products, Stock: onHand, Payment: sim, APIEnv: apiEnv,
		// These tests run order-worker's retry settings at their defaults unless they set them.
		Env: map[string]string{"ORDER_WORKER_RETRY_IN_PLACE": "", "ORDER_WORKER_RETRY_TIERS": ""},
	})}
}

// place posts n one-line orders with concurrency c and returns the accepted order ids and how
// many answers each status got.
func (s *stack) place(t *testing.T, n, c int, sku string) (map[string]bool, map[int]int) {
	t.Helper()
	accepted := map[string]bool{}
	statuses := map[int]int{}
	body := func(int) []byte {
		return testenv.OrderJSON("tok_card_"+uuid.NewString()[:8], "standard", sku, 1)
	}
	s.PlaceEach(t, n, c, body, func(_ int, _ []byte, a testenv.Answer) {
		statuses[a.Status]++
		if a.Status == http.StatusAccepted {
			accepted[a.OrderID] = true
		}
	})
	return accepted, statuses
}

// statusOf returns every decided order's status and cancel reason.
func (s *stack) statusOf(t *testing.T) map[string]string {
	t.Helper()
	rows, err := s.Pool.Query(t.Context(), `SELECT id::text, status || coalesce('/' || cancel_reason, '') FROM orders`)
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

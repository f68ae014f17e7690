package orderworker_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/orderpipe/orderpipe/internal/paysim"
	"github.com/orderpipe/orderpipe/internal/postgres"
	"github.com/orderpipe/orderpipe/internal/testenv"
)

// 1,000 orders through the api and one order-worker: each ends confirmed or cancelled exactly
// once, holds are confirmed or released to match, nothing is oversold, each captured order is
// captured once, and declines cancel with payment_declined.
func TestThousandOrdersReachATerminalStateOnce(t *testing.T) {
	t.Parallel()
	s := setup(t, paysim.Config{Latency: 2 * time.Millisecond, DeclineRate: 0.1, Seed: 7},
		map[string]int64{"BRK-PAD-1001": 300, "FLT-OIL-2001": 400, "BAT-5001": 150, "WIP-6001": 500, "TYR-WIN-7101": 250})
	s.Worker(t, nil)
	rng := rand.New(rand.NewPCG(1, 2))
	bodies := make([][]byte, 1000)
	for i := range bodies {
		prio := "standard"
		if i%5 == 0 {
			prio = "express"
		}
		token := "tok_visa_" + fmt.Sprint(i)
		if i%50 == 0 {
			token = "tok_decline_" + fmt.Sprint(i)
		}
		a, b := skus[rng.IntN(len(skus))], skus[rng.IntN(len(skus))]
		if a == b {
			bodies[i] = orderJSON(token, prio, a, 1+rng.IntN(2))
		} else {
			bodies[i] = orderJSON(token, prio, a, 1, b, 1)
		}
	}
	// The orders ask for more units than the stock has: some are refused as out of stock.
	placed, refused := s.PlaceManyOutOfStock(t, len(bodies), 32, func(i int) []byte { return bodies[i] })
	accepted := map[string]bool{}
	for id := range placed {
		accepted[id] = true
	}
	if len(accepted) < 500 {
		t.Fatalf("only %d of 1000 orders accepted (%d out of stock); the stock should take most", len(accepted), refused)
	}
	s.waitDecided(t, accepted, 90*time.Second)
	s.waitSettled(t, 90*time.Second)
	s.checkInvariants(t, accepted)
	out := s.outcomes(t)
	t.Logf("%d accepted; outcomes %v; simulator %+v", len(accepted), out, s.Sim.Stats())
	if out["confirmed"] == 0 {
		t.Fatalf("outcomes %v: want confirmed orders", out)
	}
	// Every accepted order paid with a declining token is cancelled for it, exactly.
	forced := 0
	for id, i := range placed {
		if i%50 != 0 {
			continue
		}
		forced++
		var status, reason string
		if err := s.Pool.QueryRow(t.Context(), `SELECT status, coalesce(cancel_reason, '') FROM orders WHERE id = $1`, id).Scan(&status, &reason); err != nil {
			t.Fatalf("order %s (tok_decline_%d): %v", id, i, err)
		}
		if status != "cancelled" || reason != "payment_declined" {
			t.Errorf("order %s paid with tok_decline_%d is %s %s, want cancelled payment_declined", id, i, status, reason)
		}
	}
	if forced == 0 || out["cancelled/payment_declined"] < forced {
		t.Fatalf("outcomes %v: %d accepted orders had a declining token, want each among the declines", out, forced)
	}
	for k := range out {
		if strings.HasPrefix(k, "cancelled/") && k != "cancelled/payment_declined" {
			t.Errorf("unexpected outcome %s (%d): stock was held, only declines should cancel", k, out[k])
		}
	}
}

// Replaying the whole topic into the same group changes no row and captures nothing again; the
// outcome events re-published are the same events (same ids).
func TestReplayIntoTheSameGroupChangesNothing(t *testing.T) {
	t.Parallel()
	s := setup(t, paysim.Config{Latency: time.Millisecond, DeclineRate: 0.2, Seed: 3},
		map[string]int64{"BRK-PAD-1001": 100, "FLT-OIL-2001": 100, "BAT-5001": 100, "WIP-6001": 100, "TYR-WIN-7101": 100})
	w := s.Worker(t, nil)
	accepted := s.PlaceMany(t, 200, 16, func(i int) []byte { return orderJSON("tok_card_"+fmt.Sprint(i), "standard", skus[i%len(skus)], 1) })
	s.waitDecided(t, accepted, 60*time.Second)
	s.waitSettled(t, 60*time.Second)
	s.checkInvariants(t, accepted)
	before, capturesBefore := s.snapshot(t), s.Sim.Stats().Captures
	eventsBefore := len(s.Records(t, "orders.events"))
	if err := w.Stop(); err != nil {
		t.Fatal(err)
	}
	s.resetGroup(t, "order-worker", "orders.placed", "orders.placed.priority")
	s.Worker(t, nil)
	// Wait until the replayed outcomes are re-published: every order once more.
	deadline := time.Now().Add(60 * time.Second)
	for len(s.Records(t, "orders.events")) < 2*eventsBefore {
		if time.Now().After(deadline) {
			t.Fatalf("replay did not finish: %d outcome records, want %d", len(s.Records(t, "orders.events")), 2*eventsBefore)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if after := s.snapshot(t); after != before {
		t.Fatalf("replay changed Postgres:\nbefore %s\nafter  %s", before, after)
	}
	if c := s.Sim.Stats().Captures; c != capturesBefore {
		t.Fatalf("replay captured %d payments more", c-capturesBefore)
	}
	s.checkInvariants(t, accepted)
}

var _ = http.StatusOK

// The pipeline behind a transaction-mode connection pooler (a real PgBouncer), as ARCHITECTURE's
// scale section runs it: the api and two order-workers reach Postgres only through the pooler,
// with DATABASE_URL's default_query_exec_mode=cache_describe, and every order is still decided once with
// every invariant intact. The pooler hands each transaction to any of its server connections, so
// session state (named prepared statements, session settings, advisory locks) would break here.
func TestPipelineThroughATransactionPooler(t *testing.T) {
	t.Parallel()
	var products []postgres.Product
	for i, sku := range skus {
		products = append(products, postgres.Product{SKU: sku, Name: "Part " + sku, Category: []string{"brakes", "filters", "batteries", "wipers", "tyres"}[i],
			Brand: "Bosch", PriceMinor: int64(1000 + 250*i), Currency: "EUR", Active: true})
	}
	stock := map[string]int64{"BRK-PAD-1001": 60, "FLT-OIL-2001": 80, "BAT-5001": 30, "WIP-6001": 100, "TYR-WIN-7101": 50}
	p := testenv.NewPipeline(t, testenv.PipelineOptions{
		Products: products, Stock: stock, Payment: paysim.Config{Latency: time.Millisecond, DeclineRate: 0.1, Seed: 11}, ViaPooler: true,
	})
	if p.ProcessDBURL == p.DBURL || !strings.Contains(p.ProcessDBURL, "default_query_exec_mode=cache_describe") {
		t.Fatalf("the processes' DATABASE_URL %q is not the pooler's", p.ProcessDBURL)
	}
	s := &stack{Pipeline: p, stock: stock}
	s.Worker(t, nil)
	s.Worker(t, nil)
	// About 450 units asked of 320 in stock: some orders are refused as out of stock.
	placed, refused := s.PlaceManyOutOfStock(t, 300, 16, func(i int) []byte {
		return orderJSON("tok_visa_"+fmt.Sprint(i), "standard", skus[i%len(skus)], 1+i%2)
	})
	accepted := map[string]bool{}
	for id := range placed {
		accepted[id] = true
	}
	if len(accepted) < 150 {
		t.Fatalf("only %d of 300 orders accepted (%d out of stock)", len(accepted), refused)
	}
	s.waitDecided(t, accepted, 90*time.Second)
	s.waitSettled(t, 90*time.Second)
	s.checkInvariants(t, accepted)
	if xacts := testenv.PoolerTransactions(t, p.ProcessDBURL); xacts < 10 {
		t.Fatalf("the pooler served %d transactions: the processes did not go through it", xacts)
	}
	// The api reads orders through the pooler too.
	for id := range accepted {
		req, _ := http.NewRequest(http.MethodGet, s.API.URL+"/v1/orders/"+id, nil)
		req.Header.Set("Authorization", "Bearer "+s.Token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var o struct {
			Status string `json:"status"`
		}
		err = json.NewDecoder(resp.Body).Decode(&o)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK || (o.Status != "confirmed" && o.Status != "cancelled") {
			t.Fatalf("GET /v1/orders/%s through the pooler: %d %q (%v), want a decision", id, resp.StatusCode, o.Status, err)
		}
		break
	}
}

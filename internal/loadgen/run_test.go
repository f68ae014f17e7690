package loadgen_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/orderpipe/orderpipe/internal/event"
	"github.com/orderpipe/orderpipe/internal/loadgen"
	"github.com/orderpipe/orderpipe/internal/postgres"
	"github.com/orderpipe/orderpipe/internal/testenv"
)

// TestRunAgainstTheAPI plays the smoke scenario against the real api (rate-limited, so buyers
// get 429s and retry) and checks that the recorded outcomes match what the server has: every
// accepted order id is on the order topics exactly once and becomes an order in Postgres,
// nothing else is on the topics, duplicates got the same order id, and retries used the same key.
func TestRunAgainstTheAPI(t *testing.T) {
	t.Parallel()
	s, err := loadgen.LoadScenario("../../scenarios/smoke.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s.RequestTimeout.Duration = 30 * time.Second // never "unknown" because the machine is slow
	var products []postgres.Product
	for _, p := range s.Products() {
		products = append(products, p.Product)
	}
	p := testenv.NewPipeline(t, testenv.PipelineOptions{
		Products: products,
		Stock:    s.Stock(),
		// 80 buyers/s at the peak against 40/s: some are told 429 and retry after Retry-After.
		APIEnv: map[string]string{"RATE_LIMIT_PER_SECOND": "40", "RATE_LIMIT_BURST": "20"},
	})
	p.Worker(t, nil)

	var progress bytes.Buffer
	var samples []loadgen.Sample
	res, err := loadgen.Run(t.Context(), s, loadgen.Target{BaseURL: p.API.URL, Token: p.Token},
		loadgen.Options{Progress: &progress, OnSample: func(sm loadgen.Sample) { samples = append(samples, sm) }})
	if err != nil {
		t.Fatal(err)
	}

	// One first submission per buyer, one more per duplicate buyer.
	first, dups := map[int]loadgen.Outcome{}, map[int]loadgen.Outcome{}
	for _, o := range res.Outcomes {
		m := first
		if o.Duplicate {
			m = dups
		}
		if _, seen := m[o.Buyer]; seen {
			t.Fatalf("buyer %d has two outcomes with duplicate=%v", o.Buyer, o.Duplicate)
		}
		m[o.Buyer] = o
		if o.Class == loadgen.ClassUnknown || o.Class == loadgen.ClassError {
			t.Errorf("buyer %d: %s %d %s", o.Buyer, o.Class, o.Status, o.Reason)
		}
		if o.Attempts != len(o.Tries)+1 {
			t.Errorf("buyer %d: attempts %d with %d earlier tries", o.Buyer, o.Attempts, len(o.Tries))
		}
	}
	if len(first) != 600 {
		t.Fatalf("%d buyers have an outcome, want 600", len(first))
	}
	if len(dups) < 20 {
		t.Fatalf("%d duplicate submissions, want about 8%% of 600", len(dups))
	}

	// Retries happened, after 429s, with the same key (the same order id on acceptance).
	retried := 0
	for _, o := range res.Outcomes {
		for _, tr := range o.Tries {
			if tr.Status != 429 && tr.Reason != "idempotency-key-in-flight" {
				t.Errorf("buyer %d retried after %d %s, want only 429 or in-flight", o.Buyer, tr.Status, tr.Reason)
			}
		}
		if len(o.Tries) > 0 && o.Class == loadgen.ClassAccepted {
			retried++
		}
	}
	if retried == 0 {
		t.Errorf("no buyer was accepted after a retry; want some under a 40/s rate limit")
	}

	// Duplicates never got another order id.
	sameID := 0
	for n, d := range dups {
		o := first[n]
		if d.IdempotencyKey != o.IdempotencyKey {
			t.Errorf("buyer %d: duplicate key %q, first %q", n, d.IdempotencyKey, o.IdempotencyKey)
		}
		if d.Class == loadgen.ClassAccepted && o.Class == loadgen.ClassAccepted {
			if d.OrderID != o.OrderID {
				t.Errorf("buyer %d: duplicate accepted as %s, first as %s", n, d.OrderID, o.OrderID)
			}
			sameID++
		}
	}
	if sameID == 0 {
		t.Errorf("no duplicate pair was accepted twice; want the same order id replayed")
	}

	// Every accepted order id (of a first or a second submission) is on the topics exactly
	// once, and nothing else is.
	accepted := map[string]bool{}
	for _, o := range res.Outcomes {
		if o.Class == loadgen.ClassAccepted {
			accepted[o.OrderID] = true
		}
	}
	if len(accepted) == 0 || len(accepted) > 600 {
		t.Fatalf("%d accepted orders", len(accepted))
	}
	onTopic := map[string]int{}
	for _, topic := range []string{event.TopicOrdersPlaced, event.TopicOrdersPlacedPriority} {
		for _, r := range p.Records(t, topic) {
			var d struct {
				OrderID    string `json:"order_id"`
				CustomerID string `json:"customer_id"`
			}
			if err := json.Unmarshal(r.Value, &d); err != nil {
				t.Fatalf("%s record: %v", topic, err)
			}
			if string(r.Key) != d.OrderID {
				t.Errorf("%s record key %q, order id %q", topic, r.Key, d.OrderID)
			}
			if !strings.HasPrefix(d.CustomerID, "lg-"+res.RunID+"-") {
				t.Errorf("order %s of customer %q is not from run %s", d.OrderID, d.CustomerID, res.RunID)
			}
			onTopic[d.OrderID]++
		}
	}
	for id := range accepted {
		if onTopic[id] != 1 {
			t.Errorf("accepted order %s is on the topics %d times, want 1", id, onTopic[id])
		}
	}
	if len(onTopic) != len(accepted) {
		t.Errorf("%d orders on the topics, %d accepted", len(onTopic), len(accepted))
	}

	// The worker decides them all; Postgres has exactly the accepted orders.
	p.WaitDecided(t, len(accepted), 60*time.Second)
	rows, err := p.Pool.Query(t.Context(), `SELECT id::text FROM orders`)
	if err != nil {
		t.Fatal(err)
	}
	inPG := map[string]bool{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		inPG[id] = true
	}
	rows.Close()
	for id := range accepted {
		if !inPG[id] {
			t.Errorf("accepted order %s not in Postgres", id)
		}
	}
	if len(inPG) != len(accepted) {
		t.Errorf("%d orders in Postgres, %d accepted", len(inPG), len(accepted))
	}

	// The timeline covers the run and counts every arrival.
	var offered float64
	for _, sm := range res.Timeline {
		offered += sm.Offered
	}
	if offered != 600 {
		t.Errorf("timeline counts %g arrivals, want 600", offered)
	}
	if len(samples) == 0 || !strings.Contains(progress.String(), "done: ") {
		t.Errorf("%d live samples, progress %q: want samples and a closing line", len(samples), progress.String())
	}

	// The outcomes survive a JSON round trip.
	var buf bytes.Buffer
	if err := res.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	back, err := loadgen.ReadResult(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if len(back.Outcomes) != len(res.Outcomes) || back.RunID != res.RunID || back.Stock["BAT-5001"] != 20 {
		t.Errorf("round trip: %d outcomes run %s, want %d run %s", len(back.Outcomes), back.RunID, len(res.Outcomes), res.RunID)
	}
}

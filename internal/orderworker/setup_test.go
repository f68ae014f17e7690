package orderworker_test

import (
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderpipe/orderpipe/internal/event"
	"github.com/orderpipe/orderpipe/internal/paysim"
	"github.com/orderpipe/orderpipe/internal/postgres"
	"github.com/orderpipe/orderpipe/internal/testenv"
)

// stack is the pipeline of one test (testenv.Pipeline over the five SKUs) and the stock it
// was seeded with.
type stack struct {
	*testenv.Pipeline
	stock map[string]int64
}

var skus = []string{"BRK-PAD-1001", "FLT-OIL-2001", "BAT-5001", "WIP-6001", "TYR-WIN-7101"}

func setup(t *testing.T, sim paysim.Config, stock map[string]int64, brokerOpts ...kfake.Opt) *stack {
	t.Helper()
	var products []postgres.Product
	for i, sku := range skus {
		products = append(products, postgres.Product{SKU: sku, Name: "Part " + sku, Category: []string{"brakes", "filters", "batteries", "wipers", "tyres"}[i],
			Brand: "Bosch", PriceMinor: int64(1000 + 250*i), Currency: "EUR", Active: true})
	}
	p := testenv.NewPipeline(t, testenv.PipelineOptions{Products: products, Stock: stock, Payment: sim, Kafka: brokerOpts})
	return &stack{Pipeline: p, stock: stock}
}

func orderJSON(token, priority string, lines ...any) []byte {
	return testenv.OrderJSON(token, priority, lines...)
}

// waitDecided waits until every accepted order has a row in Postgres.
func (s *stack) waitDecided(t *testing.T, accepted map[string]bool, within time.Duration) {
	t.Helper()
	s.WaitDecided(t, len(accepted), within)
}

// outcomes counts decided orders by status and reason.
func (s *stack) outcomes(t *testing.T) map[string]int {
	t.Helper()
	rows, err := s.Pool.Query(t.Context(), `SELECT status || coalesce('/' || cancel_reason, ''), count(*) FROM orders GROUP BY 1`)
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

// snapshot is a checksum of every table order-worker writes, to prove a replay changed nothing.
func (s *stack) snapshot(t *testing.T) string {
	t.Helper()
	var out strings.Builder
	for _, q := range []string{
		`SELECT md5(coalesce(string_agg(id::text || status || coalesce(cancel_reason,'') || coalesce(decided_at::text,''), ',' ORDER BY id), '')) FROM orders`,
		`SELECT md5(coalesce(string_agg(order_id::text || line_no || sku || quantity, ',' ORDER BY order_id, line_no), '')) FROM order_lines`,
		`SELECT md5(coalesce(string_agg(order_id::text || coalesce(provider_id,'') || status, ',' ORDER BY order_id), '')) FROM payments`,
		`SELECT md5(coalesce(string_agg(order_id::text || sku || quantity, ',' ORDER BY order_id, sku), '')) FROM allocations`,
		`SELECT md5(coalesce(string_agg(sku || on_hand || ':' || allocated, ',' ORDER BY sku), '')) FROM stock`,
		`SELECT count(*)::text FROM processed_events`,
	} {
		var v string
		if err := s.Pool.QueryRow(t.Context(), q).Scan(&v); err != nil {
			t.Fatal(err)
		}
		out.WriteString(v + ";")
	}
	return out.String()
}

// checkInvariants checks, at rest, the promises I1-I4 and I6 for the accepted orders.
func (s *stack) checkInvariants(t *testing.T, accepted map[string]bool) {
	t.Helper()
	ctx := t.Context()
	// I2: every accepted order is decided, exactly once, and nothing else is.
	rows, err := s.Pool.Query(ctx, `SELECT id::text, status FROM orders`)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]string{}
	for rows.Next() {
		var id, st string
		if err := rows.Scan(&id, &st); err != nil {
			t.Fatal(err)
		}
		if !accepted[id] {
			t.Errorf("order %s in Postgres was never accepted", id)
		}
		if st != "confirmed" && st != "cancelled" {
			t.Errorf("order %s is %s, want a terminal status", id, st)
		}
		seen[id] = st
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	for id := range accepted {
		if _, ok := seen[id]; !ok {
			t.Errorf("I2: accepted order %s has no terminal state", id)
		}
	}
	// I1: no oversell, and allocated is exactly the sum of allocations.
	var bad int
	if err := s.Pool.QueryRow(ctx, `
SELECT count(*) FROM stock s
WHERE s.allocated > s.on_hand
   OR s.allocated <> coalesce((SELECT sum(quantity) FROM allocations a WHERE a.sku = s.sku), 0)`).Scan(&bad); err != nil {
		t.Fatal(err)
	}
	if bad != 0 {
		t.Errorf("I1: %d SKUs oversold or with allocations not matching", bad)
	}
	// I3: one capture per order at most; captures match confirmed plus refunded orders.
	st := s.Sim.Stats()
	if len(st.DoubleCaptured) > 0 {
		t.Errorf("I3: orders captured twice: %v", st.DoubleCaptured)
	}
	var captured int64
	if err := s.Pool.QueryRow(ctx, `SELECT count(*) FROM payments WHERE status IN ('captured','refunded','refund_pending')`).Scan(&captured); err != nil {
		t.Fatal(err)
	}
	if st.Captures != captured {
		t.Errorf("I3: simulator captured %d, Postgres records %d captured payments", st.Captures, captured)
	}
	var confirmed int64
	if err := s.Pool.QueryRow(ctx, `SELECT count(*) FROM orders WHERE status = 'confirmed'`).Scan(&confirmed); err != nil {
		t.Fatal(err)
	}
	var refunded int64
	if err := s.Pool.QueryRow(ctx, `SELECT count(*) FROM payments WHERE status = 'refunded'`).Scan(&refunded); err != nil {
		t.Fatal(err)
	}
	if st.Captures != confirmed+refunded || st.Refunds != refunded {
		t.Errorf("I3: %d captures and %d refunds for %d confirmed and %d refunded orders", st.Captures, st.Refunds, confirmed, refunded)
	}
	// I4 and I6 at rest: no hold left, and Redis availability equals on_hand - allocated.
	levels, err := postgres.NewStockStore(s.Pool).All(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range levels {
		r, err := s.Store.Availability(ctx, l.SKU)
		if err != nil {
			t.Fatal(err)
		}
		if r.Held != 0 || r.ATP != l.OnHand-l.Allocated {
			t.Errorf("I4/I6: %s redis atp=%d held=%d, postgres on_hand=%d allocated=%d", l.SKU, r.ATP, r.Held, l.OnHand, l.Allocated)
		}
	}
	// Outcome events: one distinct event per decided order, of the matching type.
	events := map[string]string{}
	for _, r := range s.Records(t, event.TopicOrderEvents) {
		env, err := event.FromRecord(r)
		if err != nil {
			t.Fatal(err)
		}
		if prev, ok := events[string(r.Key)]; ok && prev != env.ID {
			t.Errorf("order %s has two different outcome events", r.Key)
		}
		events[string(r.Key)] = env.ID
		want := map[string]string{"confirmed": event.TypeOrderConfirmed, "cancelled": event.TypeOrderCancelled}[seen[string(r.Key)]]
		if env.Type != want {
			t.Errorf("order %s is %s but its event is %s", r.Key, seen[string(r.Key)], env.Type)
		}
	}
	if len(events) != len(seen) {
		t.Errorf("%d orders have outcome events, %d are decided", len(events), len(seen))
	}
}

// resetGroup moves the group's committed offsets back to the start of topics (the group must be
// empty), as ops would with orderctl replay.
func (s *stack) resetGroup(t *testing.T, group string, topics ...string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.Kafka.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	starts, err := adm.ListStartOffsets(t.Context(), topics...)
	if err != nil {
		t.Fatal(err)
	}
	offsets := kadm.Offsets{}
	starts.Each(func(o kadm.ListedOffset) {
		offsets.Add(kadm.Offset{Topic: o.Topic, Partition: o.Partition, At: o.Offset, LeaderEpoch: -1})
	})
	resp, err := adm.CommitOffsets(t.Context(), group, offsets)
	if err != nil || resp.Error() != nil {
		t.Fatalf("reset %s: %v %v", group, err, resp.Error())
	}
}

// waitSettled waits until order-worker has committed everything on its source and retry topics
// (lag 0): every record's follow-up steps are done, so the state is at rest.
func (s *stack) waitSettled(t *testing.T, within time.Duration) {
	t.Helper()
	s.WaitSettled(t, "order-worker", testenv.OrderWorkerTopics(), within)
}

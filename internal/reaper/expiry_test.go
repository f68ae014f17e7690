package reaper_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/orderpipe/orderpipe/internal/event"
	"github.com/orderpipe/orderpipe/internal/kafka"
	"github.com/orderpipe/orderpipe/internal/paysim"
	"github.com/orderpipe/orderpipe/internal/postgres"
	"github.com/orderpipe/orderpipe/internal/reaper"
)

// 200 orders whose payment hangs past their hold deadline (the provider is down when they are
// first tried, and their retry waits in a retry topic until after the deadline), with the reaper
// running as inventory-sync runs it: every unit comes back exactly once and sells again to 200 new
// buyers, the late orders end cancelled with reason expired (refunded), each expiry is recorded by
// one hold.expired event, and nothing is oversold at any point.
func TestHoldsExpireWhilePaymentHangs(t *testing.T) {
	t.Parallel()
	const sku, units = "BRK-PAD-1001", 200
	s := setupStack(t, paysim.Config{Latency: time.Millisecond, Seed: 3}, map[string]int64{sku: units}, map[string]string{"HOLD_TTL": "10s"})
	s.Sim.SetDown(true)
	s.Worker(t, map[string]string{"ORDER_WORKER_RETRY_IN_PLACE": "500ms", "ORDER_WORKER_RETRY_TIERS": "20s,30s"})

	v, err := event.NewValidator()
	if err != nil {
		t.Fatal(err)
	}
	producer, err := kafka.NewClient(kafka.ClientConfig{Brokers: s.Kafka.ListenAddrs(), ClientID: "reaper", ProduceTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	reg := prometheus.NewRegistry()
	r := reaper.New(reaper.Settings{ReaperInterval: 200 * time.Millisecond, ReaperBatchSKUs: 100, ReaperMaxPerSKU: 500, ReaperSKURefresh: time.Minute}, reaper.Deps{
		Holds: s.Store, Stock: postgres.NewStockStore(s.Pool), Producer: producer, Validator: v, Source: "orderpipe/inventory-sync",
		Log: slog.New(slog.NewJSONHandler(io.Discard, nil)), Registerer: reg,
	})
	ctx, stop := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Go(func() { _ = r.Run(ctx, 200*time.Millisecond) })
	defer wg.Wait()
	defer stop()

	late, st := s.place(t, units, 16, sku)
	if len(late) != units {
		t.Fatalf("first sale: %v, want %d accepted", st, units)
	}
	// The worker tries them while the provider is down and parks them in the retry topic.
	s.waitSourceCommitted(t, 20*time.Second)
	s.Sim.SetDown(false)

	// The deadlines pass: the reaper returns every unit.
	deadline := time.Now().Add(30 * time.Second)
	for {
		stock, err := s.Store.Availability(t.Context(), sku)
		if err != nil {
			t.Fatal(err)
		}
		if stock.ATP > units || stock.Held < 0 {
			t.Fatalf("stock %+v: more than %d units available, a hold came back twice", stock, units)
		}
		if stock.ATP == units && stock.Held == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("units not back after the deadlines: %+v", stock)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// They sell again, exactly once each.
	again, st := s.place(t, units, 16, sku)
	if len(again) != units {
		t.Fatalf("second sale: %v, want %d accepted", st, units)
	}
	if _, st := s.place(t, 1, 1, sku); st[http.StatusConflict] != 1 {
		t.Fatalf("one more order: %v, want 409", st)
	}

	// Everything decided: the new buyers confirmed, the late orders cancelled as expired.
	deadline = time.Now().Add(90 * time.Second)
	var got map[string]string
	for {
		got = s.statusOf(t)
		if len(got) >= 2*units {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d orders decided", len(got), 2*units)
		}
		time.Sleep(200 * time.Millisecond)
	}
	for id := range again {
		if got[id] != "confirmed" {
			t.Fatalf("order %s of the second sale is %q, want confirmed", id, got[id])
		}
	}
	for id := range late {
		if got[id] != "cancelled/expired" {
			t.Fatalf("late order %s is %q, want cancelled/expired", id, got[id])
		}
	}
	var onHand, allocated int64
	if err := s.Pool.QueryRow(t.Context(), `SELECT on_hand, allocated FROM stock WHERE sku = $1`, sku).Scan(&onHand, &allocated); err != nil {
		t.Fatal(err)
	}
	if onHand != units || allocated != units {
		t.Fatalf("on_hand %d allocated %d, want %d of %d: every unit sold once", onHand, allocated, units, units)
	}
	deadline = time.Now().Add(30 * time.Second)
	for s.Sim.Stats().Refunds != units {
		if time.Now().After(deadline) {
			t.Fatalf("%d refunds, want %d (the late orders were captured when the provider came back)", s.Sim.Stats().Refunds, units)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if stock, err := s.Store.Availability(t.Context(), sku); err != nil || stock.ATP != 0 || stock.Held != 0 {
		t.Fatalf("redis at rest: %+v %v, want atp 0 held 0", stock, err)
	}
	if n := gather(t, reg, "orderpipe_holds_expired_total"); n != units {
		t.Fatalf("orderpipe_holds_expired_total %v, want %d", n, units)
	}
	expired := map[string]bool{}
	for _, rec := range records(t, s.Kafka.ListenAddrs(), event.TopicOrderEvents) {
		env, err := event.FromRecord(rec)
		if err != nil || env.Type != event.TypeHoldExpired {
			continue
		}
		h, err := event.Decode[event.HoldExpired](v, env)
		if err != nil {
			t.Fatal(err)
		}
		if !late[h.OrderID] {
			t.Fatalf("hold.expired for order %s, which was not a late order", h.OrderID)
		}
		expired[h.OrderID] = true
	}
	if len(expired) != units {
		t.Fatalf("%d late orders have a hold.expired event, want %d", len(expired), units)
	}
}

// waitSourceCommitted waits until order-worker has committed all of orders.placed (each record
// decided or forwarded to a retry topic).
func (s *stack) waitSourceCommitted(t *testing.T, within time.Duration) {
	t.Helper()
	s.WaitSettled(t, "order-worker", []string{event.TopicOrdersPlaced}, within)
}

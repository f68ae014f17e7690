package reconcile_test

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderpipe/orderpipe/internal/event"
	"github.com/orderpipe/orderpipe/internal/paysim"
)

// FLUSHALL in the middle of a flash sale (every key of the test's prefix deleted while orders
// arrive and order-worker works through a backlog), with periodic reconciliation running as
// inventory-sync runs it: the api refuses orders with 503 until the SKUs are rebuilt (never
// sells blind), every order accepted before the flush still completes, nothing is oversold, no
// order is refused by the Postgres guard (Redis never promised more than Postgres has), every
// unit ends up sold, and at rest the drift is zero.
func TestFlushMidSaleRecovers(t *testing.T) {
	t.Parallel()
	onHand := map[string]int64{"BRK-PAD-1001": 100, "FLT-OIL-2001": 100}
	s := setupStack(t, paysim.Config{Latency: 60 * time.Millisecond, Seed: 5}, onHand, 200*time.Millisecond)
	// A slow worker, so that a backlog of accepted, undecided orders exists at the flush.
	s.Worker(t, map[string]string{"ORDER_WORKER_PAYMENT_CONCURRENCY": "4", "ORDER_WORKER_BATCH_SIZE": "16"})

	pick := func(i int) (string, int) { return []string{"BRK-PAD-1001", "FLT-OIL-2001"}[i%2], 1 + i%2 }
	// The sale, with the flush in its middle.
	var before map[string]int
	var beforeStatus map[int]int
	var sale sync.WaitGroup
	sale.Go(func() { before, beforeStatus = s.place(t, 80, 8, pick) })
	deadline := time.Now().Add(30 * time.Second)
	for s.placedRecords(t) < 40 {
		if time.Now().After(deadline) {
			t.Fatal("40 orders not accepted within 30s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	s.flush(t)
	sale.Wait()

	// Until a rebuild runs the api must not sell blind.
	if _, during := s.place(t, 4, 4, pick); during[http.StatusServiceUnavailable] != 4 {
		t.Fatalf("answers while the SKUs are missing: %v, want 4 x 503", during)
	}

	// Recovery: periodic reconciliation, as inventory-sync runs it, rebuilds the SKUs while the
	// sale goes on until sold out.
	ctx, stop := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Go(func() { _ = s.rec.Run(ctx, 500*time.Millisecond) })
	defer wg.Wait()
	defer stop()
	after, afterStatus := map[string]int{}, map[int]int{}
	deadline = time.Now().Add(60 * time.Second)
	for soldOut := false; !soldOut; {
		if time.Now().After(deadline) {
			t.Fatalf("the sale after the flush never sold out: %v", afterStatus)
		}
		acc, st := s.place(t, 20, 8, pick)
		soldOut = st[http.StatusConflict] == 20 // both SKUs refuse every order
		for id, q := range acc {
			after[id] = q
		}
		for code, n := range st {
			afterStatus[code] += n
		}
	}
	t.Logf("before and at the flush: %d accepted %v; after: %d accepted %v", len(before), beforeStatus, len(after), afterStatus)

	all := map[string]int{}
	for _, m := range []map[string]int{before, after} {
		for id, q := range m {
			all[id] = q
		}
	}
	s.WaitDecided(t, len(all), 120*time.Second)
	s.waitSettled(t, 60*time.Second)

	// Every accepted order completed, all confirmed: no decline was configured, and the guard
	// refused none (Redis never promised units Postgres did not have).
	out := s.outcomes(t)
	if out["confirmed"] != len(all) || len(out) != 1 {
		t.Fatalf("outcomes %v, want all %d accepted orders confirmed", out, len(all))
	}
	for id := range before {
		var st string
		if err := s.pool.QueryRow(t.Context(), `SELECT status FROM orders WHERE id = $1`, id).Scan(&st); err != nil || st != "confirmed" {
			t.Fatalf("order %s accepted before the flush: %q %v, want confirmed", id, st, err)
		}
	}
	// I1, and every unit sold: allocated == on_hand.
	var oversold, unsold int
	if err := s.pool.QueryRow(t.Context(), `SELECT count(*) FILTER (WHERE allocated > on_hand), count(*) FILTER (WHERE allocated < on_hand) FROM stock`).Scan(&oversold, &unsold); err != nil {
		t.Fatal(err)
	}
	if oversold != 0 || unsold != 0 {
		t.Fatalf("%d SKUs oversold, %d with units left unsold; want every unit sold exactly", oversold, unsold)
	}
	// Drift returns to zero.
	deadline = time.Now().Add(20 * time.Second)
	for {
		rep, err := s.rec.Check(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if rep.Clean() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("drift at rest: %+v", rep)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if held := counter(t, s.reg, "orderpipe_reconcile_holds_total", "held"); held == 0 {
		t.Fatalf("the rebuild gave back no hold: the flush did not hit orders in flight, the test proves nothing")
	}
}

// placedRecords counts the OrderPlaced records on the broker.
func (s *stack) placedRecords(t *testing.T) int64 {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.kafka.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(t.Context(), event.TopicOrdersPlaced)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
	return n
}

func counter(t *testing.T, s *prometheus.Registry, name, label string) float64 {
	t.Helper()
	mfs, err := s.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) > 0 && m.GetLabel()[0].GetValue() == label {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

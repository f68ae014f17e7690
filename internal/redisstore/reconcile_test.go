package redisstore_test

import (
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/orderpipe/orderpipe/internal/redisstore"
)

// A lost SKU is rebuilt in one step: live holds come back with their deadlines, holds past their
// deadline end as expired (outbox entry, late confirm takes the units back), ATP is truth minus
// held and may go negative, and a second rebuild changes nothing.
func TestRebuildStock(t *testing.T) {
	t.Parallel()
	b := setup(t)
	now := time.Now()
	future := now.Add(10 * time.Minute).Truncate(time.Millisecond)
	holds := []redisstore.RebuildHold{
		{OrderID: "o1", Qty: 3, Deadline: future},
		{OrderID: "o2", Qty: 4, Deadline: future},
		{OrderID: "gone", Qty: 2, Deadline: now.Add(-time.Second)},
	}
	res, err := b.store.RebuildStock(t.Context(), "A", 5, nil, holds, nil, now)
	if err != nil {
		t.Fatal(err)
	}
	if want := (redisstore.Rebuilt{Done: true, ATP: -2, Held: 7, Created: 2, Expired: 1}); res != want {
		t.Fatalf("rebuild: got %+v, want %+v", res, want)
	}
	b.wantStock(t, "A", -2, 7)
	b.wantHolds(t, "A", 2)
	got, err := b.store.Holds(t.Context(), "A")
	if err != nil || len(got) != 2 || got[0].Deadline != future.UTC() {
		t.Fatalf("holds %+v %v, want o1 and o2 with deadline %v", got, err, future.UTC())
	}
	pending, err := b.store.PendingExpiries(t.Context(), []string{"A"})
	if err != nil || len(pending) != 1 || pending[0].OrderID != "gone" || pending[0].Qty != 2 {
		t.Fatalf("outbox %+v %v, want the expired hold of gone", pending, err)
	}

	again, err := b.store.RebuildStock(t.Context(), "A", 100, nil, holds, nil, now)
	if err != nil || again.Done {
		t.Fatalf("second rebuild: %+v %v, want nothing done", again, err)
	}
	b.wantStock(t, "A", -2, 7)

	// The re-created holds end like any other; the expired one is confirmed late exactly once.
	if r, err := b.store.Confirm(t.Context(), "o1", []redisstore.Line{{SKU: "A", Qty: 3}}); err != nil || !r[0].Found || r[0].Late {
		t.Fatalf("confirm o1: %+v %v", r, err)
	}
	if r, err := b.store.Confirm(t.Context(), "gone", []redisstore.Line{{SKU: "A", Qty: 2}}); err != nil || !r[0].Late {
		t.Fatalf("confirm gone: %+v %v, want a late confirmation", r, err)
	}
	b.wantStock(t, "A", -4, 4)
}

// A hold that still exists, or that already ended, is not created twice by a rebuild.
func TestRebuildStockKeepsExistingAndEndedHolds(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.seed(t, map[string]int64{"A": 10})
	reserve(t, b.store, "kept", line{SKU: "A", Qty: 2})
	reserve(t, b.store, "ended", line{SKU: "A", Qty: 1})
	if _, err := b.store.Release(t.Context(), "ended", []string{"A"}); err != nil {
		t.Fatal(err)
	}
	// Only the counters are lost.
	if err := b.client.Del(t.Context(), b.prefix+"inv:{A}").Err(); err != nil {
		t.Fatal(err)
	}
	future := time.Now().Add(time.Hour)
	res, err := b.store.RebuildStock(t.Context(), "A", 10, nil, []redisstore.RebuildHold{
		{OrderID: "kept", Qty: 2, Deadline: future}, {OrderID: "ended", Qty: 1, Deadline: future}, {OrderID: "new", Qty: 5, Deadline: future},
	}, nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if res.Created != 1 || res.Held != 7 || res.ATP != 3 {
		t.Fatalf("rebuild: %+v, want 1 created, held 7 (kept + new), atp 3", res)
	}
	b.wantHolds(t, "A", 2)
}

// Repair recounts held from the live holds and sets atp from the truth; with an expected sum it
// refuses to act when the counters moved since they were observed.
func TestRepairStock(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.seed(t, map[string]int64{"A": 10})
	reserve(t, b.store, "o1", line{SKU: "A", Qty: 3})
	// Drift: atp wrong, held wrong, and a dangling zset member without its hold.
	if err := b.client.HSet(t.Context(), b.prefix+"inv:{A}", "atp", 50, "held", 9).Err(); err != nil {
		t.Fatal(err)
	}
	if err := b.client.ZAdd(t.Context(), b.prefix+"holds:{A}", redisZ(time.Now().Add(time.Hour), "ghost")).Err(); err != nil {
		t.Fatal(err)
	}
	stale := int64(58)
	res, err := b.store.RepairStock(t.Context(), "A", 8, &stale, nil)
	if err != nil || res.Outcome != redisstore.RepairSkipped {
		t.Fatalf("repair with a stale observation: %+v %v, want skipped", res, err)
	}
	b.wantStock(t, "A", 50, 9)
	seen := int64(59)
	res, err = b.store.RepairStock(t.Context(), "A", 8, &seen, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := (redisstore.Repaired{Outcome: redisstore.RepairDone, ATPBefore: 50, HeldBefore: 9, ATP: 5, Held: 3}); res != want {
		t.Fatalf("repair: got %+v, want %+v", res, want)
	}
	b.wantStock(t, "A", 5, 3)
	b.wantHolds(t, "A", 1)

	missing, err := b.store.RepairStock(t.Context(), "NOPE", 8, nil, nil)
	if err != nil || missing.Outcome != redisstore.RepairMissing {
		t.Fatalf("repair of a lost SKU: %+v %v, want missing", missing, err)
	}
	if st, _ := b.store.Availability(t.Context(), "NOPE"); st.Known {
		t.Fatalf("repair created counters for a lost SKU: %+v", st)
	}
}

// Releases and explicit announcements reach subscribers; a (re)subscription is reported.
func TestStockChangedPubSub(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.seed(t, map[string]int64{"A": 10})
	got := make(chan string, 10)
	synced := make(chan struct{}, 10)
	go func() {
		_ = b.store.SubscribeStockChanged(t.Context(), func(sku string) { got <- sku }, func() { synced <- struct{}{} })
	}()
	select {
	case <-synced:
	case <-time.After(5 * time.Second):
		t.Fatal("no subscription within 5s")
	}
	reserve(t, b.store, "o1", line{SKU: "A", Qty: 1})
	if _, err := b.store.Release(t.Context(), "o1", []string{"A"}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.store.Release(t.Context(), "o1", []string{"A"}); err != nil { // no hold: no message
		t.Fatal(err)
	}
	if err := b.store.PublishStockChanged(t.Context(), "B"); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"A", "B"} {
		select {
		case sku := <-got:
			if sku != want {
				t.Fatalf("announced %s, want %s", sku, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no announcement of %s within 5s", want)
		}
	}
}

func redisZ(deadline time.Time, member string) redis.Z {
	return redis.Z{Score: float64(deadline.UnixMilli()), Member: member}
}

// ObserveStock reads counters and live holds together; a lost SKU is reported unknown with the
// holds it still has.
func TestObserveStock(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.seed(t, map[string]int64{"A": 10})
	reserve(t, b.store, "o1", line{SKU: "A", Qty: 3})
	reserve(t, b.store, "o2", line{SKU: "A", Qty: 2})
	if err := b.client.HSet(t.Context(), b.prefix+"inv:{A}", "held", 9).Err(); err != nil {
		t.Fatal(err)
	}
	got, err := b.store.ObserveStock(t.Context(), []string{"A", "GONE"})
	if err != nil {
		t.Fatal(err)
	}
	if want := (redisstore.Observed{Known: true, ATP: 5, Held: 9, HeldLive: 5, Holds: 2}); got["A"] != want {
		t.Fatalf("A: got %+v, want %+v", got["A"], want)
	}
	if got["GONE"] != (redisstore.Observed{}) {
		t.Fatalf("GONE: got %+v, want unknown", got["GONE"])
	}
}

// A rebuild raises the stock-sequence marks to what Postgres applied, so a delta of an event the
// truth already includes (still on its way when Redis was lost) does not count again; a later
// event does.
func TestRebuildStockSetsStockMarks(t *testing.T) {
	t.Parallel()
	b := setup(t)
	if _, err := b.store.RebuildStock(t.Context(), "A", 30, map[string]int64{"wh-1": 7, "wh-2": 3}, nil, nil, time.Now()); err != nil {
		t.Fatal(err)
	}
	res, err := b.store.ApplyStockDeltas(t.Context(), map[string][]redisstore.StockDelta{"A": {
		{WarehouseID: "wh-1", Seq: 7, ATP: 10}, // already in the truth
		{WarehouseID: "wh-2", Seq: 4, ATP: 5},  // new
	}})
	if err != nil {
		t.Fatal(err)
	}
	if r := res["A"]; r.Counted != 1 || r.Skipped != 1 {
		t.Fatalf("deltas after the rebuild: %+v, want the old one skipped and the new one counted", r)
	}
	b.wantStock(t, "A", 35, 0)
}

// A repair waits while a stock delta Postgres applied has not reached Redis.
func TestRepairStockWaitsForStockDeltas(t *testing.T) {
	t.Parallel()
	b := setup(t)
	if _, err := b.store.RebuildStock(t.Context(), "A", 30, map[string]int64{"wh-1": 7}, nil, nil, time.Now()); err != nil {
		t.Fatal(err)
	}
	// Postgres applied wh-1 seq 8 (+10); Redis has not yet.
	res, err := b.store.RepairStock(t.Context(), "A", 40, nil, map[string]int64{"wh-1": 8})
	if err != nil || res.Outcome != redisstore.RepairSkipped {
		t.Fatalf("repair with a delta in flight: %+v %v, want skipped", res, err)
	}
	if _, err := b.store.ApplyStockDeltas(t.Context(), map[string][]redisstore.StockDelta{"A": {{WarehouseID: "wh-1", Seq: 8, ATP: 10}}}); err != nil {
		t.Fatal(err)
	}
	res, err = b.store.RepairStock(t.Context(), "A", 40, nil, map[string]int64{"wh-1": 8})
	if err != nil || res.Outcome != redisstore.RepairDone {
		t.Fatalf("repair after the delta landed: %+v %v, want done", res, err)
	}
	b.wantStock(t, "A", 40, 0)
}

package redisstore_test

import (
	"errors"
	"sync"
	"testing"

	"github.com/orderpipe/orderpipe/internal/redisstore"
)

// Each event's delta counts once per warehouse and seq, however often it is sent, and only atp
// moves: the units held by orders in flight stay held.
func TestApplyStockDeltasCountsEachEventOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	b.seed(t, map[string]int64{"BRK-1": 10, "FLT-1": 5})
	reserve(t, b.store, "order-1", redisstore.Line{SKU: "BRK-1", Qty: 4})
	b.wantStock(t, "BRK-1", 6, 4)

	first := map[string][]redisstore.StockDelta{
		"BRK-1": {{WarehouseID: "WH-A", Seq: 3, ATP: 20}, {WarehouseID: "WH-B", Seq: 1, ATP: -2}, {WarehouseID: "WH-A", Seq: 5, ATP: 1}},
		"FLT-1": {{WarehouseID: "WH-A", Seq: 4, ATP: -5}},
	}
	res, err := b.store.ApplyStockDeltas(ctx, first)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := res["BRK-1"], (redisstore.DeltaResult{Counted: 3, Moved: 19}); got != want {
		t.Fatalf("BRK-1: got %+v, want %+v", got, want)
	}
	b.wantStock(t, "BRK-1", 25, 4)
	b.wantStock(t, "FLT-1", 0, 0)
	b.wantHolds(t, "BRK-1", 1)

	// Redelivered with one new event: only the new one counts.
	again := map[string][]redisstore.StockDelta{
		"BRK-1": {{WarehouseID: "WH-A", Seq: 5, ATP: 1}, {WarehouseID: "WH-B", Seq: 2, ATP: 7}},
	}
	res, err = b.store.ApplyStockDeltas(ctx, again)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := res["BRK-1"], (redisstore.DeltaResult{Counted: 1, Skipped: 1, Moved: 7}); got != want {
		t.Fatalf("redelivery: got %+v, want %+v", got, want)
	}
	b.wantStock(t, "BRK-1", 32, 4)
	seqs, err := b.store.StockSeqs(ctx, "BRK-1")
	if err != nil || seqs["WH-A"] != 5 || seqs["WH-B"] != 2 || len(seqs) != 2 {
		t.Fatalf("StockSeqs: got %v, %v; want WH-A 5, WH-B 2", seqs, err)
	}
}

// Without counters nothing is created or moved, but the events count as done: the rebuild from
// Postgres includes them.
func TestApplyStockDeltasWithoutCounters(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	res, err := b.store.ApplyStockDeltas(ctx, map[string][]redisstore.StockDelta{"GONE-1": {{WarehouseID: "WH-A", Seq: 9, ATP: 3}}})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := res["GONE-1"], (redisstore.DeltaResult{Counted: 1, Missing: true}); got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	st, err := b.store.Availability(ctx, "GONE-1")
	if err != nil || st.Known {
		t.Fatalf("availability: got %+v, %v; want unknown (no counters created)", st, err)
	}
	if seqs, _ := b.store.StockSeqs(ctx, "GONE-1"); seqs["WH-A"] != 9 {
		t.Fatalf("marks: got %v, want WH-A 9", seqs)
	}
}

// Many senders of the same deltas at once (two inventory-sync instances during a rebalance):
// each event counts once.
func TestApplyStockDeltasConcurrently(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.seed(t, map[string]int64{"HOT-1": 0})
	var deltas []redisstore.StockDelta
	for i := range 200 {
		deltas = append(deltas, redisstore.StockDelta{WarehouseID: "WH-A", Seq: int64(i + 1), ATP: 1})
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for i := 0; i < len(deltas); i += 10 {
				if _, err := b.store.ApplyStockDeltas(t.Context(), map[string][]redisstore.StockDelta{"HOT-1": deltas[:i+10]}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.wantStock(t, "HOT-1", 200, 0)
}

func TestApplyStockDeltasRejectsAndFails(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, bad := range []map[string][]redisstore.StockDelta{
		{"BAD{1}": {{WarehouseID: "WH-A", Seq: 1, ATP: 1}}},
		{"OK-1": {{WarehouseID: "", Seq: 1, ATP: 1}}},
		{"OK-1": {{WarehouseID: "WH-A", Seq: 0, ATP: 1}}},
	} {
		if _, err := b.store.ApplyStockDeltas(t.Context(), bad); err == nil {
			t.Fatalf("%v: got nil error, want one", bad)
		}
	}
	res, err := unreachable(t).ApplyStockDeltas(t.Context(), map[string][]redisstore.StockDelta{"OK-1": {{WarehouseID: "WH-A", Seq: 1, ATP: 1}}})
	if !errors.Is(err, redisstore.ErrUnavailable) || len(res) != 0 {
		t.Fatalf("unreachable: got %v, %v; want ErrUnavailable and no result", res, err)
	}
}

package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/orderpipe/orderpipe/internal/postgres"
)

var t0 = time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)

func level(id, wh, sku string, seq, onHand int64) postgres.StockEvent {
	return postgres.StockEvent{EventID: id, Kind: postgres.StockKindLevel, WarehouseID: wh, SKU: sku, Seq: seq, OccurredAt: t0.Add(time.Duration(seq) * time.Second), OnHand: onHand}
}

func adjust(id, wh, sku string, seq, delta int64) postgres.StockEvent {
	return postgres.StockEvent{EventID: id, Kind: postgres.StockKindAdjusted, WarehouseID: wh, SKU: sku, Seq: seq, OccurredAt: t0.Add(time.Duration(seq) * time.Second), Delta: delta}
}

func ship(id, wh, sku string, seq int64, orderID string, qty int64) postgres.StockEvent {
	return postgres.StockEvent{EventID: id, Kind: postgres.StockKindShipped, WarehouseID: wh, SKU: sku, Seq: seq, OccurredAt: t0.Add(time.Duration(seq) * time.Second), OrderID: orderID, Quantity: qty}
}

type stockRow struct{ onHand, allocated, shortfall int64 }

func stockOf(t *testing.T, b bundle, sku string) stockRow {
	t.Helper()
	var r stockRow
	if err := b.pool.QueryRow(t.Context(), `SELECT on_hand, allocated, shortfall FROM stock WHERE sku = $1`, sku).Scan(&r.onHand, &r.allocated, &r.shortfall); err != nil {
		t.Fatalf("stock of %s: %v", sku, err)
	}
	return r
}

func applyStock(t *testing.T, s *postgres.InventoryStore, events ...postgres.StockEvent) []postgres.StockResult {
	t.Helper()
	res, err := s.ApplyStock(t.Context(), events)
	if err != nil {
		t.Fatalf("ApplyStock: %v", err)
	}
	if len(res) != len(events) {
		t.Fatalf("got %d results, want %d", len(res), len(events))
	}
	return res
}

// confirmOrder stores a confirmed order with one allocated line per (sku, qty) pair through the
// order-worker's store.
func confirmOrder(t *testing.T, b bundle, lines ...any) string {
	t.Helper()
	c := candidate(lines[0].(string), lines[1].(int))
	for i := 2; i+1 < len(lines); i += 2 {
		c.Order.Lines = append(c.Order.Lines, postgres.OrderLine{LineNo: i/2 + 1, SKU: lines[i].(string), Name: lines[i].(string), Quantity: lines[i+1].(int), UnitPriceMinor: 100})
	}
	ds, err := postgres.NewProcessingStore(b.pool).Apply(t.Context(), "order-worker", []postgres.Candidate{c}, time.Now())
	if err != nil || len(ds) != 1 || ds[0].Status != "confirmed" {
		t.Fatalf("confirm order: got %+v, %v; want confirmed", ds, err)
	}
	return c.Order.ID
}

// Levels, adjustments and shipments move on_hand per warehouse; stock.on_hand is their sum, and
// each result says how far Redis ATP must move.
func TestApplyStockArithmetic(t *testing.T) {
	t.Parallel()
	b := setup(t)
	addProducts(t, b, "BRK-1")
	s := postgres.NewInventoryStore(b.pool)
	res := applyStock(t, s,
		level("e1", "WH-A", "BRK-1", 1, 10),
		level("e2", "WH-B", "BRK-1", 5, 4),
		adjust("e3", "WH-A", "BRK-1", 2, 6),
		adjust("e4", "WH-B", "BRK-1", 6, -1),
		level("e5", "WH-A", "BRK-1", 3, 12),
	)
	wantATP := []int64{10, 4, 6, -1, -4}
	for i, r := range res {
		if r.Outcome != postgres.StockApplied || r.DeltaATP != wantATP[i] || r.DeltaOnHand != wantATP[i] {
			t.Fatalf("event %d: got %+v, want applied with delta %d", i, r, wantATP[i])
		}
	}
	if got, want := stockOf(t, b, "BRK-1"), (stockRow{15, 0, 0}); got != want {
		t.Fatalf("stock: got %+v, want %+v", got, want)
	}
	levels, err := s.WarehouseLevels(t.Context(), "BRK-1")
	if err != nil {
		t.Fatal(err)
	}
	want := []postgres.WarehouseLevel{{WarehouseID: "WH-A", OnHand: 12, LastSeq: 3}, {WarehouseID: "WH-B", OnHand: 3, LastSeq: 6}}
	if fmt.Sprint(levels) != fmt.Sprint(want) {
		t.Fatalf("warehouse levels: got %v, want %v", levels, want)
	}
	// An adjustment below zero stops at zero and says by how much.
	res = applyStock(t, s, adjust("e6", "WH-B", "BRK-1", 7, -5))
	if r := res[0]; r.Clamped != 2 || r.DeltaATP != -3 {
		t.Fatalf("clamped adjustment: got %+v, want clamped 2, delta -3", r)
	}
}

// I7: an event at or below the last applied seq of its warehouse and SKU changes nothing; the
// same event again is a duplicate that reports the delta it applied; other warehouses and SKUs
// have their own sequences.
func TestApplyStockIgnoresStaleAndDuplicates(t *testing.T) {
	t.Parallel()
	b := setup(t)
	addProducts(t, b, "BRK-1", "FLT-1")
	s := postgres.NewInventoryStore(b.pool)
	applyStock(t, s, level("a", "WH-A", "BRK-1", 10, 7))
	res := applyStock(t, s,
		level("a", "WH-A", "BRK-1", 10, 7),   // redelivered
		level("old", "WH-A", "BRK-1", 9, 99), // older
		level("x", "WH-A", "BRK-1", 10, 50),  // same seq, another event: stale
		adjust("b", "WH-A", "BRK-1", 12, 3),
		adjust("b", "WH-A", "BRK-1", 12, 3), // twice in one batch
		adjust("c", "WH-A", "BRK-1", 11, 100),
		level("d", "WH-A", "FLT-1", 1, 5), // another SKU, a low seq of its own
		level("e", "WH-B", "BRK-1", 1, 2), // another warehouse
		level("f", "WH-A", "NOPE-1", 13, 5),
	)
	want := []struct {
		outcome string
		atp     int64
	}{
		{postgres.StockDuplicate, 7}, {postgres.StockStale, 0}, {postgres.StockStale, 0},
		{postgres.StockApplied, 3}, {postgres.StockDuplicate, 3}, {postgres.StockStale, 0},
		{postgres.StockApplied, 5}, {postgres.StockApplied, 2}, {postgres.StockUnknownSKU, 0},
	}
	for i, r := range res {
		if r.Outcome != want[i].outcome || r.DeltaATP != want[i].atp {
			t.Fatalf("event %d: got %s %d, want %s %d", i, r.Outcome, r.DeltaATP, want[i].outcome, want[i].atp)
		}
	}
	if got := stockOf(t, b, "BRK-1").onHand; got != 12 {
		t.Fatalf("BRK-1 on_hand: got %d, want 12", got)
	}
	var n int
	if err := b.pool.QueryRow(t.Context(), `SELECT count(*) FROM stock_deltas`).Scan(&n); err != nil || n != 4 {
		t.Fatalf("stock_deltas: got %d rows (%v), want 4 (one per applied event)", n, err)
	}
	var exists bool
	if err := b.pool.QueryRow(t.Context(), `SELECT EXISTS (SELECT 1 FROM stock WHERE sku = 'NOPE-1')`).Scan(&exists); err != nil {
		t.Fatal(err)
	}
	if exists {
		t.Fatalf("an unknown SKU got a stock row")
	}
}

// A SKU whose on_hand was seeded by hand switches to the warehouses' sum at its first event, and
// the delta says exactly how far ATP moves.
func TestApplyStockTakesOverSeededStock(t *testing.T) {
	t.Parallel()
	b := setup(t)
	addProducts(t, b, "BAT-1", "NEW-1")
	if _, err := b.stock.SeedMissing(t.Context(), map[string]int64{"BAT-1": 100}); err != nil {
		t.Fatal(err)
	}
	s := postgres.NewInventoryStore(b.pool)
	res := applyStock(t, s, level("a", "WH-A", "BAT-1", 1, 30), adjust("b", "WH-A", "NEW-1", 2, 4))
	if res[0].DeltaATP != -70 || res[1].DeltaATP != 4 {
		t.Fatalf("deltas: got %d and %d, want -70 and 4", res[0].DeltaATP, res[1].DeltaATP)
	}
	if got := stockOf(t, b, "NEW-1"); got.onHand != 4 {
		t.Fatalf("a catalog SKU without a stock row: got %+v, want a row with on_hand 4", got)
	}
}

// A warehouse reporting fewer units than are allocated keeps on_hand at allocated (I1 holds) and
// records the shortfall; arriving units fill it before they become available.
func TestApplyStockShortfall(t *testing.T) {
	t.Parallel()
	b := setup(t)
	addProducts(t, b, "TYR-1")
	s := postgres.NewInventoryStore(b.pool)
	applyStock(t, s, level("a", "WH-A", "TYR-1", 1, 10))
	confirmOrder(t, b, "TYR-1", 8)
	res := applyStock(t, s, adjust("b", "WH-A", "TYR-1", 2, -5)) // 5 left, 8 allocated
	if r := res[0]; r.DeltaATP != -2 || r.DeltaOnHand != -2 || r.Shortfall != 3 {
		t.Fatalf("damage below allocated: got %+v, want delta -2 (ATP 2 -> 0), shortfall 3", r)
	}
	if got, want := stockOf(t, b, "TYR-1"), (stockRow{8, 8, 3}); got != want {
		t.Fatalf("stock: got %+v, want %+v", got, want)
	}
	skus, units, err := s.Shortfall(t.Context())
	if err != nil || skus != 1 || units != 3 {
		t.Fatalf("Shortfall: got %d SKUs, %d units, %v; want 1, 3", skus, units, err)
	}
	res = applyStock(t, s, adjust("c", "WH-A", "TYR-1", 3, 5)) // 10 on the shelf, 8 allocated
	if r := res[0]; r.DeltaATP != 2 || r.Shortfall != 0 {
		t.Fatalf("arrival: got %+v, want delta 2, no shortfall", r)
	}
	if got, want := stockOf(t, b, "TYR-1"), (stockRow{10, 8, 0}); got != want {
		t.Fatalf("stock: got %+v, want %+v", got, want)
	}
}

// Shipments lower the warehouse and the allocation together (ATP does not move); when every
// allocated unit of an order has shipped it is shipped, and its data is ready for OrderShipped.
func TestApplyStockShipsOrders(t *testing.T) {
	t.Parallel()
	b := setup(t)
	addProducts(t, b, "BRK-1", "FLT-1")
	s := postgres.NewInventoryStore(b.pool)
	applyStock(t, s, level("a", "WH-A", "BRK-1", 1, 10), level("b", "WH-B", "FLT-1", 1, 10))
	id := confirmOrder(t, b, "BRK-1", 3, "FLT-1", 2)

	res := applyStock(t, s, ship("c", "WH-A", "BRK-1", 2, id, 3))
	if r := res[0]; r.DeltaATP != 0 || r.DeltaOnHand != -3 || r.Unmatched != 0 || r.ShippedOrder != "" {
		t.Fatalf("first line shipped: got %+v, want on_hand -3, ATP unchanged, order not shipped yet", r)
	}
	o, _, _ := b.orders.Get(t.Context(), id)
	if o.Status != "confirmed" {
		t.Fatalf("order after one of two lines: got %s, want confirmed", o.Status)
	}
	res = applyStock(t, s, ship("d", "WH-B", "FLT-1", 2, id, 2), ship("d", "WH-B", "FLT-1", 2, id, 2))
	if res[0].ShippedOrder != id || res[1].ShippedOrder != id || res[1].Outcome != postgres.StockDuplicate {
		t.Fatalf("last line shipped, twice: got %+v, want the order shipped, then a duplicate naming it", res)
	}
	for sku, want := range map[string]stockRow{"BRK-1": {7, 0, 0}, "FLT-1": {8, 0, 0}} {
		if got := stockOf(t, b, sku); got != want {
			t.Fatalf("%s: got %+v, want %+v", sku, got, want)
		}
	}
	shipped, err := s.ShippedOrders(t.Context(), []string{id, uuid.NewString(), "not-a-uuid"})
	if err != nil || len(shipped) != 1 {
		t.Fatalf("ShippedOrders: got %d, %v; want 1", len(shipped), err)
	}
	if got := shipped[0]; got.ID != id || got.Status != "shipped" || !got.ShippedAt.Equal(t0.Add(2*time.Second)) || len(got.Lines) != 2 {
		t.Fatalf("shipped order: got %+v, want shipped at the last shipment with its 2 lines", got)
	}

	// More units than allocated, and a shipment of an unknown order: they leave the shelf only.
	res = applyStock(t, s, ship("e", "WH-A", "BRK-1", 3, id, 1), ship("f", "WH-A", "BRK-1", 4, uuid.NewString(), 2))
	if res[0].Unmatched != 1 || res[0].DeltaATP != -1 || res[1].Unmatched != 2 || res[1].DeltaATP != -2 {
		t.Fatalf("unmatched shipments: got %+v, want every unit unmatched and taken off ATP", res)
	}
	var matched, total int64
	if err := b.pool.QueryRow(t.Context(), `SELECT sum(matched), sum(quantity) FROM shipments`).Scan(&matched, &total); err != nil || matched != 5 || total != 8 {
		t.Fatalf("shipments: got matched %d of %d (%v), want 5 of 8", matched, total, err)
	}
}

// Many appliers at once, each with shuffled, overlapping, duplicated batches: every event is
// applied exactly once and the result is that of applying the events in order (per warehouse
// and SKU, the event with the highest seq wins for levels; adjustments count once).
func TestApplyStockConcurrentAppliersApplyEachEventOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	skus := []string{"SKU-A", "SKU-B", "SKU-C"}
	addProducts(t, b, skus...)
	s := postgres.NewInventoryStore(b.pool)
	rng := rand.New(rand.NewPCG(4, 2))
	// Per warehouse, one increasing seq across SKUs: a level first, then adjustments.
	var all []postgres.StockEvent
	want := map[string]int64{}
	for _, wh := range []string{"WH-1", "WH-2"} {
		seq := int64(0)
		for _, sku := range skus {
			seq++
			n := int64(50 + rng.IntN(50))
			all = append(all, level(fmt.Sprintf("%s-%d", wh, seq), wh, sku, seq, n))
			want[sku] += n
		}
		for range 60 {
			seq++
			sku := skus[rng.IntN(len(skus))]
			d := int64(rng.IntN(9) - 2)
			all = append(all, adjust(fmt.Sprintf("%s-%d", wh, seq), wh, sku, seq, d))
			want[sku] += d
		}
	}
	// Each applier gets every event in order (the partition order), in chunks; they race.
	var wg sync.WaitGroup
	applied := make([]int, 4)
	for a := range 4 {
		chunk := rand.New(rand.NewPCG(uint64(a), 9))
		wg.Go(func() {
			for i := 0; i < len(all); {
				n := 1 + chunk.IntN(20)
				end := min(i+n, len(all))
				res, err := s.ApplyStock(context.Background(), all[i:end])
				if err != nil {
					t.Errorf("applier %d: %v", a, err)
					return
				}
				for _, r := range res {
					if r.Outcome == postgres.StockApplied {
						applied[a]++
					}
				}
				i = end
			}
		})
	}
	wg.Wait()
	total := 0
	for _, n := range applied {
		total += n
	}
	if total != len(all) {
		t.Fatalf("applied %d times in all, want each of %d events once", total, len(all))
	}
	for _, sku := range skus {
		if got := stockOf(t, b, sku).onHand; got != want[sku] {
			t.Fatalf("%s on_hand: got %d, want %d", sku, got, want[sku])
		}
	}
}

func TestWarehouseSecrets(t *testing.T) {
	t.Parallel()
	b := setup(t)
	s := postgres.NewInventoryStore(b.pool)
	ctx := t.Context()
	if _, found, err := s.WebhookSecret(ctx, "WH-X"); found || err != nil {
		t.Fatalf("unknown warehouse: got found %v, %v; want not found", found, err)
	}
	if err := s.PutWarehouse(ctx, postgres.Warehouse{ID: "WH-X", Name: "Berlin"}); err != nil {
		t.Fatal(err)
	}
	if sec, found, err := s.WebhookSecret(ctx, "WH-X"); !found || sec != nil || err != nil {
		t.Fatalf("unsigned warehouse: got %x, %v, %v; want found without secret", sec, found, err)
	}
	secret := []byte("0123456789abcdef-secret")
	if err := s.PutWarehouse(ctx, postgres.Warehouse{ID: "WH-X", Name: "Berlin", Secret: secret}); err != nil {
		t.Fatal(err)
	}
	if sec, found, err := s.WebhookSecret(ctx, "WH-X"); !found || string(sec) != string(secret) || err != nil {
		t.Fatalf("signed warehouse: got %q, %v, %v; want the secret", sec, found, err)
	}
	if err := s.PutWarehouse(ctx, postgres.Warehouse{ID: "WH-Y", Secret: []byte("short")}); err == nil {
		t.Fatalf("a 5-byte secret: got nil error, want one")
	}
}

// The registry: a warehouse is added once (a second add is a conflict, not a silent change of
// its secret), listed with its secret, and removed once.
func TestWarehouseRegistry(t *testing.T) {
	t.Parallel()
	b := setup(t)
	s := postgres.NewInventoryStore(b.pool)
	ctx := t.Context()
	secret := []byte("0123456789abcdef-secret")
	if _, err := s.AddWarehouse(ctx, postgres.Warehouse{ID: "WH-B", Name: "Berlin", Secret: secret}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddWarehouse(ctx, postgres.Warehouse{ID: "WH-A"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddWarehouse(ctx, postgres.Warehouse{ID: "WH-B"}); !errors.Is(err, postgres.ErrConflict) {
		t.Fatalf("second add: got %v, want ErrConflict", err)
	}
	if _, err := s.AddWarehouse(ctx, postgres.Warehouse{ID: "WH-C", Secret: []byte("short")}); err == nil {
		t.Fatal("a 5-byte secret: got nil error, want one")
	}
	ws, err := s.Warehouses(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ws) != 2 || ws[0].ID != "WH-A" || ws[0].Secret != nil || ws[1].ID != "WH-B" || string(ws[1].Secret) != string(secret) || ws[1].Name != "Berlin" || ws[1].CreatedAt.IsZero() {
		t.Fatalf("Warehouses: got %+v, want WH-A unsigned and WH-B with its secret", ws)
	}
	if err := s.RemoveWarehouse(ctx, "WH-B"); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveWarehouse(ctx, "WH-B"); !errors.Is(err, postgres.ErrNotFound) {
		t.Fatalf("second remove: got %v, want ErrNotFound", err)
	}
	if _, found, err := s.WebhookSecret(ctx, "WH-B"); found || err != nil {
		t.Fatalf("removed warehouse: got found %v, %v; want not found", found, err)
	}
}

func TestPruneStockDeltas(t *testing.T) {
	t.Parallel()
	b := setup(t)
	addProducts(t, b, "BRK-1")
	s := postgres.NewInventoryStore(b.pool)
	applyStock(t, s, level("a", "WH-A", "BRK-1", 1, 3))
	if n, err := s.PruneStockDeltas(t.Context(), time.Now().Add(-time.Hour)); n != 0 || err != nil {
		t.Fatalf("prune nothing: got %d, %v", n, err)
	}
	if n, err := s.PruneStockDeltas(t.Context(), time.Now().Add(time.Hour)); n != 1 || err != nil {
		t.Fatalf("prune all: got %d, %v; want 1", n, err)
	}
	// Without its record, a redelivery counts as stale and moves nothing.
	if r := applyStock(t, s, level("a", "WH-A", "BRK-1", 1, 3))[0]; r.Outcome != postgres.StockStale || r.DeltaATP != 0 {
		t.Fatalf("redelivery after pruning: got %+v, want stale", r)
	}
}

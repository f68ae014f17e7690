package redisstore_test

import (
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/orderpipe/orderpipe/internal/redisstore"
)

// ExpireDueMany expires due holds of many SKUs in one pipeline, records each in its SKU's outbox
// with the hold's deadline, and the outbox empties only when acknowledged.
func TestExpireDueManyFillsTheOutbox(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.seed(t, map[string]int64{"A": 10, "B": 10, "C": 10})
	past := time.Now().Add(-time.Minute).Truncate(time.Millisecond)
	for i, l := range []redisstore.Line{{SKU: "A", Qty: 2}, {SKU: "B", Qty: 3}, {SKU: "A", Qty: 1}} {
		if _, err := b.store.Reserve(t.Context(), []string{"o1", "o2", "o3"}[i], []redisstore.Line{l}, past); err != nil {
			t.Fatal(err)
		}
	}
	reserve(t, b.store, "live", line{SKU: "C", Qty: 4})
	now := time.Now()
	res, err := b.store.ExpireDueMany(t.Context(), []string{"A", "B", "C"}, now, 100)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, r := range res {
		if r.Err != nil {
			t.Fatalf("%s: %v", r.SKU, r.Err)
		}
		got[r.SKU] = len(r.Expired)
	}
	if got["A"] != 2 || got["B"] != 1 || got["C"] != 0 {
		t.Fatalf("expired per SKU %v, want A:2 B:1 C:0", got)
	}
	b.wantStock(t, "A", 10, 0)
	b.wantStock(t, "B", 10, 0)
	b.wantStock(t, "C", 6, 4)

	pending, err := b.store.PendingExpiries(t.Context(), []string{"A", "B", "C"})
	if err != nil {
		t.Fatal(err)
	}
	sort.Slice(pending, func(i, j int) bool { return pending[i].OrderID < pending[j].OrderID })
	want := []redisstore.Expiry{
		{SKU: "A", OrderID: "o1", Qty: 2, Deadline: past.UTC(), ExpiredAt: time.UnixMilli(now.UnixMilli()).UTC()},
		{SKU: "B", OrderID: "o2", Qty: 3, Deadline: past.UTC(), ExpiredAt: time.UnixMilli(now.UnixMilli()).UTC()},
		{SKU: "A", OrderID: "o3", Qty: 1, Deadline: past.UTC(), ExpiredAt: time.UnixMilli(now.UnixMilli()).UTC()},
	}
	if len(pending) != len(want) {
		t.Fatalf("pending %+v, want %+v", pending, want)
	}
	for i := range want {
		if pending[i] != want[i] {
			t.Fatalf("pending[%d] = %+v, want %+v", i, pending[i], want[i])
		}
	}
	if err := b.store.AckExpiries(t.Context(), pending[:2]); err != nil {
		t.Fatal(err)
	}
	if err := b.store.AckExpiries(t.Context(), pending[:2]); err != nil { // again: a no-op
		t.Fatal(err)
	}
	left, err := b.store.PendingExpiries(t.Context(), []string{"A", "B", "C"})
	if err != nil || len(left) != 1 || left[0].OrderID != "o3" {
		t.Fatalf("left %+v %v, want only o3", left, err)
	}
}

// Many concurrent ExpireDueMany calls over the same SKUs return every unit exactly once.
func TestExpireDueManyConcurrently(t *testing.T) {
	t.Parallel()
	b := setup(t)
	skus := []string{"A", "B", "C", "D"}
	b.seed(t, map[string]int64{"A": 100, "B": 100, "C": 100, "D": 100})
	past := time.Now().Add(-time.Second)
	for i := range 100 {
		sku := skus[i%4]
		if _, err := b.store.Reserve(t.Context(), "o"+string(rune('a'+i/26))+string(rune('a'+i%26)), []redisstore.Line{{SKU: sku, Qty: 1}}, past); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	seen := map[string]int{}
	var wg sync.WaitGroup
	for range 6 {
		wg.Go(func() {
			for range 5 {
				res, err := b.store.ExpireDueMany(t.Context(), skus, time.Now(), 7)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				for _, r := range res {
					for _, e := range r.Expired {
						seen[r.SKU+"/"+e.OrderID]++
					}
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(seen) != 100 {
		t.Fatalf("%d holds expired, want 100", len(seen))
	}
	for k, n := range seen {
		if n != 1 {
			t.Fatalf("hold %s expired %d times, want once", k, n)
		}
	}
	for _, sku := range skus {
		b.wantStock(t, sku, 100, 0)
		b.wantHolds(t, sku, 0)
	}
}

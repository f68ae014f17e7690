package redisstore_test

import (
	"sync"
	"testing"
	"time"

	"github.com/orderpipe/orderpipe/internal/redisstore"
)

// A hold past its deadline returns its units once, however many reapers run; a late
// confirmation then takes them back out of ATP once; releasing it afterwards changes nothing.
func TestExpireThenLateConfirm(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.seed(t, map[string]int64{"A": 10})
	past := time.Now().Add(-time.Minute)
	if _, err := b.store.Reserve(t.Context(), "late", []redisstore.Line{{SKU: "A", Qty: 3}}, past); err != nil {
		t.Fatal(err)
	}
	if _, err := b.store.Reserve(t.Context(), "fresh", []redisstore.Line{{SKU: "A", Qty: 2}}, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	b.wantStock(t, "A", 5, 5)

	var mu sync.Mutex
	var expired []redisstore.ExpiredHold
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			got, err := b.store.ExpireDue(t.Context(), "A", time.Now(), 100)
			if err != nil {
				t.Errorf("ExpireDue: %v", err)
				return
			}
			mu.Lock()
			expired = append(expired, got...)
			mu.Unlock()
		})
	}
	wg.Wait()
	if len(expired) != 1 || expired[0] != (redisstore.ExpiredHold{OrderID: "late", Qty: 3}) {
		t.Fatalf("8 reapers expired %+v, want exactly the late hold once", expired)
	}
	b.wantStock(t, "A", 8, 2)

	res, err := b.store.Confirm(t.Context(), "late", []redisstore.Line{{SKU: "A", Qty: 3}})
	if err != nil {
		t.Fatal(err)
	}
	if !res[0].Found || !res[0].Late || res[0].Qty != 3 {
		t.Fatalf("late confirm = %+v, want found, late, 3", res[0])
	}
	b.wantStock(t, "A", 5, 2)
	for range 2 {
		again, err := b.store.Confirm(t.Context(), "late", []redisstore.Line{{SKU: "A", Qty: 3}})
		if err != nil || again[0].Found {
			t.Fatalf("repeated confirm = %+v, %v, want a no-op", again, err)
		}
		rel, err := b.store.Release(t.Context(), "late", []string{"A"})
		if err != nil || rel[0].Found {
			t.Fatalf("release after late confirm = %+v, %v, want a no-op", rel, err)
		}
	}
	b.wantStock(t, "A", 5, 2)
}

// A released order's retry (same order id, after a 503) may hold again: the ended marker of the
// first attempt does not block it, and a later confirm ends the new hold normally.
func TestReserveAgainAfterRelease(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.seed(t, map[string]int64{"A": 10})
	deadline := time.Now().Add(time.Hour)
	for range 2 {
		if res, err := b.store.Reserve(t.Context(), "o", []redisstore.Line{{SKU: "A", Qty: 4}}, deadline); err != nil || !res.OK {
			t.Fatalf("reserve: %+v %v", res, err)
		}
		b.wantStock(t, "A", 6, 4)
		if _, err := b.store.Release(t.Context(), "o", []string{"A"}); err != nil {
			t.Fatal(err)
		}
		b.wantStock(t, "A", 10, 0)
	}
	if res, err := b.store.Reserve(t.Context(), "o", []redisstore.Line{{SKU: "A", Qty: 4}}, deadline); err != nil || !res.OK {
		t.Fatalf("reserve: %+v %v", res, err)
	}
	res, err := b.store.Confirm(t.Context(), "o", []redisstore.Line{{SKU: "A", Qty: 4}})
	if err != nil || !res[0].Found || res[0].Late {
		t.Fatalf("confirm = %+v %v, want a normal confirm", res, err)
	}
	b.wantStock(t, "A", 6, 0)
}

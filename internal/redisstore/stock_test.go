package redisstore_test

import (
	"reflect"
	"testing"

	"github.com/orderpipe/orderpipe/internal/redisstore"
)

func TestSeedStockNeverOverwritesLiveCounters(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.seed(t, map[string]int64{"A": 10})
	if res := reserve(t, b.store, "o1", line{SKU: "A", Qty: 4}); !res.OK {
		t.Fatalf("Reserve: got %+v, want OK", res)
	}

	n, err := b.store.SeedStock(t.Context(), map[string]int64{"A": 100, "B": 7})
	if err != nil {
		t.Fatalf("SeedStock: %v", err)
	}
	if n != 1 {
		t.Fatalf("created: got %d, want 1", n)
	}
	b.wantStock(t, "A", 6, 4)
	b.wantStock(t, "B", 7, 0)
}

func TestSetStockKeepsHeld(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.seed(t, map[string]int64{"A": 10})
	if res := reserve(t, b.store, "o1", line{SKU: "A", Qty: 4}); !res.OK {
		t.Fatalf("Reserve: got %+v, want OK", res)
	}
	if err := b.store.SetStock(t.Context(), "A", 50); err != nil {
		t.Fatalf("SetStock: %v", err)
	}
	b.wantStock(t, "A", 50, 4)
	if err := b.store.SetStock(t.Context(), "NEW", 3); err != nil {
		t.Fatalf("SetStock: %v", err)
	}
	b.wantStock(t, "NEW", 3, 0)
}

func TestAvailabilities(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.seed(t, map[string]int64{"A": 10, "B": 0})
	if res := reserve(t, b.store, "o1", line{SKU: "A", Qty: 2}); !res.OK {
		t.Fatalf("Reserve: got %+v, want OK", res)
	}

	got, err := b.store.Availabilities(t.Context(), []string{"A", "B", "UNKNOWN"})
	if err != nil {
		t.Fatalf("Availabilities: %v", err)
	}
	want := map[string]redisstore.Stock{
		"A":       {ATP: 8, Held: 2, Known: true},
		"B":       {ATP: 0, Held: 0, Known: true},
		"UNKNOWN": {},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	one, err := b.store.Availability(t.Context(), "UNKNOWN")
	if err != nil {
		t.Fatalf("Availability: %v", err)
	}
	if one != (redisstore.Stock{}) {
		t.Fatalf("Availability of unknown SKU: got %+v, want %+v", one, redisstore.Stock{})
	}
}

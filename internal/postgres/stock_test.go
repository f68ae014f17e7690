package postgres_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/orderpipe/orderpipe/internal/postgres"
)

// TestStockNoOversell checks invariant I1 at the schema: whatever the writer, allocated never
// exceeds on_hand.
func TestStockNoOversell(t *testing.T) {
	t.Parallel()
	b := setup(t)
	tests := []struct {
		name       string
		onHand     int64
		allocate   int64  // allocated first, must succeed
		then       string // the statement under test; $1 is the sku
		code       string // SQLSTATE wanted, "" for success
		constraint string
	}{
		{"allocate all", 10, 0, "UPDATE stock SET allocated = 10 WHERE sku = $1", "", ""},
		{"allocate one too many", 10, 0, "UPDATE stock SET allocated = 11 WHERE sku = $1",
			"23514", "stock_no_oversell"},
		{"increment past on hand", 10, 9, "UPDATE stock SET allocated = allocated + 2 WHERE sku = $1",
			"23514", "stock_no_oversell"},
		{"shrink on hand below allocated", 10, 5, "UPDATE stock SET on_hand = 4 WHERE sku = $1",
			"23514", "stock_no_oversell"},
		{"negative allocated", 10, 0, "UPDATE stock SET allocated = -1 WHERE sku = $1",
			"23514", "stock_allocated_check"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			sku := "OVR-" + string(rune('A'+i))
			addProducts(t, b, sku)
			if err := b.stock.Set(ctx, sku, tt.onHand); err != nil {
				t.Fatalf("set: %v", err)
			}
			if _, err := b.pool.Exec(ctx, "UPDATE stock SET allocated = $2 WHERE sku = $1", sku,
				tt.allocate); err != nil {
				t.Fatalf("allocate %d: %v", tt.allocate, err)
			}
			_, err := b.pool.Exec(ctx, tt.then, sku)
			if tt.code == "" {
				if err != nil {
					t.Fatalf("got %v, want success", err)
				}
				return
			}
			wantPgError(t, err, tt.code, tt.constraint)
			levels, err := b.stock.All(ctx)
			if err != nil {
				t.Fatalf("all: %v", err)
			}
			for _, l := range levels {
				if l.SKU == sku && (l.OnHand != tt.onHand || l.Allocated != tt.allocate) {
					t.Fatalf("got %+v after a rejected update, want unchanged %d/%d", l, tt.onHand,
						tt.allocate)
				}
			}
		})
	}
}

func TestStockSetBelowAllocatedFails(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	addProducts(t, b, "SET-1")
	if err := b.stock.Set(ctx, "SET-1", 10); err != nil {
		t.Fatalf("set: %v", err)
	}
	if _, err := b.pool.Exec(ctx, "UPDATE stock SET allocated = 6 WHERE sku = 'SET-1'"); err != nil {
		t.Fatalf("allocate: %v", err)
	}
	wantPgError(t, b.stock.Set(ctx, "SET-1", 5), "23514", "stock_no_oversell")
	// A negative on_hand breaks both on_hand >= 0 and allocated <= on_hand; either may be named.
	wantPgError(t, b.stock.Set(ctx, "SET-1", -1), "23514", "")
	if err := b.stock.Set(ctx, "SET-1", 6); err != nil {
		t.Fatalf("set to allocated: %v", err)
	}
	if err := b.stock.Set(ctx, "UNKNOWN-1", 5); !errors.Is(err, postgres.ErrNotFound) {
		t.Fatalf("set unknown sku: got %v, want ErrNotFound", err)
	}
}

func TestStockSeedMissing(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	addProducts(t, b, "SEED-A", "SEED-B", "SEED-C")
	if err := b.stock.Set(ctx, "SEED-A", 7); err != nil {
		t.Fatalf("set: %v", err)
	}
	seed := map[string]int64{"SEED-A": 100, "SEED-B": 50, "SEED-C": 20}
	n, err := b.stock.SeedMissing(ctx, seed)
	if err != nil {
		t.Fatalf("seed: %v", err)
	}
	if n != 2 {
		t.Fatalf("got %d rows seeded, want 2", n)
	}
	want := []postgres.StockLevel{{"SEED-A", 7, 0}, {"SEED-B", 50, 0}, {"SEED-C", 20, 0}}
	got, err := b.stock.All(ctx)
	if err != nil {
		t.Fatalf("all: %v", err)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	if n, err := b.stock.SeedMissing(ctx, seed); err != nil || n != 0 {
		t.Fatalf("seed again: got %d, %v, want 0 rows", n, err)
	}
	if _, err := b.stock.SeedMissing(ctx, map[string]int64{"NOT-IN-CATALOG": 5}); err == nil {
		t.Fatalf("seed an unknown sku: got no error, want one")
	}
}

package postgres_test

import (
	"errors"
	"testing"
	"time"

	"github.com/orderpipe/orderpipe/internal/demo"
	"github.com/orderpipe/orderpipe/internal/postgres"
)

// sameProduct compares everything but UpdatedAt, which the store sets.
func sameProduct(a, b postgres.Product) bool {
	a.UpdatedAt, b.UpdatedAt = time.Time{}, time.Time{}
	return a == b
}

func TestCatalogUpsertGetAll(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()

	first, err := b.catalog.Upsert(ctx, product("BRK-PAD-1042", 3990))
	if err != nil {
		t.Fatalf("upsert: %v", err)
	}
	if !sameProduct(first, product("BRK-PAD-1042", 3990)) || first.UpdatedAt.IsZero() {
		t.Fatalf("got %+v, want the input with updated_at set", first)
	}
	got, err := b.catalog.Get(ctx, "BRK-PAD-1042")
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	if !got.UpdatedAt.Equal(first.UpdatedAt) || !sameProduct(got, first) {
		t.Fatalf("got %+v, want %+v", got, first)
	}

	changed := product("BRK-PAD-1042", 4290)
	changed.Active = false
	second, err := b.catalog.Upsert(ctx, changed)
	if err != nil {
		t.Fatalf("upsert again: %v", err)
	}
	if !sameProduct(second, changed) || second.UpdatedAt.Before(first.UpdatedAt) {
		t.Fatalf("got %+v, want %+v updated at or after %v", second, changed, first.UpdatedAt)
	}

	if _, err := b.catalog.Upsert(ctx, product("AAA-001", 990)); err != nil {
		t.Fatalf("upsert: %v", err)
	}
	all, err := b.catalog.All(ctx)
	if err != nil {
		t.Fatalf("all: %v", err)
	}
	if len(all) != 2 || all[0].SKU != "AAA-001" || !sameProduct(all[1], changed) {
		t.Fatalf("got %+v, want AAA-001 then %+v", all, changed)
	}
}

func TestCatalogGetMissing(t *testing.T) {
	t.Parallel()
	b := setup(t)
	if _, err := b.catalog.Get(t.Context(), "NOPE-404"); !errors.Is(err, postgres.ErrNotFound) {
		t.Fatalf("got %v, want ErrNotFound", err)
	}
}

func TestCatalogRejectsInvalidProducts(t *testing.T) {
	t.Parallel()
	b := setup(t)
	tests := []struct {
		name       string
		product    postgres.Product
		constraint string
	}{
		{"lowercase sku", product("brk-pad-1", 100), "products_sku_check"},
		{"sku with space", product("BRK PAD 1", 100), "products_sku_check"},
		{"short sku", product("AB", 100), "products_sku_check"},
		{"zero price", product("BRK-PAD-1", 0), "products_price_minor_check"},
		{"negative price", product("BRK-PAD-2", -5), "products_price_minor_check"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := b.catalog.Upsert(t.Context(), tt.product)
			wantPgError(t, err, "23514", tt.constraint)
		})
	}
}

func TestCatalogUpsertMany(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	var products []postgres.Product
	for _, p := range demo.Catalog() {
		products = append(products, postgres.Product{
			SKU: p.SKU, Name: p.Name, Category: p.Category, Brand: p.Brand,
			PriceMinor: p.PriceMinor, Currency: demo.Currency, Active: true,
		})
	}

	n, err := b.catalog.UpsertMany(ctx, products)
	if err != nil {
		t.Fatalf("upsert many: %v", err)
	}
	if n != len(products) {
		t.Fatalf("got %d rows written, want %d", n, len(products))
	}
	all, err := b.catalog.All(ctx)
	if err != nil {
		t.Fatalf("all: %v", err)
	}
	if len(all) != len(products) {
		t.Fatalf("got %d products stored, want %d", len(all), len(products))
	}
	for i := range all {
		if !sameProduct(all[i], products[i]) {
			t.Fatalf("got %+v at %d, want %+v", all[i], i, products[i])
		}
	}

	if n, err := b.catalog.UpsertMany(ctx, products); err != nil || n != 0 {
		t.Fatalf("re-seed unchanged: got %d, %v, want 0 rows written", n, err)
	}
	products[7].PriceMinor += 100
	if n, err := b.catalog.UpsertMany(ctx, products); err != nil || n != 1 {
		t.Fatalf("re-seed one price change: got %d, %v, want 1 row written", n, err)
	}
	got, err := b.catalog.Get(ctx, products[7].SKU)
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	if got.PriceMinor != products[7].PriceMinor {
		t.Fatalf("got price %d, want %d", got.PriceMinor, products[7].PriceMinor)
	}

	dup := []postgres.Product{product("DUP-1", 100), product("DUP-1", 200)}
	if _, err := b.catalog.UpsertMany(ctx, dup); err == nil {
		t.Fatalf("upsert duplicate skus: got no error, want one")
	}
	bad := []postgres.Product{product("GOOD-1", 100), product("bad", 100)}
	if _, err := b.catalog.UpsertMany(ctx, bad); err == nil {
		t.Fatalf("upsert an invalid sku: got no error, want one")
	}
	if _, err := b.catalog.Get(ctx, "GOOD-1"); !errors.Is(err, postgres.ErrNotFound) {
		t.Fatalf("got %v for a product of a failed batch, want ErrNotFound (all or nothing)", err)
	}
}

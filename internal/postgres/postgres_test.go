package postgres_test

import (
	"errors"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/orderpipe/orderpipe/internal/postgres"
	"github.com/orderpipe/orderpipe/internal/testenv"
)

// bundle is what a test needs: a pool on its own migrated schema and the stores over it.
type bundle struct {
	pool    *pgxpool.Pool
	url     string
	catalog *postgres.CatalogStore
	keys    *postgres.KeyStore
	stock   *postgres.StockStore
	orders  *postgres.OrderStore
}

func setup(t *testing.T) bundle {
	t.Helper()
	pool, url := testenv.Postgres(t)
	return bundle{
		pool:    pool,
		url:     url,
		catalog: postgres.NewCatalogStore(pool),
		keys:    postgres.NewKeyStore(pool),
		stock:   postgres.NewStockStore(pool),
		orders:  postgres.NewOrderStore(pool),
	}
}

// addProducts stores a valid product for each sku.
func addProducts(t *testing.T, b bundle, skus ...string) {
	t.Helper()
	for _, sku := range skus {
		if _, err := b.catalog.Upsert(t.Context(), product(sku, 1990)); err != nil {
			t.Fatalf("upsert %s: %v", sku, err)
		}
	}
}

func product(sku string, price int64) postgres.Product {
	return postgres.Product{
		SKU: sku, Name: "Part " + sku, Category: "brakes", Brand: "Bosch", PriceMinor: price,
		Currency: "EUR", Active: true,
	}
}

// wantPgError fails the test unless err carries a Postgres error with the code and, if given,
// the constraint.
func wantPgError(t *testing.T, err error, code, constraint string) {
	t.Helper()
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		t.Fatalf("got error %v, want Postgres error %s %s", err, code, constraint)
	}
	if pgErr.Code != code || (constraint != "" && pgErr.ConstraintName != constraint) {
		t.Fatalf("got Postgres error %s on %q (%v), want %s on %q", pgErr.Code,
			pgErr.ConstraintName, err, code, constraint)
	}
}

func TestOpen(t *testing.T) {
	t.Parallel()
	b := setup(t)
	pool, err := postgres.Open(t.Context(), b.url, 2)
	if err != nil {
		t.Fatalf("open %s: %v", b.url, err)
	}
	defer pool.Close()
	if got := pool.Config().MaxConns; got != 2 {
		t.Fatalf("got max conns %d, want 2", got)
	}
	var schema string
	if err := pool.QueryRow(t.Context(), "SELECT current_schema()").Scan(&schema); err != nil {
		t.Fatalf("current schema: %v", err)
	}
	var want string
	if err := b.pool.QueryRow(t.Context(), "SELECT current_schema()").Scan(&want); err != nil {
		t.Fatalf("current schema: %v", err)
	}
	if schema != want {
		t.Fatalf("got schema %q from the url's search_path, want %q", schema, want)
	}

	for _, url := range []string{
		"postgres://postgres@127.0.0.1:1/test?sslmode=disable&connect_timeout=2", // nothing listens
		"postgres://%zz",
	} {
		if pool, err := postgres.Open(t.Context(), url, 1); err == nil {
			pool.Close()
			t.Fatalf("open %s: got no error, want one", url)
		}
	}
}

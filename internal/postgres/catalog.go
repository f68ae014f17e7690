package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Product is one catalog row. Prices are integer minor units of Currency.
type Product struct {
	SKU        string
	Name       string
	Category   string
	Brand      string
	PriceMinor int64
	Currency   string
	Active     bool
	UpdatedAt  time.Time // set by the store
}

// CatalogStore reads and writes the product catalog.
type CatalogStore struct {
	pool *pgxpool.Pool
}

// NewCatalogStore returns a CatalogStore over pool.
func NewCatalogStore(pool *pgxpool.Pool) *CatalogStore {
	return &CatalogStore{pool: pool}
}

const productColumns = `sku, name, category, brand, price_minor, currency, active, updated_at`

func scanProduct(row pgx.CollectableRow) (Product, error) {
	var p Product
	err := row.Scan(&p.SKU, &p.Name, &p.Category, &p.Brand, &p.PriceMinor, &p.Currency, &p.Active,
		&p.UpdatedAt)
	return p, err
}

// All returns every product, active or not, sorted by SKU.
func (s *CatalogStore) All(ctx context.Context) ([]Product, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+productColumns+` FROM products ORDER BY sku`)
	if err != nil {
		return nil, fmt.Errorf("list products: %w", err)
	}
	products, err := pgx.CollectRows(rows, scanProduct)
	if err != nil {
		return nil, fmt.Errorf("list products: %w", err)
	}
	return products, nil
}

// Get returns the product with the given SKU, or ErrNotFound.
func (s *CatalogStore) Get(ctx context.Context, sku string) (Product, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+productColumns+` FROM products WHERE sku = $1`, sku)
	if err != nil {
		return Product{}, fmt.Errorf("get product %s: %w", sku, err)
	}
	p, err := pgx.CollectExactlyOneRow(rows, scanProduct)
	if errors.Is(err, pgx.ErrNoRows) {
		return Product{}, fmt.Errorf("get product %s: %w", sku, ErrNotFound)
	}
	if err != nil {
		return Product{}, fmt.Errorf("get product %s: %w", sku, err)
	}
	return p, nil
}

const upsertProductSQL = `
INSERT INTO products (sku, name, category, brand, price_minor, currency, active)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (sku) DO UPDATE SET
    name = EXCLUDED.name,
    category = EXCLUDED.category,
    brand = EXCLUDED.brand,
    price_minor = EXCLUDED.price_minor,
    currency = EXCLUDED.currency,
    active = EXCLUDED.active,
    updated_at = now()
RETURNING ` + productColumns

// Upsert inserts or replaces the product with p.SKU, sets its updated_at, and returns the stored
// row. The schema rejects invalid SKUs and non-positive prices with a check violation.
func (s *CatalogStore) Upsert(ctx context.Context, p Product) (Product, error) {
	rows, err := s.pool.Query(ctx, upsertProductSQL,
		p.SKU, p.Name, p.Category, p.Brand, p.PriceMinor, p.Currency, p.Active)
	if err != nil {
		return Product{}, fmt.Errorf("upsert product %s: %w", p.SKU, err)
	}
	stored, err := pgx.CollectExactlyOneRow(rows, scanProduct)
	if err != nil {
		return Product{}, fmt.Errorf("upsert product %s: %w", p.SKU, err)
	}
	return stored, nil
}

const upsertProductsSQL = `
INSERT INTO products AS p (sku, name, category, brand, price_minor, currency, active)
SELECT sku, name, category, brand, price_minor, currency, active FROM products_in
ON CONFLICT (sku) DO UPDATE SET
    name = EXCLUDED.name,
    category = EXCLUDED.category,
    brand = EXCLUDED.brand,
    price_minor = EXCLUDED.price_minor,
    currency = EXCLUDED.currency,
    active = EXCLUDED.active,
    updated_at = now()
WHERE (p.name, p.category, p.brand, p.price_minor, p.currency, p.active)
    IS DISTINCT FROM
    (EXCLUDED.name, EXCLUDED.category, EXCLUDED.brand, EXCLUDED.price_minor, EXCLUDED.currency,
     EXCLUDED.active)`

// UpsertMany writes products in one transaction (COPY into a temporary table, then one
// INSERT ... ON CONFLICT) and returns how many rows it inserted or changed. Products identical
// to their stored row are left alone, so re-seeding a catalog is cheap and keeps updated_at.
// A SKU may appear only once in products.
func (s *CatalogStore) UpsertMany(ctx context.Context, products []Product) (int, error) {
	if len(products) == 0 {
		return 0, nil
	}
	seen := make(map[string]bool, len(products))
	rows := make([][]any, 0, len(products))
	for _, p := range products {
		if seen[p.SKU] {
			return 0, fmt.Errorf("upsert products: sku %s given twice", p.SKU)
		}
		seen[p.SKU] = true
		rows = append(rows, []any{p.SKU, p.Name, p.Category, p.Brand, p.PriceMinor, p.Currency,
			p.Active})
	}
	var changed int64
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `
CREATE TEMPORARY TABLE products_in (
    sku text, name text, category text, brand text, price_minor bigint, currency text,
    active boolean
) ON COMMIT DROP`); err != nil {
			return fmt.Errorf("create staging table: %w", err)
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"products_in"},
			[]string{"sku", "name", "category", "brand", "price_minor", "currency", "active"},
			pgx.CopyFromRows(rows)); err != nil {
			return fmt.Errorf("copy: %w", err)
		}
		tag, err := tx.Exec(ctx, upsertProductsSQL)
		if err != nil {
			return err
		}
		changed = tag.RowsAffected()
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("upsert %d products: %w", len(products), err)
	}
	return int(changed), nil
}

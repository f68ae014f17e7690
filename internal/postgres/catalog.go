package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
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

// ImportResult is what CatalogStore.Import did, or would do on a dry run. SKUs are sorted.
type ImportResult struct {
	Inserted  []string
	Updated   []ProductChange
	Unchanged []string
	// StockSeeded are the SKUs that got a stock row with their initial on_hand; StockKept those
	// that had one already and were left alone (stock moves through warehouse events).
	StockSeeded []string
	StockKept   []string
}

// ProductChange is an update of a stored product: each changed field with its old and new value.
type ProductChange struct {
	SKU    string
	Fields []FieldChange
}

// FieldChange is one changed column of a product.
type FieldChange struct {
	Field    string
	Old, New string
}

// errDryRun rolls back the transaction of a dry-run import.
var errDryRun = errors.New("dry run")

// Import upserts products and gives the SKUs of onHand without a stock row that on_hand, all in
// one transaction: every row is imported or none is. With apply false the transaction is rolled
// back, so a dry run reports exactly what applying would do (constraint checks included) and
// changes nothing. Each SKU may appear once in products; onHand SKUs must be in products or in
// the catalog.
func (s *CatalogStore) Import(ctx context.Context, products []Product, onHand map[string]int64, apply bool) (ImportResult, error) {
	var res ImportResult
	skus := make([]string, 0, len(products))
	rows := make([][]any, 0, len(products))
	seen := make(map[string]bool, len(products))
	for _, p := range products {
		if seen[p.SKU] {
			return res, fmt.Errorf("import products: sku %s given twice", p.SKU)
		}
		seen[p.SKU] = true
		skus = append(skus, p.SKU)
		rows = append(rows, []any{p.SKU, p.Name, p.Category, p.Brand, p.PriceMinor, p.Currency, p.Active})
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		res = ImportResult{}
		q, err := tx.Query(ctx, `SELECT `+productColumns+` FROM products WHERE sku = ANY($1) ORDER BY sku FOR UPDATE`, skus)
		if err != nil {
			return fmt.Errorf("read products: %w", err)
		}
		stored, err := pgx.CollectRows(q, scanProduct)
		if err != nil {
			return fmt.Errorf("read products: %w", err)
		}
		old := make(map[string]Product, len(stored))
		for _, p := range stored {
			old[p.SKU] = p
		}
		for _, p := range products {
			o, ok := old[p.SKU]
			if !ok {
				res.Inserted = append(res.Inserted, p.SKU)
				continue
			}
			if ch := productChanges(o, p); len(ch) > 0 {
				res.Updated = append(res.Updated, ProductChange{SKU: p.SKU, Fields: ch})
			} else {
				res.Unchanged = append(res.Unchanged, p.SKU)
			}
		}
		if len(rows) > 0 {
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
			if _, err := tx.Exec(ctx, upsertProductsSQL); err != nil {
				return fmt.Errorf("upsert: %w", err)
			}
		}
		if len(onHand) > 0 {
			stockSKUs := make([]string, 0, len(onHand))
			for sku := range onHand {
				stockSKUs = append(stockSKUs, sku)
			}
			slices.Sort(stockSKUs)
			qty := make([]int64, len(stockSKUs))
			for i, sku := range stockSKUs {
				qty[i] = onHand[sku]
			}
			q, err := tx.Query(ctx, `
INSERT INTO stock (sku, on_hand)
SELECT sku, on_hand FROM unnest($1::text[], $2::bigint[]) AS seed (sku, on_hand)
ON CONFLICT (sku) DO NOTHING
RETURNING sku`, stockSKUs, qty)
			if err != nil {
				return fmt.Errorf("seed stock: %w", err)
			}
			created, err := pgx.CollectRows(q, pgx.RowTo[string])
			if err != nil {
				return fmt.Errorf("seed stock: %w", err)
			}
			slices.Sort(created)
			res.StockSeeded = created
			for _, sku := range stockSKUs {
				if _, found := slices.BinarySearch(created, sku); !found {
					res.StockKept = append(res.StockKept, sku)
				}
			}
		}
		if !apply {
			return errDryRun
		}
		return nil
	})
	if err != nil && !errors.Is(err, errDryRun) {
		return ImportResult{}, fmt.Errorf("import %d products: %w", len(products), err)
	}
	slices.Sort(res.Inserted)
	slices.Sort(res.Unchanged)
	slices.SortFunc(res.Updated, func(a, b ProductChange) int { return strings.Compare(a.SKU, b.SKU) })
	return res, nil
}

// productChanges lists the fields in which p differs from the stored o.
func productChanges(o, p Product) []FieldChange {
	var ch []FieldChange
	add := func(f, a, b string) {
		if a != b {
			ch = append(ch, FieldChange{Field: f, Old: a, New: b})
		}
	}
	add("name", o.Name, p.Name)
	add("category", o.Category, p.Category)
	add("brand", o.Brand, p.Brand)
	add("price_minor", strconv.FormatInt(o.PriceMinor, 10), strconv.FormatInt(p.PriceMinor, 10))
	add("currency", o.Currency, p.Currency)
	add("active", strconv.FormatBool(o.Active), strconv.FormatBool(p.Active))
	return ch
}

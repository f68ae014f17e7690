package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// StockLevel is the stock truth for one SKU.
type StockLevel struct {
	SKU       string
	OnHand    int64
	Allocated int64
}

// StockStore reads and writes stock truth. The schema guarantees allocated <= on_hand (I1).
type StockStore struct {
	pool *pgxpool.Pool
}

// NewStockStore returns a StockStore over pool.
func NewStockStore(pool *pgxpool.Pool) *StockStore {
	return &StockStore{pool: pool}
}

// foreignKeyViolation is SQLSTATE 23503.
const foreignKeyViolation = "23503"

// Set sets on_hand for sku, creating its stock row if needed. An unknown SKU is ErrNotFound; an
// on_hand below what is allocated fails with the stock_no_oversell check violation.
func (s *StockStore) Set(ctx context.Context, sku string, onHand int64) error {
	_, err := s.pool.Exec(ctx, `
INSERT INTO stock (sku, on_hand) VALUES ($1, $2)
ON CONFLICT (sku) DO UPDATE SET on_hand = EXCLUDED.on_hand, updated_at = now()`, sku, onHand)
	if pgErr, ok := errors.AsType[*pgconn.PgError](err); ok && pgErr.Code == foreignKeyViolation {
		return fmt.Errorf("set stock %s: product %w", sku, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("set stock %s: %w", sku, err)
	}
	return nil
}

// All returns the stock of every SKU that has a stock row, sorted by SKU.
func (s *StockStore) All(ctx context.Context) ([]StockLevel, error) {
	rows, err := s.pool.Query(ctx, `SELECT sku, on_hand, allocated FROM stock ORDER BY sku`)
	if err != nil {
		return nil, fmt.Errorf("list stock: %w", err)
	}
	levels, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (StockLevel, error) {
		var l StockLevel
		err := row.Scan(&l.SKU, &l.OnHand, &l.Allocated)
		return l, err
	})
	if err != nil {
		return nil, fmt.Errorf("list stock: %w", err)
	}
	return levels, nil
}

// SeedMissing creates stock rows with the given on_hand for SKUs that have none, leaves existing
// rows untouched, and returns how many rows it created. Every SKU must be in the catalog.
func (s *StockStore) SeedMissing(ctx context.Context, onHand map[string]int64) (int, error) {
	if len(onHand) == 0 {
		return 0, nil
	}
	skus := make([]string, 0, len(onHand))
	for sku := range onHand {
		skus = append(skus, sku)
	}
	slices.Sort(skus) // a stable lock order when seeders race
	qty := make([]int64, len(skus))
	for i, sku := range skus {
		qty[i] = onHand[sku]
	}
	tag, err := s.pool.Exec(ctx, `
INSERT INTO stock (sku, on_hand)
SELECT sku, on_hand FROM unnest($1::text[], $2::bigint[]) AS seed (sku, on_hand)
ON CONFLICT (sku) DO NOTHING`, skus, qty)
	if err != nil {
		return 0, fmt.Errorf("seed stock for %d skus: %w", len(skus), err)
	}
	return int(tag.RowsAffected()), nil
}

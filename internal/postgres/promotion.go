package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/orderpipe/orderpipe/internal/promotion"
)

// ErrConflict means a row with the same key exists already.
var ErrConflict = errors.New("already exists")

// PromotionStore reads and writes promotions and reports what they sold.
type PromotionStore struct {
	pool *pgxpool.Pool
}

// NewPromotionStore returns a PromotionStore over pool.
func NewPromotionStore(pool *pgxpool.Pool) *PromotionStore { return &PromotionStore{pool: pool} }

const promotionColumns = `id, name, kind, coalesce(percent_off, 0), coalesce(fixed_price_minor, 0), skus, category,
starts_at, ends_at, time_zone, coalesce(stock_cap, 0), over_cap, coalesce(per_customer_limit, 0), ended_at,
created_at, updated_at`

func scanPromotion(row pgx.CollectableRow) (promotion.Promotion, error) {
	var p promotion.Promotion
	var kind, over string
	err := row.Scan(&p.ID, &p.Name, &kind, &p.PercentOff, &p.FixedPriceMinor, &p.SKUs, &p.Category,
		&p.StartsAt, &p.EndsAt, &p.TimeZone, &p.StockCap, &over, &p.PerCustomerLimit, &p.EndedAt,
		&p.CreatedAt, &p.UpdatedAt)
	p.Kind, p.OverCap = promotion.Kind(kind), promotion.OverCap(over)
	p.StartsAt, p.EndsAt, p.CreatedAt, p.UpdatedAt = p.StartsAt.UTC(), p.EndsAt.UTC(), p.CreatedAt.UTC(), p.UpdatedAt.UTC()
	if p.EndedAt != nil {
		t := p.EndedAt.UTC()
		p.EndedAt = &t
	}
	if p.SKUs == nil {
		p.SKUs = []string{}
	}
	return p, err
}

func nullIfZero[T int | int64](v T) any {
	if v == 0 {
		return nil
	}
	return v
}

// Create inserts p (ErrConflict when its id exists) and returns the stored row.
func (s *PromotionStore) Create(ctx context.Context, p promotion.Promotion) (promotion.Promotion, error) {
	rows, err := s.pool.Query(ctx, `
INSERT INTO promotions (id, name, kind, percent_off, fixed_price_minor, skus, category, starts_at, ends_at,
    time_zone, stock_cap, over_cap, per_customer_limit)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
RETURNING `+promotionColumns,
		p.ID, p.Name, string(p.Kind), nullIfZero(p.PercentOff), nullIfZero(p.FixedPriceMinor), skusOrEmpty(p.SKUs), p.Category,
		p.StartsAt.UTC(), p.EndsAt.UTC(), p.TimeZone, nullIfZero(p.StockCap), string(p.OverCap), nullIfZero(p.PerCustomerLimit))
	if err != nil {
		return promotion.Promotion{}, fmt.Errorf("create promotion %s: %w", p.ID, err)
	}
	stored, err := pgx.CollectExactlyOneRow(rows, scanPromotion)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" {
		return promotion.Promotion{}, fmt.Errorf("create promotion %s: %w", p.ID, ErrConflict)
	}
	if err != nil {
		return promotion.Promotion{}, fmt.Errorf("create promotion %s: %w", p.ID, err)
	}
	return stored, nil
}

func skusOrEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// Get returns the promotion with id, or ErrNotFound.
func (s *PromotionStore) Get(ctx context.Context, id string) (promotion.Promotion, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+promotionColumns+` FROM promotions WHERE id = $1`, id)
	if err != nil {
		return promotion.Promotion{}, fmt.Errorf("get promotion %s: %w", id, err)
	}
	p, err := pgx.CollectExactlyOneRow(rows, scanPromotion)
	if errors.Is(err, pgx.ErrNoRows) {
		return promotion.Promotion{}, fmt.Errorf("get promotion %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return promotion.Promotion{}, fmt.Errorf("get promotion %s: %w", id, err)
	}
	return p, nil
}

// List returns promotions sorted by start, then id. With live, only those not ended at now.
func (s *PromotionStore) List(ctx context.Context, live bool, now time.Time) ([]promotion.Promotion, error) {
	q := `SELECT ` + promotionColumns + ` FROM promotions`
	args := []any{}
	if live {
		q += ` WHERE ends_at > $1 AND (ended_at IS NULL OR ended_at > $1)`
		args = append(args, now.UTC())
	}
	rows, err := s.pool.Query(ctx, q+` ORDER BY starts_at, id`, args...)
	if err != nil {
		return nil, fmt.Errorf("list promotions: %w", err)
	}
	ps, err := pgx.CollectRows(rows, scanPromotion)
	if err != nil {
		return nil, fmt.Errorf("list promotions: %w", err)
	}
	return ps, nil
}

// Update replaces the changeable fields of the promotion with p.ID (ErrNotFound when missing)
// and returns the stored row together with the row as it was before.
func (s *PromotionStore) Update(ctx context.Context, p promotion.Promotion) (before, after promotion.Promotion, err error) {
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT `+promotionColumns+` FROM promotions WHERE id = $1 FOR UPDATE`, p.ID)
		if err != nil {
			return err
		}
		before, err = pgx.CollectExactlyOneRow(rows, scanPromotion)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		rows, err = tx.Query(ctx, `
UPDATE promotions SET name = $2, kind = $3, percent_off = $4, fixed_price_minor = $5, skus = $6, category = $7,
    starts_at = $8, ends_at = $9, time_zone = $10, stock_cap = $11, over_cap = $12, per_customer_limit = $13,
    updated_at = now()
WHERE id = $1
RETURNING `+promotionColumns,
			p.ID, p.Name, string(p.Kind), nullIfZero(p.PercentOff), nullIfZero(p.FixedPriceMinor), skusOrEmpty(p.SKUs), p.Category,
			p.StartsAt.UTC(), p.EndsAt.UTC(), p.TimeZone, nullIfZero(p.StockCap), string(p.OverCap), nullIfZero(p.PerCustomerLimit))
		if err != nil {
			return err
		}
		after, err = pgx.CollectExactlyOneRow(rows, scanPromotion)
		return err
	})
	if err != nil {
		return before, after, fmt.Errorf("update promotion %s: %w", p.ID, err)
	}
	return before, after, nil
}

// End ends the promotion with id at the instant at (unless it ended earlier) and returns it.
func (s *PromotionStore) End(ctx context.Context, id string, at time.Time) (promotion.Promotion, error) {
	rows, err := s.pool.Query(ctx, `
UPDATE promotions SET ended_at = least(coalesce(ended_at, $2), $2), updated_at = now()
WHERE id = $1
RETURNING `+promotionColumns, id, at.UTC())
	if err != nil {
		return promotion.Promotion{}, fmt.Errorf("end promotion %s: %w", id, err)
	}
	p, err := pgx.CollectExactlyOneRow(rows, scanPromotion)
	if errors.Is(err, pgx.ErrNoRows) {
		return promotion.Promotion{}, fmt.Errorf("end promotion %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return promotion.Promotion{}, fmt.Errorf("end promotion %s: %w", id, err)
	}
	return p, nil
}

// SKUsOfCategory lists the SKUs of a category.
func (s *PromotionStore) SKUsOfCategory(ctx context.Context, category string) ([]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT sku FROM products WHERE category = $1 ORDER BY sku`, category)
	if err != nil {
		return nil, fmt.Errorf("skus of category %s: %w", category, err)
	}
	skus, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("skus of category %s: %w", category, err)
	}
	return skus, nil
}

// PromotionSales is what one promotion sold: confirmed (or shipped) orders only.
type PromotionSales struct {
	PromotionID  string
	Name         string
	Currency     string
	Orders       int64
	Units        int64
	RevenueMinor int64
}

// Sales reports units and revenue (line totals, without shipping) per promotion over confirmed
// and shipped orders, one row per promotion and currency, sorted by promotion id. An empty id
// reports every promotion.
func (s *PromotionStore) Sales(ctx context.Context, id string) ([]PromotionSales, error) {
	rows, err := s.pool.Query(ctx, `
SELECT l.promotion_id, coalesce(p.name, ''), o.currency, count(DISTINCT o.id), sum(l.quantity)::bigint,
       sum(l.quantity::bigint * l.unit_price_minor)::bigint
FROM order_lines l
JOIN orders o ON o.id = l.order_id
LEFT JOIN promotions p ON p.id = l.promotion_id
WHERE l.promotion_id IS NOT NULL AND o.status IN ('confirmed', 'shipped') AND ($1 = '' OR l.promotion_id = $1)
GROUP BY l.promotion_id, p.name, o.currency
ORDER BY l.promotion_id, o.currency`, id)
	if err != nil {
		return nil, fmt.Errorf("promotion sales: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (PromotionSales, error) {
		var ps PromotionSales
		err := r.Scan(&ps.PromotionID, &ps.Name, &ps.Currency, &ps.Orders, &ps.Units, &ps.RevenueMinor)
		return ps, err
	})
	if err != nil {
		return nil, fmt.Errorf("promotion sales: %w", err)
	}
	return out, nil
}

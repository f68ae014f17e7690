package reconcile

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// The few Postgres queries reconciliation needs beyond postgres.StockStore. They take the SKU's
// stock row lock (SELECT ... FOR UPDATE), the same lock order-worker takes to allocate, so while a
// SKU is repaired or rebuilt no order can be confirmed on it: the truth read and the Redis write
// see the same allocations.

// level is one SKU's stock truth.
type level struct {
	OnHand, Allocated int64
}

func (l level) free() int64 { return l.OnHand - l.Allocated }

// levels reads the stock of skus (without locking).
func levels(ctx context.Context, pool *pgxpool.Pool, skus []string) (map[string]level, error) {
	rows, err := pool.Query(ctx, `SELECT sku, on_hand, allocated FROM stock WHERE sku = ANY($1)`, skus)
	if err != nil {
		return nil, fmt.Errorf("read stock of %d skus: %w", len(skus), err)
	}
	out := map[string]level{}
	var sku string
	var l level
	_, err = pgx.ForEachRow(rows, []any{&sku, &l.OnHand, &l.Allocated}, func() error {
		out[sku] = l
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read stock of %d skus: %w", len(skus), err)
	}
	return out, nil
}

// errNoStockRow means the SKU's stock row disappeared.
var errNoStockRow = errors.New("no stock row")

// withLockedStock runs fn in a transaction holding sku's stock row lock, with the row's values
// and the transaction (for reads that must see the same snapshot of decisions).
func withLockedStock(ctx context.Context, pool *pgxpool.Pool, sku string, fn func(tx pgx.Tx, l level) error) error {
	return pgx.BeginTxFunc(ctx, pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
		var l level
		err := tx.QueryRow(ctx, `SELECT on_hand, allocated FROM stock WHERE sku = $1 FOR UPDATE`, sku).Scan(&l.OnHand, &l.Allocated)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("lock stock of %s: %w", sku, errNoStockRow)
		}
		if err != nil {
			return fmt.Errorf("lock stock of %s: %w", sku, err)
		}
		return fn(tx, l)
	})
}

// decided returns the status of every order of ids that has a row in Postgres (order-worker
// decided it). ids must be UUIDs.
func decided(ctx context.Context, q interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}, ids []string) (map[string]string, error) {
	out := map[string]string{}
	if len(ids) == 0 {
		return out, nil
	}
	rows, err := q.Query(ctx, `SELECT id::text, status FROM orders WHERE id = ANY($1::uuid[])`, ids)
	if err != nil {
		return nil, fmt.Errorf("decided orders among %d: %w", len(ids), err)
	}
	var id, status string
	_, err = pgx.ForEachRow(rows, []any{&id, &status}, func() error {
		out[id] = status
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("decided orders among %d: %w", len(ids), err)
	}
	return out, nil
}

// marks returns, per warehouse, the seq of the last stock event Postgres applied to sku
// (warehouse_stock.last_seq): the truth read under the same lock includes exactly those events.
func marks(ctx context.Context, tx pgx.Tx, sku string) (map[string]int64, error) {
	rows, err := tx.Query(ctx, `SELECT warehouse_id, last_seq FROM warehouse_stock WHERE sku = $1`, sku)
	if err != nil {
		return nil, fmt.Errorf("stock event marks of %s: %w", sku, err)
	}
	out := map[string]int64{}
	var wh string
	var seq int64
	_, err = pgx.ForEachRow(rows, []any{&wh, &seq}, func() error {
		out[wh] = seq
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("stock event marks of %s: %w", sku, err)
	}
	return out, nil
}

// promoEnds returns the end (ends_at, or ended_at when ended earlier) of every promotion that
// ends after since: the promotions whose counters may still exist in Redis.
func promoEnds(ctx context.Context, pool *pgxpool.Pool, since time.Time) (map[string]time.Time, error) {
	rows, err := pool.Query(ctx, `
SELECT id, least(ends_at, coalesce(ended_at, ends_at)) FROM promotions
WHERE least(ends_at, coalesce(ended_at, ends_at)) > $1`, since)
	if err != nil {
		return nil, fmt.Errorf("promotions ending after %s: %w", since.UTC().Format(time.RFC3339), err)
	}
	out := map[string]time.Time{}
	var id string
	var end time.Time
	_, err = pgx.ForEachRow(rows, []any{&id, &end}, func() error {
		out[id] = end
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("promotions ending after %s: %w", since.UTC().Format(time.RFC3339), err)
	}
	return out, nil
}

// promoSold returns, per promotion of ids and customer, the promotional units of sku in the
// orders Postgres decided and did not cancel (order_lines.promotion_id). Read under the SKU's
// stock row lock, with the decided orders, so they and the holds re-created add up to what
// reserve.lua counted: an order is either decided (here) or held, never both (a confirmation
// needs the lock; a cancellation counts nowhere).
func promoSold(ctx context.Context, tx pgx.Tx, sku string, ids []string) (map[string]map[string]int64, error) {
	out := map[string]map[string]int64{}
	if len(ids) == 0 {
		return out, nil
	}
	rows, err := tx.Query(ctx, `
SELECT l.promotion_id, o.customer_id, sum(l.quantity)::bigint
FROM order_lines l JOIN orders o ON o.id = l.order_id
WHERE l.promotion_id = ANY($2) AND l.sku = $1 AND o.status <> 'cancelled'
GROUP BY l.promotion_id, o.customer_id`, sku, ids)
	if err != nil {
		return nil, fmt.Errorf("promotional units of %s: %w", sku, err)
	}
	var id, customer string
	var n int64
	_, err = pgx.ForEachRow(rows, []any{&id, &customer, &n}, func() error {
		if out[id] == nil {
			out[id] = map[string]int64{}
		}
		out[id][customer] = n
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("promotional units of %s: %w", sku, err)
	}
	return out, nil
}

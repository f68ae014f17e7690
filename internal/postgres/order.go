package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Order is one stored order with its lines. CancelReason is empty unless Status is cancelled.
type Order struct {
	ID              string // UUID
	Status          string
	CancelReason    string
	CustomerID      string
	Email           string
	Priority        string
	Currency        string
	SubtotalMinor   int64
	ShippingMinor   int64
	TotalMinor      int64
	ShippingAddress json.RawMessage
	PlacedAt        time.Time
	HoldDeadline    time.Time
	UpdatedAt       time.Time // zero on Insert means now
	Lines           []OrderLine
}

// OrderLine is one line of an order, priced from the catalog when the order was placed.
type OrderLine struct {
	LineNo         int
	SKU            string
	Name           string
	Quantity       int
	UnitPriceMinor int64
	PromotionID    string // the promotion the line was sold under; empty: the base price
}

// OrderStore reads and writes orders.
type OrderStore struct {
	pool *pgxpool.Pool
}

// NewOrderStore returns an OrderStore over pool.
func NewOrderStore(pool *pgxpool.Pool) *OrderStore {
	return &OrderStore{pool: pool}
}

// Get returns the order with its lines sorted by line number. found is false when no order has
// that id, including ids that are not UUIDs.
func (s *OrderStore) Get(ctx context.Context, id string) (o Order, found bool, err error) {
	uid, err := uuid.Parse(id)
	if err != nil {
		return Order{}, false, nil
	}
	err = pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{
		IsoLevel:   pgx.RepeatableRead, // order and lines from one snapshot
		AccessMode: pgx.ReadOnly,
	}, func(tx pgx.Tx) error {
		var addr []byte
		err := tx.QueryRow(ctx, `
SELECT id::text, status, COALESCE(cancel_reason, ''), customer_id, email, priority, currency,
       subtotal_minor, shipping_minor, total_minor, shipping_address, placed_at, hold_deadline,
       updated_at
FROM orders WHERE id = $1`, uid).Scan(
			&o.ID, &o.Status, &o.CancelReason, &o.CustomerID, &o.Email, &o.Priority, &o.Currency,
			&o.SubtotalMinor, &o.ShippingMinor, &o.TotalMinor, &addr, &o.PlacedAt,
			&o.HoldDeadline, &o.UpdatedAt)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		found = true
		o.ShippingAddress = json.RawMessage(addr)
		rows, err := tx.Query(ctx, `
SELECT line_no, sku, name, quantity, unit_price_minor, coalesce(promotion_id, '')
FROM order_lines WHERE order_id = $1 ORDER BY line_no`, uid)
		if err != nil {
			return err
		}
		o.Lines, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (OrderLine, error) {
			var l OrderLine
			err := row.Scan(&l.LineNo, &l.SKU, &l.Name, &l.Quantity, &l.UnitPriceMinor, &l.PromotionID)
			return l, err
		})
		return err
	})
	if err != nil {
		return Order{}, false, fmt.Errorf("get order %s: %w", id, err)
	}
	if !found {
		return Order{}, false, nil
	}
	return o, true, nil
}

// Insert stores the order and its lines in one transaction. It returns false, and changes
// nothing, when an order with that id already exists, so redelivered events are harmless (I3).
func (s *OrderStore) Insert(ctx context.Context, o Order) (bool, error) {
	uid, err := uuid.Parse(o.ID)
	if err != nil {
		return false, fmt.Errorf("insert order %q: id: %w", o.ID, err)
	}
	var updatedAt *time.Time
	if !o.UpdatedAt.IsZero() {
		updatedAt = &o.UpdatedAt
	}
	var inserted bool
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `
INSERT INTO orders (id, status, cancel_reason, customer_id, email, priority, currency,
    subtotal_minor, shipping_minor, total_minor, shipping_address, placed_at, hold_deadline,
    updated_at)
VALUES ($1, $2, NULLIF($3, ''), $4, $5, $6, $7, $8, $9, $10, $11::jsonb, $12, $13,
    COALESCE($14::timestamptz, now()))
ON CONFLICT (id) DO NOTHING`,
			uid, o.Status, o.CancelReason, o.CustomerID, o.Email, o.Priority, o.Currency,
			o.SubtotalMinor, o.ShippingMinor, o.TotalMinor, string(o.ShippingAddress), o.PlacedAt,
			o.HoldDeadline, updatedAt)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return nil
		}
		inserted = true
		rows := make([][]any, len(o.Lines))
		for i, l := range o.Lines {
			rows[i] = []any{uid, l.LineNo, l.SKU, l.Name, l.Quantity, l.UnitPriceMinor, nullIfEmpty(l.PromotionID)}
		}
		_, err = tx.CopyFrom(ctx, pgx.Identifier{"order_lines"},
			[]string{"order_id", "line_no", "sku", "name", "quantity", "unit_price_minor", "promotion_id"},
			pgx.CopyFromRows(rows))
		if err != nil {
			return fmt.Errorf("lines: %w", err)
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("insert order %s: %w", o.ID, err)
	}
	return inserted, nil
}

package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// TradeAccount is a business customer whose orders use the priority lane.
type TradeAccount struct {
	CustomerID string
	Name       string
	CreatedAt  time.Time
}

// TradeAccountStore reads and writes trade accounts.
type TradeAccountStore struct {
	pool *pgxpool.Pool
}

// NewTradeAccountStore returns a TradeAccountStore over pool.
func NewTradeAccountStore(pool *pgxpool.Pool) *TradeAccountStore {
	return &TradeAccountStore{pool: pool}
}

// Add makes customerID a trade account, or renames it when it is one already (its creation time
// stays). It returns the stored account.
func (s *TradeAccountStore) Add(ctx context.Context, customerID, name string) (TradeAccount, error) {
	a := TradeAccount{CustomerID: customerID}
	err := s.pool.QueryRow(ctx, `
INSERT INTO trade_accounts (customer_id, name) VALUES ($1, $2)
ON CONFLICT (customer_id) DO UPDATE SET name = EXCLUDED.name
RETURNING name, created_at`, customerID, name).Scan(&a.Name, &a.CreatedAt)
	if err != nil {
		return TradeAccount{}, fmt.Errorf("add trade account %s: %w", customerID, err)
	}
	return a, nil
}

// Remove ends customerID's trade account, or returns ErrNotFound.
func (s *TradeAccountStore) Remove(ctx context.Context, customerID string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM trade_accounts WHERE customer_id = $1`, customerID)
	if err != nil {
		return fmt.Errorf("remove trade account %s: %w", customerID, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("remove trade account %s: %w", customerID, ErrNotFound)
	}
	return nil
}

// All returns every trade account by customer id.
func (s *TradeAccountStore) All(ctx context.Context) ([]TradeAccount, error) {
	rows, err := s.pool.Query(ctx, `SELECT customer_id, name, created_at FROM trade_accounts ORDER BY customer_id`)
	if err != nil {
		return nil, fmt.Errorf("list trade accounts: %w", err)
	}
	as, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (TradeAccount, error) {
		var a TradeAccount
		err := row.Scan(&a.CustomerID, &a.Name, &a.CreatedAt)
		return a, err
	})
	if err != nil {
		return nil, fmt.Errorf("list trade accounts: %w", err)
	}
	return as, nil
}

// Package postgres adapts PostgreSQL, the system of record: the embedded schema migrations and
// the stores for the catalog, API keys, stock truth and orders. Invariant I1 (no oversell) is
// enforced here by the stock_no_oversell constraint, so it holds whatever Redis says.
//
// Every store method runs one statement or one transaction. A missing row is reported as
// ErrNotFound (wrapped with context); other errors, including connectivity errors, are wrapped
// with what was being done, and Postgres errors stay reachable with errors.As(*pgconn.PgError).
package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"
)

// ErrNotFound is returned (wrapped) when the requested row does not exist.
var ErrNotFound = errors.New("not found")

// Open connects a pool to the database at url and pings it. maxConns > 0 caps the pool size;
// otherwise pgxpool's default (or the url's pool_max_conns) applies. Postgres settings such as
// search_path may be given as url query parameters.
func Open(ctx context.Context, url string, maxConns int32) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parse postgres url: %w", err)
	}
	if maxConns > 0 {
		cfg.MaxConns = maxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open postgres pool: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("ping postgres %s:%d/%s: %w",
			cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Database, err)
	}
	return pool, nil
}

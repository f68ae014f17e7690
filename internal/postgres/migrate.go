package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"path"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migration is the state of one embedded migration in the database.
type Migration struct {
	Version   int64
	Name      string // file name, e.g. 00001_catalog_keys_stock.sql
	Applied   bool
	AppliedAt time.Time // zero when pending
}

// Migrate applies every pending embedded migration to the first schema on the connection's
// search_path and returns the names of the migrations it applied (none when the schema is up to
// date). Several processes may call it at once: a Postgres session advisory lock, keyed by the
// schema name, serialises them, so exactly one applies each migration and the others wait, then
// find nothing to do.
func Migrate(ctx context.Context, pool *pgxpool.Pool) ([]string, error) {
	var applied []string
	err := withProvider(ctx, pool, func(p *goose.Provider) error {
		results, err := p.Up(ctx)
		if err != nil {
			return err
		}
		for _, r := range results {
			applied = append(applied, path.Base(r.Source.Path))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	return applied, nil
}

// MigrationStatus reports every embedded migration, in version order, and whether it has been
// applied to the first schema on the connection's search_path.
func MigrationStatus(ctx context.Context, pool *pgxpool.Pool) ([]Migration, error) {
	var out []Migration
	err := withProvider(ctx, pool, func(p *goose.Provider) error {
		status, err := p.Status(ctx)
		if err != nil {
			return err
		}
		for _, s := range status {
			out = append(out, Migration{
				Version:   s.Source.Version,
				Name:      path.Base(s.Source.Path),
				Applied:   s.State == goose.StateApplied,
				AppliedAt: s.AppliedAt,
			})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("migration status: %w", err)
	}
	return out, nil
}

// withProvider runs fn with a goose provider over pool, locked per schema.
func withProvider(ctx context.Context, pool *pgxpool.Pool, fn func(*goose.Provider) error) error {
	var schema *string
	if err := pool.QueryRow(ctx, "SELECT current_schema()").Scan(&schema); err != nil {
		return fmt.Errorf("read current schema: %w", err)
	}
	if schema == nil {
		return errors.New("no existing schema on search_path")
	}
	locker, err := lock.NewPostgresSessionLocker(
		lock.WithLockID(migrationLockID(*schema)),
		lock.WithLockTimeout(1, 300),  // poll every second, give up after 5 minutes
		lock.WithUnlockTimeout(1, 60), // a lost session releases its lock anyway
	)
	if err != nil {
		return fmt.Errorf("migration locker: %w", err)
	}
	fsys, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		return fmt.Errorf("migration files: %w", err)
	}
	db := stdlib.OpenDBFromPool(pool) // closing db leaves pool open
	defer db.Close()
	p, err := goose.NewProvider(goose.DialectPostgres, db, fsys,
		goose.WithSessionLocker(locker),
		goose.WithDisableGlobalRegistry(true),
	)
	if err != nil {
		return fmt.Errorf("migration provider: %w", err)
	}
	return fn(p)
}

// migrationLockID derives the advisory lock key from the schema, so replicas migrating the same
// schema exclude each other while separate schemas of one database (one per test) do not.
func migrationLockID(schema string) int64 {
	h := fnv.New64a()
	h.Write([]byte("orderpipe/migrate/" + schema))
	return int64(h.Sum64())
}

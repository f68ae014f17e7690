package postgres_test

import (
	"context"
	"net/url"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/orderpipe/orderpipe/internal/postgres"
)

// migrationNames are the migration files in the source tree, in order (what is embedded).
func migrationNames() []string {
	files, err := filepath.Glob(filepath.Join("migrations", "*.sql"))
	if err != nil {
		panic(err)
	}
	names := make([]string, len(files))
	for i, f := range files {
		names[i] = filepath.Base(f)
	}
	slices.Sort(names)
	return names
}

func TestMigrateIsIdempotent(t *testing.T) {
	t.Parallel()
	b := setup(t) // already migrated once
	for range 2 {
		applied, err := postgres.Migrate(t.Context(), b.pool)
		if err != nil {
			t.Fatalf("migrate again: %v", err)
		}
		if len(applied) != 0 {
			t.Fatalf("got applied %v on a migrated schema, want none", applied)
		}
	}
	status, err := postgres.MigrationStatus(t.Context(), b.pool)
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	var names []string
	for i, m := range status {
		names = append(names, m.Name)
		if m.Version != int64(i+1) || !m.Applied || m.AppliedAt.IsZero() {
			t.Errorf("got %+v, want version %d applied with a time", m, i+1)
		}
	}
	if want := migrationNames(); !slices.Equal(names, want) {
		t.Fatalf("got migrations %v, want %v", names, want)
	}
}

func TestMigrateConcurrently(t *testing.T) {
	t.Parallel()
	b := setup(t)
	schema, freshURL := freshSchema(t, b)

	// Four "replicas", each with its own pool, start at once on an empty schema.
	const replicas = 4
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		applied []string
		errs    []error
	)
	for range replicas {
		wg.Go(func() {
			pool, err := postgres.Open(t.Context(), freshURL, 2)
			if err == nil {
				defer pool.Close()
				var names []string
				names, err = postgres.Migrate(t.Context(), pool)
				mu.Lock()
				applied = append(applied, names...)
				mu.Unlock()
			}
			if err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("got errors %v, want every replica to succeed", errs)
	}
	slices.Sort(applied)
	if want := migrationNames(); !slices.Equal(applied, want) {
		t.Fatalf("got applied %v across replicas, want each migration exactly once: %v", applied,
			want)
	}

	rows, err := b.pool.Query(t.Context(),
		"SELECT version_id FROM "+pgx.Identifier{schema, "goose_db_version"}.Sanitize()+" ORDER BY id")
	if err != nil {
		t.Fatalf("read versions: %v", err)
	}
	versions, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		t.Fatalf("read versions: %v", err)
	}
	want := []int64{0}
	for i := range migrationNames() {
		want = append(want, int64(i+1))
	}
	if !slices.Equal(versions, want) {
		t.Fatalf("got recorded versions %v, want %v", versions, want)
	}
	var tables int
	if err := b.pool.QueryRow(t.Context(), `
SELECT count(*) FROM pg_tables WHERE schemaname = $1
AND tablename IN ('products', 'api_keys', 'stock', 'orders', 'order_lines', 'processed_events', 'payments', 'allocations', 'order_dead_letters')`,
		schema).Scan(&tables); err != nil {
		t.Fatalf("count tables: %v", err)
	}
	if tables != 9 {
		t.Fatalf("got %d tables in %s, want 9", tables, schema)
	}
}

func TestMigrateNeedsASchema(t *testing.T) {
	t.Parallel()
	b := setup(t)
	missing, err := withSearchPath(b.url, "t_does_not_exist")
	if err != nil {
		t.Fatalf("url: %v", err)
	}
	pool, err := postgres.Open(t.Context(), missing, 1)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	defer pool.Close()
	if _, err := postgres.Migrate(t.Context(), pool); err == nil {
		t.Fatalf("migrate without an existing schema: got no error, want one")
	}
}

// freshSchema creates an empty schema next to the test's own and returns its name and a URL
// whose search_path selects it. The schema is dropped when the test ends.
func freshSchema(t *testing.T, b bundle) (string, string) {
	t.Helper()
	var own string
	if err := b.pool.QueryRow(t.Context(), "SELECT current_schema()").Scan(&own); err != nil {
		t.Fatalf("current schema: %v", err)
	}
	schema := own + "_fresh"
	if _, err := b.pool.Exec(t.Context(),
		"CREATE SCHEMA "+pgx.Identifier{schema}.Sanitize()); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := b.pool.Exec(ctx,
			"DROP SCHEMA "+pgx.Identifier{schema}.Sanitize()+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	u, err := withSearchPath(b.url, schema)
	if err != nil {
		t.Fatalf("url: %v", err)
	}
	return schema, u
}

func withSearchPath(databaseURL, schema string) (string, error) {
	u, err := url.Parse(databaseURL)
	if err != nil {
		return "", err
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String(), nil
}

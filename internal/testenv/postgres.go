// Package testenv gives tests real, isolated infrastructure: a migrated Postgres schema per test,
// and the like for the other backends.
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/orderpipe/orderpipe/internal/postgres"
)

// defaultDatabaseURL is used when TEST_DATABASE_URL is unset.
const defaultDatabaseURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// Postgres creates a fresh schema t_<random> in the database at TEST_DATABASE_URL (default
// postgres://postgres@127.0.0.1:5432/test?sslmode=disable), migrates it with postgres.Migrate, and returns a pool whose connections
// use it as search_path, plus the matching URL (with search_path=t_<random>) for code that opens
// its own pool or runs in another process. The pool is closed and the schema dropped (CASCADE)
// when the test ends. A database that cannot be reached fails the test.
func Postgres(t testing.TB) (*pgxpool.Pool, string) {
	t.Helper()
	base := os.Getenv("TEST_DATABASE_URL")
	if base == "" {
		base = defaultDatabaseURL
	}
	schema := "t_" + randomHex(8)
	schemaURL, err := withSearchPath(base, schema)
	if err != nil {
		t.Fatalf("TEST_DATABASE_URL: %v", err)
	}

	ctx := t.Context()
	admin, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("connect to test database (set TEST_DATABASE_URL): %v", err)
	}
	_, err = admin.Exec(ctx, "CREATE SCHEMA "+pgx.Identifier{schema}.Sanitize())
	_ = admin.Close(ctx)
	if err != nil {
		t.Fatalf("create schema %s: %v", schema, err)
	}
	t.Cleanup(func() { dropSchema(t, base, schema) })

	pool, err := postgres.Open(ctx, schemaURL, 4)
	if err != nil {
		t.Fatalf("open test pool: %v", err)
	}
	t.Cleanup(pool.Close) // runs before dropSchema
	if _, err := postgres.Migrate(ctx, pool); err != nil {
		t.Fatalf("migrate schema %s: %v", schema, err)
	}
	return pool, schemaURL
}

// withSearchPath returns databaseURL with search_path set to schema.
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

func dropSchema(t testing.TB, databaseURL, schema string) {
	t.Helper()
	// t.Context is already cancelled when cleanups run.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, databaseURL)
	if err != nil {
		t.Errorf("drop schema %s: connect: %v", schema, err)
		return
	}
	defer func() { _ = conn.Close(ctx) }()
	if _, err := conn.Exec(ctx,
		"DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE"); err != nil {
		t.Errorf("drop schema %s: %v", schema, err)
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails
	return hex.EncodeToString(b)
}

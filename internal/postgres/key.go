package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// APIKey is a stored API key. Only a hash of the secret is kept.
type APIKey struct {
	ID         string
	Name       string
	SecretHash []byte
	Scopes     []string
	CreatedAt  time.Time  // zero on Create means now
	RevokedAt  *time.Time // nil while the key is valid
}

// KeyStore reads and writes API keys.
type KeyStore struct {
	pool *pgxpool.Pool
}

// NewKeyStore returns a KeyStore over pool.
func NewKeyStore(pool *pgxpool.Pool) *KeyStore {
	return &KeyStore{pool: pool}
}

// Create stores a new key. An existing id is a unique violation.
func (s *KeyStore) Create(ctx context.Context, k APIKey) error {
	var createdAt *time.Time
	if !k.CreatedAt.IsZero() {
		createdAt = &k.CreatedAt
	}
	scopes := k.Scopes
	if scopes == nil {
		scopes = []string{}
	}
	_, err := s.pool.Exec(ctx, `
INSERT INTO api_keys (id, name, secret_hash, scopes, created_at, revoked_at)
VALUES ($1, $2, $3, $4, COALESCE($5::timestamptz, now()), $6)`,
		k.ID, k.Name, k.SecretHash, scopes, createdAt, k.RevokedAt)
	if err != nil {
		return fmt.Errorf("create api key %s: %w", k.ID, err)
	}
	return nil
}

// All returns every key, revoked ones included so caches can drop them, oldest first.
func (s *KeyStore) All(ctx context.Context) ([]APIKey, error) {
	rows, err := s.pool.Query(ctx, `
SELECT id, name, secret_hash, scopes, created_at, revoked_at
FROM api_keys ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("list api keys: %w", err)
	}
	keys, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (APIKey, error) {
		var k APIKey
		err := row.Scan(&k.ID, &k.Name, &k.SecretHash, &k.Scopes, &k.CreatedAt, &k.RevokedAt)
		return k, err
	})
	if err != nil {
		return nil, fmt.Errorf("list api keys: %w", err)
	}
	return keys, nil
}

// Revoke marks the key revoked, or returns ErrNotFound. Revoking a revoked key keeps the first
// revocation time.
func (s *KeyStore) Revoke(ctx context.Context, id string) error {
	tag, err := s.pool.Exec(ctx, `
UPDATE api_keys SET revoked_at = COALESCE(revoked_at, now()) WHERE id = $1`, id)
	if err != nil {
		return fmt.Errorf("revoke api key %s: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("revoke api key %s: %w", id, ErrNotFound)
	}
	return nil
}

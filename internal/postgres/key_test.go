package postgres_test

import (
	"bytes"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/orderpipe/orderpipe/internal/postgres"
)

func TestKeys(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	created := time.Date(2025, 11, 3, 9, 30, 0, 0, time.UTC)
	keys := []postgres.APIKey{
		{ID: "key_checkout", Name: "checkout", SecretHash: []byte{1, 2, 3},
			Scopes: []string{"orders:write", "orders:read"}, CreatedAt: created},
		{ID: "key_ops", Name: "ops", SecretHash: []byte{4, 5, 6}, Scopes: []string{"catalog:write"}},
	}
	for _, k := range keys {
		if err := b.keys.Create(ctx, k); err != nil {
			t.Fatalf("create %s: %v", k.ID, err)
		}
	}
	err := b.keys.Create(ctx, keys[0])
	wantPgError(t, err, "23505", "api_keys_pkey")

	all, err := b.keys.All(ctx)
	if err != nil {
		t.Fatalf("all: %v", err)
	}
	if len(all) != 2 {
		t.Fatalf("got %d keys, want 2", len(all))
	}
	for i, got := range all {
		want := keys[i]
		if got.ID != want.ID || got.Name != want.Name || !bytes.Equal(got.SecretHash, want.SecretHash) ||
			!slices.Equal(got.Scopes, want.Scopes) || got.RevokedAt != nil || got.CreatedAt.IsZero() {
			t.Fatalf("got %+v, want %+v", got, want)
		}
	}
	if !all[0].CreatedAt.Equal(created) {
		t.Fatalf("got created at %v, want %v", all[0].CreatedAt, created)
	}

	if err := b.keys.Revoke(ctx, "key_checkout"); err != nil {
		t.Fatalf("revoke: %v", err)
	}
	all, err = b.keys.All(ctx)
	if err != nil {
		t.Fatalf("all: %v", err)
	}
	if len(all) != 2 || all[0].RevokedAt == nil || all[1].RevokedAt != nil {
		t.Fatalf("got %+v, want key_checkout revoked and still listed, key_ops valid", all)
	}
	revokedAt := *all[0].RevokedAt
	if err := b.keys.Revoke(ctx, "key_checkout"); err != nil {
		t.Fatalf("revoke again: %v", err)
	}
	all, err = b.keys.All(ctx)
	if err != nil {
		t.Fatalf("all: %v", err)
	}
	if !all[0].RevokedAt.Equal(revokedAt) {
		t.Fatalf("got revoked at %v after a second revoke, want the first %v", all[0].RevokedAt,
			revokedAt)
	}

	if err := b.keys.Revoke(ctx, "key_missing"); !errors.Is(err, postgres.ErrNotFound) {
		t.Fatalf("revoke missing: got %v, want ErrNotFound", err)
	}
}

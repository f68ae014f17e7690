package postgres_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/orderpipe/orderpipe/internal/postgres"
)

func TestTradeAccounts(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	s := postgres.NewTradeAccountStore(b.pool)
	first, err := s.Add(ctx, "garage-17", "Garage Müller")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Add(ctx, "fleet-2", ""); err != nil {
		t.Fatal(err)
	}
	renamed, err := s.Add(ctx, "garage-17", "Müller & Sons")
	if err != nil {
		t.Fatal(err)
	}
	if renamed.Name != "Müller & Sons" || !renamed.CreatedAt.Equal(first.CreatedAt) {
		t.Fatalf("adding again: %+v, want the new name and the first creation time %s", renamed, first.CreatedAt)
	}
	all, err := s.All(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 || all[0].CustomerID != "fleet-2" || all[1].CustomerID != "garage-17" || all[1].Name != "Müller & Sons" {
		t.Fatalf("all: %+v, want fleet-2 and garage-17 (renamed)", all)
	}
	if err := s.Remove(ctx, "fleet-2"); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove(ctx, "fleet-2"); !errors.Is(err, postgres.ErrNotFound) {
		t.Fatalf("removing twice: %v, want ErrNotFound", err)
	}
	_, err = s.Add(ctx, strings.Repeat("x", 65), "")
	wantPgError(t, err, "23514", "trade_accounts_customer_id_check")
	if all, _ := s.All(ctx); len(all) != 1 || all[0].CustomerID != "garage-17" {
		t.Fatalf("after the removal: %+v, want garage-17 only", all)
	}
}

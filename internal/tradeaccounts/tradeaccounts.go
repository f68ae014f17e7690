// Package tradeaccounts is the api's in-memory set of trade accounts: business customers
// (garages, fleets, resellers) whose orders travel on the priority lane, drained first, like
// express orders. The set lives in Postgres (postgres.TradeAccountStore, managed with
// `orderctl trade-accounts`) and is reloaded every CATALOG_REFRESH_INTERVAL, so routing an order
// costs a map lookup, never a query.
package tradeaccounts

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/orderpipe/orderpipe/internal/refresh"
)

// Loader reads the customer ids of every trade account.
type Loader func(ctx context.Context) ([]string, error)

// Set is the current set of trade accounts, safe for concurrent use.
type Set struct {
	load Loader
	ids  atomic.Pointer[map[string]struct{}]
}

// New makes an empty set; call Refresh before serving.
func New(load Loader) *Set {
	s := &Set{load: load}
	empty := map[string]struct{}{}
	s.ids.Store(&empty)
	return s
}

// Refresh replaces the set with what load returns.
func (s *Set) Refresh(ctx context.Context) error {
	ids, err := s.load(ctx)
	if err != nil {
		return fmt.Errorf("load trade accounts: %w", err)
	}
	m := make(map[string]struct{}, len(ids))
	for _, id := range ids {
		m[id] = struct{}{}
	}
	s.ids.Store(&m)
	return nil
}

// Run refreshes the set every interval until ctx ends. A failed refresh keeps the last good set
// (routing goes on through a database blip) and is reported to onErr.
func (s *Set) Run(ctx context.Context, every time.Duration, onErr func(error)) error {
	return refresh.Every(ctx, every, s.Refresh, onErr)
}

// Trade reports whether customerID has a trade account.
func (s *Set) Trade(customerID string) bool {
	_, ok := (*s.ids.Load())[customerID]
	return ok
}

// Len is the number of trade accounts.
func (s *Set) Len() int { return len(*s.ids.Load()) }

// Package warehouses is the api's in-memory registry of the warehouses that may post stock
// events to the webhook bridge (POST /v1/warehouse/stock), each with its webhook secret. The
// registry lives in Postgres (the warehouses table, managed with `orderctl warehouses`) and is
// reloaded every CATALOG_REFRESH_INTERVAL, like API keys and trade accounts: checking a request's
// warehouse costs a map lookup, never a query, so a flood of posts for unknown warehouses costs
// the database nothing.
package warehouses

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/orderpipe/orderpipe/internal/refresh"
)

// Warehouse is one registered warehouse. A nil Secret means it posts unsigned.
type Warehouse struct {
	ID     string
	Secret []byte
}

// Loader reads every registered warehouse.
type Loader func(ctx context.Context) ([]Warehouse, error)

// Registry is the current set of registered warehouses, safe for concurrent use.
type Registry struct {
	load Loader
	m    atomic.Pointer[map[string]Warehouse]
}

// New makes an empty registry; call Refresh before serving.
func New(load Loader) *Registry {
	r := &Registry{load: load}
	empty := map[string]Warehouse{}
	r.m.Store(&empty)
	return r
}

// Refresh replaces the registry with what load returns.
func (r *Registry) Refresh(ctx context.Context) error {
	ws, err := r.load(ctx)
	if err != nil {
		return fmt.Errorf("load warehouses: %w", err)
	}
	m := make(map[string]Warehouse, len(ws))
	for _, w := range ws {
		m[w.ID] = w
	}
	r.m.Store(&m)
	return nil
}

// Run refreshes the registry every interval until ctx ends. A failed refresh keeps the last good
// set (the webhook goes on through a database blip) and is reported to onErr.
func (r *Registry) Run(ctx context.Context, every time.Duration, onErr func(error)) error {
	return refresh.Every(ctx, every, r.Refresh, onErr)
}

// Secret returns the webhook secret of a warehouse: found is false when it is not registered,
// secret is nil when it posts unsigned.
func (r *Registry) Secret(id string) (secret []byte, found bool) {
	w, ok := (*r.m.Load())[id]
	return w.Secret, ok
}

// Len is the number of registered warehouses.
func (r *Registry) Len() int { return len(*r.m.Load()) }

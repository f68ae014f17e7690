package loadgen

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/orderpipe/orderpipe/internal/postgres"
	"github.com/orderpipe/orderpipe/internal/redisstore"
)

// Seed writes the scenario's catalog and stock: every product is upserted in Postgres, and each
// SKU's on_hand is set so that exactly its scenario stock is free (on_hand = allocated + stock;
// units of earlier orders stay allocated). Redis availability is then set to the free units
// minus the SKU's live holds, so ATP + held = on_hand - allocated (I4) holds from the start.
// Like `orderctl seed`, it sets on_hand by hand; run it before the load, not during one.
func Seed(ctx context.Context, pool *pgxpool.Pool, store *redisstore.Store, s *Scenario) error {
	products := s.Products()
	rows := make([]postgres.Product, len(products))
	skus := make([]string, len(products))
	for i, p := range products {
		rows[i], skus[i] = p.Product, p.SKU
	}
	if _, err := postgres.NewCatalogStore(pool).UpsertMany(ctx, rows); err != nil {
		return fmt.Errorf("seed scenario %s: %w", s.Name, err)
	}
	stock := postgres.NewStockStore(pool)
	levels, err := stock.All(ctx)
	if err != nil {
		return fmt.Errorf("seed scenario %s: %w", s.Name, err)
	}
	allocated := map[string]int64{}
	for _, l := range levels {
		allocated[l.SKU] = l.Allocated
	}
	for _, p := range products {
		if err := stock.Set(ctx, p.SKU, allocated[p.SKU]+p.Stock); err != nil {
			return fmt.Errorf("seed scenario %s: %w", s.Name, err)
		}
	}
	obs, err := store.ObserveStock(ctx, skus)
	if err != nil {
		return fmt.Errorf("seed scenario %s: %w", s.Name, err)
	}
	for _, p := range products {
		if err := store.SetStock(ctx, p.SKU, p.Stock-obs[p.SKU].Held); err != nil {
			return fmt.Errorf("seed scenario %s: redis availability of %s: %w", s.Name, p.SKU, err)
		}
	}
	return nil
}

// WaitCatalog waits until the api at t serves every SKU of s from its catalog cache (the api
// reloads its catalog every CATALOG_REFRESH_INTERVAL), so no buyer of a freshly seeded SKU is
// refused as invalid. It gives up after within.
func WaitCatalog(ctx context.Context, t Target, s *Scenario, within time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	client := &http.Client{Timeout: 5 * time.Second}
	base := strings.TrimRight(t.BaseURL, "/")
	for _, p := range s.Products() {
		for {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/products/"+p.SKU, nil)
			if err != nil {
				return fmt.Errorf("wait for catalog: %w", err)
			}
			resp, err := client.Do(req)
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("wait for catalog: the api at %s does not serve %s after %s (status %v, %v)", base, p.SKU, within, statusOf(resp), err)
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
	return nil
}

func statusOf(resp *http.Response) any {
	if resp == nil {
		return "none"
	}
	return resp.StatusCode
}

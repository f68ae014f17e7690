package orderctl

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"

	"github.com/orderpipe/orderpipe/internal/demo"
	"github.com/orderpipe/orderpipe/internal/postgres"
	"github.com/orderpipe/orderpipe/internal/redisstore"
)

func (e *env) seedCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "seed",
		Short: "Load the demo auto-parts catalog and stock (only what is missing; never overwrites)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			pool, err := e.pool(cmd.Context())
			if err != nil {
				return err
			}
			defer pool.Close()
			return e.seed(cmd.Context(), pool)
		},
	}
}

// seed loads the demo catalog when the catalog is empty, gives every SKU without a stock row its
// demo stock, and loads Redis availability (on_hand - allocated) for SKUs Redis does not know.
func (e *env) seed(ctx context.Context, pool *pgxpool.Pool) error {
	cat := postgres.NewCatalogStore(pool)
	existing, err := cat.All(ctx)
	if err != nil {
		return err
	}
	if len(existing) == 0 {
		var rows []postgres.Product
		for _, p := range demo.Catalog() {
			rows = append(rows, postgres.Product{SKU: p.SKU, Name: p.Name, Category: p.Category, Brand: p.Brand, PriceMinor: p.PriceMinor, Currency: demo.Currency, Active: true})
		}
		n, err := cat.UpsertMany(ctx, rows)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "catalog: loaded %d demo products\n", n)
	} else {
		fmt.Fprintf(e.stdout, "catalog: %d products already present, left unchanged\n", len(existing))
	}
	stock := postgres.NewStockStore(pool)
	levels := demo.StockLevels()
	for _, p := range existing {
		if _, ok := levels[p.SKU]; !ok {
			levels[p.SKU] = 0
		}
	}
	n, err := stock.SeedMissing(ctx, levels)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "stock: %d SKUs given demo stock\n", n)

	rows, err := stock.All(ctx)
	if err != nil {
		return err
	}
	atp := make(map[string]int64, len(rows))
	for _, r := range rows {
		atp[r.SKU] = r.OnHand - r.Allocated
	}
	rdb := redisstore.NewClient(e.cfg.Redis)
	defer rdb.Close()
	created, err := redisstore.New(rdb, e.cfg.RedisKeyPrefix).SeedStock(ctx, atp)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "redis: availability loaded for %d SKUs (%d already present)\n", created, len(atp)-created)
	return nil
}

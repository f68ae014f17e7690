package orderctl

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/orderpipe/orderpipe/internal/auth"
	"github.com/orderpipe/orderpipe/internal/loadgen"
	"github.com/orderpipe/orderpipe/internal/redisstore"
)

func (e *env) loadCmd() *cobra.Command {
	var scenario, api, token, catalogToken, out string
	var seedData bool
	cmd := &cobra.Command{
		Use:   "load --scenario FILE --token T [--api URL] [--seed-data] [--catalog-token T] [--out outcomes.json]",
		Short: "Play a load scenario (scenarios/*.yaml) against a running api and record every outcome",
		Long: "Drives an open-model load (vegeta) through POST /v1/orders as the scenario file describes:\n" +
			"arrival phases, hot SKUs and Zipf-like background, express share, payment tokens, duplicate\n" +
			"submissions with the same Idempotency-Key and browser-like retries after 429/503. Prints one\n" +
			"progress line per second and a summary table, and writes every outcome as JSON to --out for\n" +
			"`orderctl check`. With --seed-data the scenario's catalog and stock are written to Postgres and\n" +
			"Redis first (DATABASE_URL, REDIS_*), and the run waits until the api serves them.\n" +
			"The scenario's promotions are created through POST /v1/promotions with --catalog-token (an API\n" +
			"key with catalog:write; with --seed-data and no --catalog-token one is created in Postgres),\n" +
			"and the run waits until the api prices orders with them. A promotion id that exists already is\n" +
			"updated with PATCH to the scenario's definition and window; its sales so far still count\n" +
			"against its cap and limits.\n" +
			"Stops early on SIGINT/SIGTERM, still writing what was recorded. See docs/e2e.md.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if scenario == "" {
				return usageErr("--scenario is required")
			}
			if token == "" {
				return usageErr("--token is required (an API key with orders:write)")
			}
			if u, err := url.Parse(api); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return usageErr("--api: want http(s)://host:port, got %q", api)
			}
			s, err := loadgen.LoadScenario(scenario)
			if err != nil {
				return usageErr("%v", err)
			}
			if len(s.Promotions) > 0 && catalogToken == "" && !seedData {
				return usageErr("--catalog-token is required: scenario %s has promotions (an API key with catalog:write), or give --seed-data to create one", s.Name)
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			target := loadgen.Target{BaseURL: api, Token: token}
			if seedData {
				pool, err := e.pool(ctx)
				if err != nil {
					return err
				}
				rdb := redisstore.NewClient(e.cfg.Redis)
				err = loadgen.Seed(ctx, pool, redisstore.New(rdb, e.cfg.RedisKeyPrefix), s)
				pool.Close()
				rdb.Close()
				if err != nil {
					return err
				}
				fmt.Fprintf(e.stdout, "seeded %d products of scenario %s; waiting for the api's catalog\n", len(s.Products()), s.Name)
				if err := loadgen.WaitCatalog(ctx, target, s, 60*time.Second); err != nil {
					return err
				}
				if len(s.Promotions) > 0 && catalogToken == "" {
					if catalogToken, err = e.createKey(ctx, "orderctl-load-"+s.Name, []string{auth.ScopeCatalogWrite}); err != nil {
						return fmt.Errorf("create a catalog:write key for the promotions: %w", err)
					}
				}
			}
			if err := loadgen.SetUpPromotions(ctx, api, catalogToken, s, 60*time.Second, e.stdout); err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "scenario %s: %d buyers over %s against %s\n", s.Name, s.ExpectedBuyers(), s.Length(), api)
			res, runErr := loadgen.Run(ctx, s, target, loadgen.Options{Progress: e.stdout})
			if res == nil {
				return runErr
			}
			if out != "" {
				if err := writeOutcomes(out, res); err != nil {
					return errors.Join(runErr, err)
				}
				fmt.Fprintf(e.stdout, "outcomes written to %s (check them with: orderctl check --outcomes %s)\n", out, out)
			}
			if err := res.WriteSummary(e.stdout); err != nil {
				return err
			}
			return runErr
		},
	}
	f := cmd.Flags()
	f.StringVar(&scenario, "scenario", "", "scenario file (YAML), for example scenarios/flash-sale.yaml")
	f.StringVar(&api, "api", "http://127.0.0.1:8080", "base URL of the api")
	f.StringVar(&token, "token", "", "API key with orders:write (make run prints one)")
	f.BoolVar(&seedData, "seed-data", false, "write the scenario's catalog and stock to Postgres and Redis first")
	f.StringVar(&catalogToken, "catalog-token", "", "API key with catalog:write, for the scenario's promotions (created with --seed-data when absent)")
	f.StringVar(&out, "out", "outcomes.json", "file the outcomes are written to (JSON); empty writes none")
	return cmd
}

func writeOutcomes(path string, res *loadgen.Result) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("outcomes: %w", err)
	}
	if err := res.WriteJSON(f); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("outcomes: %w", err)
	}
	return nil
}

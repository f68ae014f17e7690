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

	"github.com/orderpipe/orderpipe/internal/loadgen"
	"github.com/orderpipe/orderpipe/internal/redisstore"
)

func (e *env) loadCmd() *cobra.Command {
	var scenario, api, token, out string
	var seedData bool
	cmd := &cobra.Command{
		Use:   "load --scenario FILE --token T [--api URL] [--seed-data] [--out outcomes.json]",
		Short: "Play a load scenario (scenarios/*.yaml) against a running api and record every outcome",
		Long: "Drives an open-model load (vegeta) through POST /v1/orders as the scenario file describes:\n" +
			"arrival phases, hot SKUs and Zipf-like background, express share, payment tokens, duplicate\n" +
			"submissions with the same Idempotency-Key and browser-like retries after 429/503. Prints one\n" +
			"progress line per second and a summary table, and writes every outcome as JSON to --out for\n" +
			"`orderctl check`. With --seed-data the scenario's catalog and stock are written to Postgres and\n" +
			"Redis first (DATABASE_URL, REDIS_*), and the run waits until the api serves them.\n" +
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

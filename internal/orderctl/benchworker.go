package orderctl

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/orderpipe/orderpipe/internal/bench"
	"github.com/orderpipe/orderpipe/internal/workerbench"
)

// benchWorkerCmd is `orderctl bench worker`.
func (e *env) benchWorkerCmd() *cobra.Command {
	var (
		out        string
		orders     int
		batch      int
		perMessage time.Duration
	)
	cmd := &cobra.Command{
		Use:   "worker",
		Short: "Benchmark order-worker: batch transactions vs one transaction per message, and a replay",
		Long: "Pre-fills an in-process broker with valid OrderPlaced records and runs the real order-worker over them\n" +
			"three times: with batches (ORDER_WORKER_BATCH_SIZE), with one Postgres transaction per message, and as a\n" +
			"replay of the processed range (every record a duplicate). Needs Postgres (DATABASE_URL; temporary\n" +
			"schemas) and Redis (REDIS_ADDRS; a temporary key prefix). Writes the section between\n" +
			"<!-- worker:begin --> and <!-- worker:end --> of --out, keeping the rest of the file.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if orders < 100 || batch < 1 || perMessage < time.Second {
				return usageErr("want --orders >= 100, --batch >= 1 and --per-message >= 1s")
			}
			ctx := cmd.Context()
			if err := createDatabase(ctx, e.cfg.DatabaseURL); err != nil {
				return err
			}
			rep, err := workerbench.Run(ctx, workerbench.Config{
				DatabaseURL: e.cfg.DatabaseURL, RedisAddr: e.cfg.RedisAddrs[0], Orders: orders, BatchSize: batch,
				PerMessage: perMessage, Log: e.stdout,
			})
			if err != nil {
				return err
			}
			command := strings.TrimSpace("orderctl bench worker " + strings.Join(flagArgs(cmd), " "))
			section := "<!-- worker:begin -->\n" + rep.Markdown(command) + "<!-- worker:end -->\n"
			if out == "" || out == "-" {
				fmt.Fprint(e.stdout, section)
				return nil
			}
			if err := bench.WriteNamedSection(out, "worker", section); err != nil {
				return err
			}
			fmt.Fprintln(e.stdout, "wrote", out)
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "docs/benchmarks.md", "Markdown file to write the worker section into (- prints it)")
	cmd.Flags().IntVar(&orders, "orders", 20000, "OrderPlaced records for the batch and replay arms")
	cmd.Flags().IntVar(&batch, "batch", 500, "ORDER_WORKER_BATCH_SIZE of the batch arm")
	cmd.Flags().DurationVar(&perMessage, "per-message", 20*time.Second, "how long the one-transaction-per-message arm runs")
	return cmd
}

package orderctl

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/orderpipe/orderpipe/internal/bench"
)

func (e *env) benchCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "bench", Short: "Run benchmarks and write their results to docs/benchmarks.md"}
	var (
		out        string
		duration   time.Duration
		rate       int
		workers    int
		cpuProfile string
		tracePath  string
	)
	intake := &cobra.Command{
		Use:   "intake",
		Short: "Benchmark POST /v1/orders against a bare Echo handler and the naive Postgres design",
		Long: "Runs three arms one after the other on this machine, each an HTTP server on loopback driven by the\n" +
			"same open-model load generator: a bare Echo handler (the HTTP ceiling), the naive design (one Postgres\n" +
			"transaction per order locking one hot SKU row) and the full intake (the real api in this process, with\n" +
			"an in-process kfake broker). Each arm gets a closed-loop run, a search for its saturation (the highest\n" +
			"open-model rate it sustains) and an open-model run at 80% of it; stock is checked for oversell after\n" +
			"each stocked arm, and the process is CPU-profiled during the intake's closed-loop and open-model runs.\n" +
			"Needs Postgres (DATABASE_URL; two temporary schemas) and one Redis node (REDIS_ADDRS; a temporary key\n" +
			"prefix). Writes the section between <!-- intake:begin --> and <!-- intake:end --> of --out, keeping the\n" +
			"rest of the file. Exits 1 if a stock check failed (the report is still written).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if duration < time.Second {
				return usageErr("--duration: want at least 1s, got %s", duration)
			}
			if rate < 0 || workers < 1 {
				return usageErr("--rate must be 0 or more and --workers at least 1")
			}
			ctx := cmd.Context()
			if err := createDatabase(ctx, e.cfg.DatabaseURL); err != nil {
				return err
			}
			command := "orderctl bench intake " + strings.Join(flagArgs(cmd), " ")
			rep, err := bench.Run(ctx, bench.Config{
				DatabaseURL: e.cfg.DatabaseURL,
				Redis:       e.cfg.Redis,
				Duration:    duration,
				Rate:        rate,
				Workers:     workers,
				CPUProfile:  cpuProfile,
				Trace:       tracePath,
				Command:     strings.TrimSpace(command),
				Progress:    e.stdout,
			})
			if rep == nil {
				return err
			}
			if out == "" || out == "-" {
				fmt.Fprint(e.stdout, rep.Markdown())
			} else {
				if werr := bench.WriteNamedSection(out, bench.SectionName, rep.Markdown()); werr != nil {
					return errors.Join(err, werr)
				}
				fmt.Fprintln(e.stdout, "wrote", out)
			}
			return err
		},
	}
	intake.Flags().StringVar(&out, "out", "docs/benchmarks.md", "Markdown file to write the intake section into (- prints it)")
	intake.Flags().DurationVar(&duration, "duration", 10*time.Second, "length of the closed-loop and open-model runs of each arm (each search step takes 30% of it)")
	intake.Flags().IntVar(&rate, "rate", 0, "open-model arrival rate in orders/s for every arm (0: 80% of each arm's saturation)")
	intake.Flags().IntVar(&workers, "workers", 64, "requests kept in flight by the closed-loop runs")
	intake.Flags().StringVar(&cpuProfile, "cpuprofile", "", "keep the CPU profile of the intake's closed-loop run at this path")
	intake.Flags().StringVar(&tracePath, "trace", "", "write an execution trace (go tool trace) of the full intake's open-model run to this path")
	cmd.AddCommand(intake, e.benchWorkerCmd(), e.benchE2ECmd())
	cmd.AddCommand(e.benchOpsCmd())
	cmd.AddCommand(e.benchPromoCmd())
	cmd.AddCommand(e.benchTimelineCmd())
	return cmd
}

// benchTimelineCmd drives the full intake at one fixed rate and shows where its slow requests
// are in time: for finding out whether a p99 is a slow service or a few stalls.
func (e *env) benchTimelineCmd() *cobra.Command {
	var (
		rate         int
		runs         int
		duration     time.Duration
		window, slow time.Duration
	)
	cmd := &cobra.Command{
		Use:   "timeline",
		Short: "Drive the full intake at one open-model rate and show when its slow requests were sent",
		Long: "Starts the full intake as `orderctl bench intake` does (the real api in this process, an in-process\n" +
			"kfake broker, a temporary Postgres schema and Redis key prefix), warms it up, and runs --runs open-model\n" +
			"runs of --duration at --rate orders/s. For each run it prints p50/p99/p99.9 and every --window (by send\n" +
			"time) that had requests slower than --slow. Stalls show as windows in which nearly every request is\n" +
			"slow, the worst first, the backlog draining after them; a uniformly slow service shows as slow\n" +
			"requests spread over every window. Writes nothing to docs.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if rate < 1 || runs < 1 || duration < time.Second || window <= 0 || slow <= 0 {
				return usageErr("want --rate and --runs at least 1, --duration at least 1s, --window and --slow positive")
			}
			ctx := cmd.Context()
			if err := createDatabase(ctx, e.cfg.DatabaseURL); err != nil {
				return err
			}
			cfg := bench.TimelineConfig{
				Config: bench.Config{
					DatabaseURL: e.cfg.DatabaseURL, Redis: e.cfg.Redis, Duration: duration, Rate: rate, Progress: e.stdout,
				},
				Runs: runs, Window: window, Slow: slow,
			}
			res, err := bench.RunTimeline(ctx, cfg)
			bench.WriteTimeline(e.stdout, cfg, res)
			return err
		},
	}
	cmd.Flags().IntVar(&rate, "rate", 0, "open-model arrival rate in orders/s (required)")
	cmd.Flags().IntVar(&runs, "runs", 3, "runs at that rate, one after the other")
	cmd.Flags().DurationVar(&duration, "duration", 10*time.Second, "length of each run")
	cmd.Flags().DurationVar(&window, "window", 50*time.Millisecond, "length of a timeline window")
	cmd.Flags().DurationVar(&slow, "slow", 20*time.Millisecond, "a request slower than this is slow")
	return cmd
}

// flagArgs renders the flags the user set, for the report's command line.
func flagArgs(cmd *cobra.Command) []string {
	var args []string
	cmd.Flags().Visit(func(f *pflag.Flag) {
		args = append(args, "--"+f.Name+" "+f.Value.String())
	})
	return args
}

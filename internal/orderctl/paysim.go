package orderctl

import (
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/orderpipe/orderpipe/internal/paysim"
)

func (e *env) paysimCmd() *cobra.Command {
	var addr string
	var cfg paysim.Config
	cmd := &cobra.Command{
		Use:   "paysim",
		Short: "Run the payment-provider simulator (HTTP) for local development and load tests",
		Long: "Serves a fake payment provider over real HTTP: charges and refunds idempotent by the\n" +
			"Idempotency-Key header, with latency, random declines and transient faults. Special tokens\n" +
			"(tok_decline, tok_insufficient, tok_expired, tok_fail, tok_hang, tok_slow, tok_lost) force a\n" +
			"behaviour. GET /v1/stats counts captures, declines, refunds and suppressed duplicates;\n" +
			"POST /v1/admin/outage {\"down\":true} simulates an outage. Stops on SIGINT/SIGTERM.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := cfg.Validate(); err != nil {
				return usageErr("paysim: %v", err)
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return paysim.New(cfg).Run(ctx, addr, e.stdout)
		},
	}
	f := cmd.Flags()
	f.StringVar(&addr, "addr", "127.0.0.1:8090", "listen address (PAYMENT_URL of the workers points here)")
	f.DurationVar(&cfg.Latency, "latency", 80*time.Millisecond, "base latency of every charge and refund")
	f.DurationVar(&cfg.LatencyJitter, "jitter", 40*time.Millisecond, "uniform extra latency, 0 up to this")
	f.Float64Var(&cfg.DeclineRate, "decline-rate", 0.03, "share of ordinary tokens declined (0..1)")
	f.Float64Var(&cfg.FaultRate, "fault-rate", 0.01, "share of attempts failing transiently: 503, 500 or a dropped connection (0..1)")
	f.Int64Var(&cfg.Seed, "seed", 1, "seed of the decline and fault decisions (same seed and order ids, same outcomes)")
	return cmd
}

package orderctl

import (
	"fmt"
	"net/url"
	"os"

	"github.com/spf13/cobra"

	"github.com/orderpipe/orderpipe/internal/checker"
	"github.com/orderpipe/orderpipe/internal/config"
	"github.com/orderpipe/orderpipe/internal/loadgen"
	"github.com/orderpipe/orderpipe/internal/redisstore"
)

// CheckSources are the third-party fakes `orderctl check` reads besides Postgres, Redis and Kafka.
type CheckSources struct {
	PaymentURL string `env:"PAYMENT_URL" envDefault:"http://127.0.0.1:8090" help:"base URL of the payment provider simulator (orderctl check reads its charges)"`
	MailURL    string `env:"MAIL_URL" envDefault:"http://127.0.0.1:8025" help:"base URL of the e-mail sink's HTTP API (orderctl check reads its messages)"`
}

// Validate checks the URLs.
func (c *CheckSources) Validate() error {
	for _, v := range []struct{ name, value string }{{"PAYMENT_URL", c.PaymentURL}, {"MAIL_URL", c.MailURL}} {
		u, err := url.Parse(v.value)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return config.Errorf(v.name, "want an http:// or https:// URL with a host, got %q", v.value)
		}
	}
	return nil
}

func (e *env) checkCmd() *cobra.Command {
	var outcomes, output string
	cmd := &cobra.Command{
		Use:   "check --outcomes outcomes.json [--output table|json]",
		Short: "Check invariants I1-I7 and the promotion check P1 after a load run has settled (exit code 1 when one is broken)",
		Long: "Reads Postgres (DATABASE_URL), Redis (REDIS_*), the topics (KAFKA_BROKERS), the payment\n" +
			"simulator (PAYMENT_URL) and the e-mail sink (MAIL_URL), compares them with the outcomes\n" +
			"`orderctl load` recorded, and reports each invariant as holding or broken with its evidence,\n" +
			"the promotions' caps, per-customer limits and prices (P1), plus undersell. Run it after the\n" +
			"pipeline has settled (lag 0, no pending orders).\n" +
			"Exit code 0 when every invariant holds, 1 when one is broken or a source cannot be read,\n" +
			"2 for bad arguments. See docs/e2e.md.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if outcomes == "" {
				return usageErr("--outcomes is required (the file orderctl load wrote)")
			}
			if err := checkOutput(output); err != nil {
				return err
			}
			f, err := os.Open(outcomes)
			if err != nil {
				return usageErr("--outcomes: %v", err)
			}
			res, err := loadgen.ReadResult(f)
			f.Close()
			if err != nil {
				return usageErr("--outcomes %s: %v", outcomes, err)
			}
			ctx := cmd.Context()
			pool, err := e.pool(ctx)
			if err != nil {
				return err
			}
			defer pool.Close()
			rdb := redisstore.NewClient(e.cfg.Redis)
			defer rdb.Close()
			rep, err := checker.Check(ctx, checker.Sources{Pool: pool, Redis: rdb, Prefix: e.cfg.RedisKeyPrefix,
				Brokers: e.cfg.KafkaBrokers, PaymentURL: e.cfg.PaymentURL, MailURL: e.cfg.MailURL, Result: res})
			if err != nil {
				return err
			}
			if output == "json" {
				if err := writeJSON(e.stdout, rep); err != nil {
					return err
				}
			} else {
				fmt.Fprint(e.stdout, rep.Markdown())
			}
			if !rep.OK() {
				return &exitError{code: ExitError, err: fmt.Errorf("check: %d invariant(s) broken", rep.Summary["invariants_broken"])}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&outcomes, "outcomes", "", "outcomes file written by orderctl load")
	cmd.Flags().StringVar(&output, "output", "table", "table (Markdown) or json")
	return cmd
}

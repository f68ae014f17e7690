package orderctl

import (
	"fmt"
	"io"
	"log/slog"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/orderpipe/orderpipe/internal/event"
	"github.com/orderpipe/orderpipe/internal/reconcile"
	"github.com/orderpipe/orderpipe/internal/redisstore"
	"github.com/orderpipe/orderpipe/internal/topology"
)

func (e *env) reconcileCmd() *cobra.Command {
	var repair bool
	var output, group string
	var settle time.Duration
	cmd := &cobra.Command{
		Use:   "reconcile [--repair] [--output table|json]",
		Short: "Compare Redis availability with Postgres stock for every SKU; --repair fixes drift and rebuilds lost SKUs",
		Long: "Compares, for every SKU with stock in Postgres, Redis ATP + held with Postgres on_hand - allocated\n" +
			"(invariant I4) and prints every SKU that differs. With --repair it rebuilds the SKUs Redis lost\n" +
			"(with the holds of the orders still in flight, read from the order topics beyond the order-worker\n" +
			"group's committed offsets, its retry topics and its dead-letter topic), repairs drift that stays\n" +
			"still for --settle, and compares again. Safe while the pipeline runs and with several copies.\n" +
			"Exit code 3 when drift was found and is still there (not repaired, or moving while observed).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			ctx := cmd.Context()
			pool, err := e.pool(ctx)
			if err != nil {
				return err
			}
			defer pool.Close()
			rdb := redisstore.NewClient(e.cfg.Redis)
			defer rdb.Close()
			v, err := event.NewValidator()
			if err != nil {
				return fmt.Errorf("load event schemas: %w", err)
			}
			rec := reconcile.New(reconcile.Settings{ReconcileSettle: settle}, reconcile.Deps{
				Pool: pool, Store: redisstore.New(rdb, e.cfg.RedisKeyPrefix), Brokers: e.cfg.KafkaBrokers,
				ClientID: e.cfg.KafkaClientID + "-orderctl", Group: group, Validator: v,
				Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
			})
			var res reconcile.Result
			if repair {
				res, err = rec.Repair(ctx)
			} else {
				res.Before, err = rec.Check(ctx)
				res.After = res.Before
			}
			if err != nil && res.Before.At.IsZero() {
				return err
			}
			if output == "json" {
				if err := writeJSON(e.stdout, res); err != nil {
					return err
				}
			} else if err := e.printReconcile(res, repair); err != nil {
				return err
			}
			if err != nil {
				return err
			}
			if !res.After.Clean() {
				hint := " (run with --repair to fix it)"
				if repair {
					hint = " (still there after the repair: an update was in flight, or Postgres and Redis disagree on a SKU it could not lock; run again)"
				}
				return &exitError{code: ExitDiff, err: fmt.Errorf("%d SKUs differ between Redis and Postgres%s", len(res.After.Off), hint)}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&repair, "repair", false, "rebuild lost SKUs and repair stable drift")
	cmd.Flags().StringVar(&output, "output", "table", "table or json")
	cmd.Flags().DurationVar(&settle, "settle", 2*time.Second, "with --repair: observe drifting SKUs again after this delay and repair only those that did not move")
	cmd.Flags().StringVar(&group, "group", topology.GroupOrderWorker, "order-worker consumer group whose committed offsets bound the journal of in-flight orders")
	return cmd
}

func (e *env) printReconcile(res reconcile.Result, repair bool) error {
	tw := tabwriter.NewWriter(e.stdout, 2, 4, 2, ' ', 0)
	table := func(title string, r reconcile.Report) {
		// Drift is counted over the SKUs Redis has counters for; a missing SKU has no drift but
		// its free units go unoffered, and the table shows it that way too.
		var unoffered int64
		for _, s := range r.Off {
			if s.Missing {
				unoffered -= s.Drift
			}
		}
		fmt.Fprintf(tw, "%s: %d SKUs compared, %d differ: %d with counters off by |drift| %d, %d missing in redis (%d free units not offered)\n",
			title, r.SKUs, len(r.Off), len(r.Off)-r.Missing, r.AbsDrift, r.Missing, unoffered)
		if len(r.Off) == 0 {
			return
		}
		fmt.Fprintln(tw, "SKU\tON_HAND\tALLOCATED\tATP\tHELD\tHELD_LIVE\tDRIFT\tSTATE")
		for _, s := range r.Off {
			state := "drift"
			switch {
			case s.Missing:
				state = "missing in redis"
			case s.Drift == 0:
				state = "held != holds"
			case s.Drift > 0:
				state = "over-promised"
			default:
				state = "under-promised"
			}
			if s.Missing {
				fmt.Fprintf(tw, "%s\t%d\t%d\t-\t-\t%d\t-\t%s (%d free)\n", s.SKU, s.OnHand, s.Allocated, s.HeldLive, state, -s.Drift)
				continue
			}
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%+d\t%s\n", s.SKU, s.OnHand, s.Allocated, s.ATP, s.Held, s.HeldLive, s.Drift, state)
		}
	}
	table("before", res.Before)
	if repair {
		for _, r := range res.Rebuilt {
			fmt.Fprintf(tw, "rebuilt %s: atp %d, held %d (%d holds given back, %d ended as expired)\n", r.SKU, r.ATP, r.Held, r.Holds, r.Expired)
		}
		if j := res.Journal; j != nil {
			fmt.Fprintf(tw, "journal: %d records, %d orders in flight (%d dead-lettered), %d already decided, %d holds given back, %d released\n",
				j.Records, j.Orders, j.DeadLetter, j.Decided, j.Held, j.Released)
		}
		for _, r := range res.Repaired {
			fmt.Fprintf(tw, "repaired %s: atp %d -> %d, held %d -> %d\n", r.SKU, r.ATPBefore, r.ATP, r.HeldBefore, r.Held)
		}
		for _, sku := range res.Unsettled {
			fmt.Fprintf(tw, "left %s: it moved while observed (an update in flight)\n", sku)
		}
		table("after", res.After)
	}
	return tw.Flush()
}

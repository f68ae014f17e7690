package orderctl

import (
	"fmt"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"
	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderpipe/orderpipe/internal/event"
	"github.com/orderpipe/orderpipe/internal/postgres"
)

// UndecidedOrder is an accepted order without a decision, as `orders undecided --output json`
// prints it.
type UndecidedOrder struct {
	OrderID   string    `json:"order_id"`
	Topic     string    `json:"topic"`
	Partition int32     `json:"partition"`
	Offset    int64     `json:"offset"`
	PlacedAt  time.Time `json:"placed_at"` // the record's time
	// DeadLetter is the class of its dead letter when order-worker parked it ("" if none).
	DeadLetter string `json:"dead_letter,omitempty"`
}

func (e *env) ordersCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "orders",
		Short: "Check accepted orders against their decisions",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usageErr("orders: want a subcommand: undecided")
		},
	}
	cmd.AddCommand(e.ordersUndecidedCmd())
	return cmd
}

func (e *env) ordersUndecidedCmd() *cobra.Command {
	var output string
	var since, settle time.Duration
	cmd := &cobra.Command{
		Use:   "undecided [--since D] [--settle D] [--output table|json]",
		Short: "List accepted orders (OrderPlaced records in the placed topics) that Postgres has not decided",
		Long: "Reads every OrderPlaced record of orders.placed and orders.placed.priority (without joining\n" +
			"a group) and looks each order id up in Postgres, where an orders row is written only when\n" +
			"order-worker decides the order (confirmed or cancelled). Prints each accepted order without\n" +
			"a row, where its record is, and whether order-worker dead-lettered it. Orders placed within\n" +
			"--settle before now are not counted (they may still be on their way).\n\n" +
			"Exit codes: 0 every accepted order is decided, 3 some are not, 1 failed, 2 bad usage.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			if since < 0 || settle < 0 {
				return usageErr("--since and --settle: want a positive duration")
			}
			ctx := cmd.Context()
			now := time.Now()
			placed := map[string]UndecidedOrder{}
			records, skipped := 0, 0
			for _, topic := range []string{event.TopicOrdersPlacedPriority, event.TopicOrdersPlaced} {
				entries, err := e.readDLQ(ctx, topic, nil)
				if err != nil {
					return err
				}
				for _, x := range entries {
					r := x.rec
					if since > 0 && r.Timestamp.Before(now.Add(-since)) {
						continue
					}
					records++
					id, err := uuid.ParseBytes(r.Key)
					if headerOf(r.Headers, event.HeaderType) != event.TypeOrderPlaced || err != nil {
						skipped++
						continue
					}
					if _, ok := placed[id.String()]; !ok && (settle == 0 || r.Timestamp.Before(now.Add(-settle))) {
						placed[id.String()] = UndecidedOrder{OrderID: id.String(), Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, PlacedAt: r.Timestamp.UTC()}
					}
				}
			}
			pool, err := e.pool(ctx)
			if err != nil {
				return err
			}
			defer pool.Close()
			ids := make([]string, 0, len(placed))
			for id := range placed {
				ids = append(ids, id)
			}
			decided, err := postgres.NewDeadLetterLedger(pool).OrderStatuses(ctx, ids)
			if err != nil {
				return err
			}
			undecided := []UndecidedOrder{}
			for id, o := range placed {
				if _, ok := decided[id]; ok {
					continue
				}
				if d, ok, err := postgres.NewProcessingStore(pool).DeadLetterOf(ctx, id); err != nil {
					return err
				} else if ok {
					o.DeadLetter = d.ErrorClass
				}
				undecided = append(undecided, o)
			}
			sort.Slice(undecided, func(i, j int) bool { return undecided[i].PlacedAt.Before(undecided[j].PlacedAt) })
			if output == "json" {
				if err := writeJSON(e.stdout, undecided); err != nil {
					return err
				}
			} else {
				tw := tabwriter.NewWriter(e.stdout, 2, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ORDER_ID\tPLACED\tRECORD\tDEAD_LETTER")
				for _, o := range undecided {
					dl := o.DeadLetter
					if dl == "" {
						dl = "-"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s/%d@%d\t%s\n", o.OrderID, o.PlacedAt.Format(time.RFC3339), o.Topic, o.Partition, o.Offset, dl)
				}
				fmt.Fprintf(tw, "%d accepted orders, %d decided, %d undecided (%d other records)\n", len(placed), len(placed)-len(undecided), len(undecided), skipped)
				if err := tw.Flush(); err != nil {
					return err
				}
			}
			if len(undecided) > 0 {
				return &exitError{code: ExitDiff, err: fmt.Errorf("%d accepted orders are not decided: a lagging or stopped order-worker (orderctl lag), or dead letters (orderctl dlq list --group order-worker)", len(undecided))}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&output, "output", "table", "table or json")
	cmd.Flags().DurationVar(&since, "since", 0, "only orders placed within this duration before now (default: every retained record)")
	cmd.Flags().DurationVar(&settle, "settle", 0, "leave out orders placed within this duration before now")
	return cmd
}

func headerOf(hs []kgo.RecordHeader, key string) string {
	for _, h := range hs {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

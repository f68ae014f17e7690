package notifier

import (
	"context"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderpipe/orderpipe/internal/consumer"
	"github.com/orderpipe/orderpipe/internal/event"
	"github.com/orderpipe/orderpipe/internal/postgres"
)

// Sales is the Postgres side of the reports group.
type Sales interface {
	Apply(ctx context.Context, group string, facts []postgres.SaleFact) (int, error)
}

// Reports is the consumer.Handler of group reports: it turns order outcomes into sales figures,
// one Postgres transaction per poll batch (claim the event ids, upsert the aggregates), so a
// redelivered or replayed event changes no figure.
type Reports struct {
	group     string
	sales     Sales
	validator *event.Validator
	log       *slog.Logger
	m         *metrics
	now       func() time.Time
}

// newReports builds the handler of group.
func newReports(group string, sales Sales, v *event.Validator, log *slog.Logger, m *metrics) *Reports {
	return &Reports{group: group, sales: sales, validator: v, log: log, m: m, now: time.Now}
}

// Handle applies one poll batch (consumer.Handler).
func (r *Reports) Handle(ctx context.Context, recs []*kgo.Record) []error {
	ctx, cancel := context.WithTimeout(ctx, batchTimeout)
	defer cancel()
	errs := make([]error, len(recs))
	var facts []postgres.SaleFact
	var owners []int
	var newest time.Time
	var times []time.Time
	for i, rec := range recs {
		env, err := event.FromRecord(rec)
		if err != nil {
			errs[i] = consumer.Permanent(err)
			continue
		}
		f, ok, err := r.fact(env)
		if err != nil {
			errs[i] = consumer.Permanent(err)
			continue
		}
		if !ok {
			r.m.skipped.WithLabelValues(r.group).Inc()
			continue
		}
		facts = append(facts, f)
		owners = append(owners, i)
		times = append(times, env.Time)
		if env.Time.After(newest) {
			newest = env.Time
		}
	}
	if len(facts) == 0 {
		return errs
	}
	applied, err := r.sales.Apply(ctx, r.group, facts)
	if err != nil {
		for _, i := range owners {
			errs[i] = consumer.Transient(err)
		}
		return errs
	}
	now := r.now()
	r.m.reportEvents.WithLabelValues("applied").Add(float64(applied))
	r.m.reportEvents.WithLabelValues("duplicate").Add(float64(len(facts) - applied))
	for _, t := range times {
		if !t.IsZero() {
			r.m.reportLag.Observe(max(now.Sub(t), 0).Seconds())
		}
	}
	if !newest.IsZero() {
		r.m.reportNewest.Set(float64(newest.UnixNano()) / 1e9)
	}
	r.log.Debug("sales figures updated", "group", r.group, "events", len(facts), "applied", applied)
	return errs
}

// fact turns an order outcome into the figures it adds; ok is false for other event types.
func (r *Reports) fact(env event.Envelope) (postgres.SaleFact, bool, error) {
	var (
		f     = postgres.SaleFact{EventID: env.ID}
		lines []event.OrderLine
	)
	switch env.Type {
	case event.TypeOrderConfirmed:
		d, err := event.Decode[event.OrderConfirmed](r.validator, env)
		if err != nil {
			return f, false, err
		}
		f.PlacedAt, f.Currency, f.Confirmed, lines = d.PlacedAt, d.Currency, true, d.Lines
	case event.TypeOrderCancelled:
		d, err := event.Decode[event.OrderCancelled](r.validator, env)
		if err != nil {
			return f, false, err
		}
		if d.Reason == "duplicate" {
			// A second copy of an order the buyer placed once (the first one counts): no sale,
			// no cancellation.
			return f, false, nil
		}
		f.PlacedAt, f.Currency, f.Reason, lines = d.PlacedAt, d.Currency, d.Reason, d.Lines
	default:
		return f, false, nil
	}
	for _, l := range lines {
		f.Lines = append(f.Lines, postgres.SaleLine{SKU: l.SKU, Quantity: l.Quantity, LineTotalMinor: l.LineTotalMinor})
	}
	return f, true, nil
}

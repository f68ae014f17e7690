package notifier

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	omail "github.com/orderpipe/orderpipe/internal/mail"
	"github.com/orderpipe/orderpipe/internal/postgres"
)

// SalesReader reads the sales aggregates.
type SalesReader interface {
	Sales(ctx context.Context, q postgres.SalesQuery) ([]postgres.SalesRow, error)
}

// Summary sends the daily sales summary to ops, exactly once per day: the e-mail is claimed in
// the notifications table under (daily_summary, the day) like an order e-mail, so several
// notifier instances, restarts and retries send it once.
type Summary struct {
	claims   Claims
	sales    SalesReader
	sender   Sender
	renderer *omail.Renderer
	to       string
	loc      *time.Location
	at       time.Duration // after this time of day (loc), the previous day is due
	lease    time.Duration
	log      *slog.Logger
	m        *metrics
}

// newSummary builds the daily summary for ops address to: after at (an offset from midnight in
// loc) each day, the previous day's summary is due.
func newSummary(claims Claims, sales SalesReader, sender Sender, r *omail.Renderer, to string, loc *time.Location, at, lease time.Duration, log *slog.Logger, m *metrics) *Summary {
	return &Summary{claims: claims, sales: sales, sender: sender, renderer: r, to: to, loc: loc, at: at, lease: lease, log: log, m: m}
}

// Run checks every interval whether a summary is due and sends it, until ctx ends.
func (s *Summary) Run(ctx context.Context, interval time.Duration) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if _, err := s.Tick(ctx, time.Now()); err != nil && ctx.Err() == nil {
			s.log.Warn("daily summary not sent; retrying at the next check", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Due is the day whose summary is due at now: yesterday once today's send time has passed, the
// day before otherwise. After an outage only the latest due day is sent.
func (s *Summary) Due(now time.Time) time.Time {
	local := now.In(s.loc)
	today := time.Date(local.Year(), local.Month(), local.Day(), 0, 0, 0, 0, s.loc)
	if local.Before(today.Add(s.at)) {
		return today.AddDate(0, 0, -2)
	}
	return today.AddDate(0, 0, -1)
}

// Tick sends the summary due at now unless it was sent; it reports whether this call sent it.
func (s *Summary) Tick(ctx context.Context, now time.Time) (bool, error) {
	day := s.Due(now)
	key := postgres.NotificationKey{Kind: omail.KindDailySummary, Subject: day.Format(time.DateOnly)}
	msgID := s.renderer.MessageID(key.Kind, key.Subject)
	res, err := s.claims.Claim(ctx, []postgres.NotificationClaim{{NotificationKey: key, Recipient: s.to, MessageID: msgID}}, s.lease, now)
	if err != nil {
		return false, err
	}
	switch res[0].Outcome {
	case postgres.ClaimSent, postgres.ClaimBusy:
		return false, nil
	}
	msg, err := s.render(ctx, day, now)
	if err == nil {
		err = s.sender.Send(ctx, msg)
	}
	if err != nil {
		var se *omail.SendError
		if errors.As(err, &se) {
			s.m.failures.WithLabelValues(se.Class).Inc()
		}
		if !errors.As(err, &se) || !se.MaybeDelivered {
			if ferr := s.claims.MarkFailed(context.WithoutCancel(ctx), key, err.Error()); ferr != nil {
				s.log.Warn("daily summary claim not released", "day", key.Subject, "err", ferr)
			}
		}
		return false, fmt.Errorf("daily summary %s: %w", key.Subject, err)
	}
	if res[0].Outcome == postgres.ClaimResend {
		s.m.resends.WithLabelValues(key.Kind).Inc()
	}
	s.m.sent.WithLabelValues(key.Kind).Inc()
	s.m.summariesSent.Inc()
	if _, err := s.claims.MarkSent(context.WithoutCancel(ctx), key, now); err != nil {
		return true, fmt.Errorf("daily summary %s sent but not marked: %w", key.Subject, err)
	}
	s.log.Info("daily summary sent", "day", key.Subject, "to", s.to)
	return true, nil
}

// render builds the summary of day from the hour, SKU and category aggregates.
func (s *Summary) render(ctx context.Context, day, now time.Time) (omail.Message, error) {
	from, to := day, day.AddDate(0, 0, 1)
	all := func(groupBy string) ([]postgres.SalesRow, error) {
		var out []postgres.SalesRow
		q := postgres.SalesQuery{GroupBy: groupBy, From: from, To: to, Limit: 1000}
		for {
			rows, err := s.sales.Sales(ctx, q)
			if err != nil {
				return nil, err
			}
			out = append(out, rows...)
			if len(rows) < q.Limit {
				return out, nil
			}
			q.AfterKey, q.AfterCurrency = rows[len(rows)-1].Key, rows[len(rows)-1].Currency
		}
	}
	hours, err := all(postgres.DimHour)
	if err != nil {
		return omail.Message{}, err
	}
	skus, err := all(postgres.DimSKU)
	if err != nil {
		return omail.Message{}, err
	}
	cats, err := all(postgres.DimCategory)
	if err != nil {
		return omail.Message{}, err
	}
	sum := omail.Summary{Day: day.Format(time.DateOnly), Location: s.loc.String()}
	totals := map[string]*omail.SummaryTotal{}
	byReason := map[string]map[string]int64{}
	for _, h := range hours {
		t := totals[h.Currency]
		if t == nil {
			t = &omail.SummaryTotal{Currency: h.Currency}
			totals[h.Currency] = t
			byReason[h.Currency] = map[string]int64{}
		}
		t.Orders += h.Orders
		t.Units += h.Units
		t.RevenueMinor += h.RevenueMinor
		t.CancelledOrders += h.CancelledOrders
		for r, n := range h.Cancellations {
			byReason[h.Currency][r] += n
		}
	}
	for cur, t := range totals {
		for _, r := range postgres.CancelReasons {
			if n := byReason[cur][r]; n > 0 {
				t.Cancellations = append(t.Cancellations, omail.ReasonCount{Reason: r, Orders: n})
			}
		}
		sum.Totals = append(sum.Totals, *t)
	}
	slices.SortFunc(sum.Totals, func(a, b omail.SummaryTotal) int { return cmp.Compare(a.Currency, b.Currency) })
	rows := func(in []postgres.SalesRow, limit int) []omail.SummaryRow {
		var out []omail.SummaryRow
		for _, r := range in {
			if r.Orders == 0 {
				continue
			}
			out = append(out, omail.SummaryRow{Key: r.Key, Category: r.Category, Currency: r.Currency, Orders: r.Orders, Units: r.Units, RevenueMinor: r.RevenueMinor})
		}
		slices.SortStableFunc(out, func(a, b omail.SummaryRow) int {
			return cmp.Or(cmp.Compare(b.RevenueMinor, a.RevenueMinor), cmp.Compare(a.Key, b.Key))
		})
		return out[:min(len(out), limit)]
	}
	sum.TopSKUs, sum.Categories = rows(skus, 10), rows(cats, 50)
	return s.renderer.DailySummary(s.to, sum, now)
}

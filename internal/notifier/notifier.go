// Package notifier is the notifier process: two low-priority consumer groups on orders.events.
// Group notifier sends one e-mail per order and kind (confirmed, cancelled, shipped) over SMTP;
// group reports keeps the sales aggregates behind GET /v1/reports/sales and sends a daily summary
// to ops. Both run in this one process by default (NOTIFIER_GROUPS selects), apart from the
// critical groups, with bounded resources and a pause while the critical groups lag
// (docs/notifications.md).
//
// Exactly one e-mail per (order, kind): before talking to the SMTP server the handler claims the
// e-mail in Postgres (a notifications row in state sending with a lease, inserted with ON
// CONFLICT DO NOTHING), and marks it sent as soon as the server accepted it. A redelivery or a
// replay finds it sent and sends nothing. A crash between the server's acceptance and the mark
// leaves it sending: once the lease runs out, a redelivery sends it again (a possible duplicate,
// counted in orderpipe_notifier_resends_total, with the same Message-ID) rather than never
// (a possible loss).
package notifier

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderpipe/orderpipe/internal/consumer"
	"github.com/orderpipe/orderpipe/internal/event"
	omail "github.com/orderpipe/orderpipe/internal/mail"
	"github.com/orderpipe/orderpipe/internal/postgres"
)

// Claims is the Postgres side of exactly-once e-mail.
type Claims interface {
	Claim(ctx context.Context, claims []postgres.NotificationClaim, lease time.Duration, now time.Time) ([]postgres.ClaimResult, error)
	MarkSent(ctx context.Context, k postgres.NotificationKey, now time.Time) (bool, error)
	MarkFailed(ctx context.Context, k postgres.NotificationKey, cause string) error
}

// Sender sends one e-mail; its errors are *mail.SendError.
type Sender interface {
	Send(ctx context.Context, m omail.Message) error
}

// Notifier is the consumer.Handler of group notifier.
type Notifier struct {
	claims    Claims
	sender    Sender
	renderer  *omail.Renderer
	validator *event.Validator
	lease     time.Duration
	sends     chan struct{} // one token per SMTP conversation in progress
	log       *slog.Logger
	m         *metrics
	now       func() time.Time
}

// newNotifier builds the handler; maxSends bounds concurrent SMTP conversations.
func newNotifier(claims Claims, sender Sender, r *omail.Renderer, v *event.Validator, lease time.Duration, maxSends int, log *slog.Logger, m *metrics) *Notifier {
	return &Notifier{claims: claims, sender: sender, renderer: r, validator: v, lease: lease,
		sends: make(chan struct{}, max(maxSends, 1)), log: log, m: m, now: time.Now}
}

// job is one e-mail of a batch, with every record that asks for it.
type job struct {
	idxs    []int
	key     postgres.NotificationKey
	eventID string
	to      string // the bare recipient address
	msg     omail.Message
	claim   postgres.ClaimResult
	err     error
}

// batchTimeout bounds a batch's work so a hung Postgres turns into retries, not a stuck loop.
const batchTimeout = 2 * time.Minute

// Handle sends the e-mails asked for by one poll batch (consumer.Handler).
func (n *Notifier) Handle(ctx context.Context, recs []*kgo.Record) []error {
	ctx, cancel := context.WithTimeout(ctx, batchTimeout)
	defer cancel()
	errs := make([]error, len(recs))
	now := n.now()
	var jobs []*job
	byKey := map[postgres.NotificationKey]*job{}
	for i, r := range recs {
		env, err := event.FromRecord(r)
		if err != nil {
			errs[i] = consumer.Permanent(err)
			continue
		}
		kind, order, ok, err := n.orderMail(env)
		if err != nil {
			errs[i] = consumer.Permanent(err)
			continue
		}
		if !ok {
			n.m.skipped.WithLabelValues("notifier").Inc()
			continue
		}
		key := postgres.NotificationKey{Kind: kind, Subject: order.ID}
		if j, dup := byKey[key]; dup {
			j.idxs = append(j.idxs, i)
			continue
		}
		msg, err := n.renderer.Order(kind, order, now)
		if err != nil {
			errs[i] = consumer.Permanent(err)
			continue
		}
		j := &job{idxs: []int{i}, key: key, eventID: env.ID, to: order.Email, msg: msg}
		byKey[key] = j
		jobs = append(jobs, j)
	}
	if len(jobs) > 0 {
		n.run(ctx, jobs, now)
	}
	for _, j := range jobs {
		for _, i := range j.idxs {
			errs[i] = j.err
		}
	}
	return errs
}

// run claims the batch's e-mails and sends those this delivery owns, at most MaxSends at a
// time, one order's e-mails in record order.
func (n *Notifier) run(ctx context.Context, jobs []*job, now time.Time) {
	claims := make([]postgres.NotificationClaim, len(jobs))
	for i, j := range jobs {
		claims[i] = postgres.NotificationClaim{NotificationKey: j.key, Recipient: j.to, MessageID: j.msg.MessageID, EventID: j.eventID}
	}
	results, err := n.claims.Claim(ctx, claims, n.lease, now)
	if err != nil {
		for _, j := range jobs {
			j.err = consumer.Transient(err)
		}
		return
	}
	byOrder := map[string][]*job{}
	var orders []string
	for i, j := range jobs {
		j.claim = results[i]
		switch j.claim.Outcome {
		case postgres.ClaimSent:
			n.m.duplicates.WithLabelValues(j.key.Kind).Inc()
			n.log.Debug("e-mail already sent; nothing to do", "kind", j.key.Kind, "order_id", j.key.Subject, "event_id", j.eventID)
		case postgres.ClaimBusy:
			j.err = consumer.Transient(fmt.Errorf("%s e-mail of order %s is being sent by another delivery (its lease has not run out)", j.key.Kind, j.key.Subject))
		default:
			if _, ok := byOrder[j.key.Subject]; !ok {
				orders = append(orders, j.key.Subject)
			}
			byOrder[j.key.Subject] = append(byOrder[j.key.Subject], j)
		}
	}
	var wg sync.WaitGroup
	for _, o := range orders {
		wg.Go(func() {
			for _, j := range byOrder[o] {
				j.err = n.send(ctx, j)
			}
		})
	}
	wg.Wait()
}

// send delivers one claimed e-mail and records the outcome.
func (n *Notifier) send(ctx context.Context, j *job) error {
	select {
	case n.sends <- struct{}{}:
	case <-ctx.Done():
		n.release(j, ctx.Err())
		return consumer.Transient(ctx.Err())
	}
	// The token is held until the e-mail is marked: a crash can then leave at most MaxSends
	// e-mails sent but unmarked (the duplicates the window allows).
	defer func() { <-n.sends }()
	start := time.Now()
	err := n.sender.Send(ctx, j.msg)
	n.m.sendSeconds.WithLabelValues(j.key.Kind).Observe(time.Since(start).Seconds())
	attrs := []any{"kind", j.key.Kind, "order_id", j.key.Subject, "event_id", j.eventID, "attempt", j.claim.Attempts}
	if err != nil {
		var se *omail.SendError
		class, permanent, maybe := omail.ClassNetwork, false, false
		if errors.As(err, &se) {
			class, permanent, maybe = se.Class, se.Permanent, se.MaybeDelivered
		}
		n.m.failures.WithLabelValues(class).Inc()
		err = fmt.Errorf("send %s e-mail of order %s: %w", j.key.Kind, j.key.Subject, err)
		if maybe {
			// The server may have accepted it: the claim stays sending, and the lease decides
			// (the same window as a crash after the send).
			n.log.Warn("e-mail may have been delivered; left to its lease", append(attrs, "err", err)...)
		} else {
			n.release(j, err)
		}
		if permanent {
			return consumer.Permanent(err)
		}
		return consumer.Transient(err)
	}
	if j.claim.Outcome == postgres.ClaimResend {
		n.m.resends.WithLabelValues(j.key.Kind).Inc()
		n.log.Warn("e-mail sent again after an earlier sender left it unmarked past its lease: the buyer may have it twice", attrs...)
	}
	n.m.sent.WithLabelValues(j.key.Kind).Inc()
	if err := n.markSent(ctx, j.key); err != nil {
		// Sent but not marked: the claim stays sending until its lease runs out, then a
		// redelivery sends it again. Retrying here keeps that window to a Postgres outage.
		return consumer.Transient(err)
	}
	n.log.Info("e-mail sent", attrs...)
	return nil
}

// markSent marks an accepted e-mail sent, retrying briefly: every failure here is a possible
// duplicate later.
func (n *Notifier) markSent(ctx context.Context, k postgres.NotificationKey) error {
	op := func() (bool, error) { return n.claims.MarkSent(ctx, k, n.now()) }
	b := backoff.NewExponentialBackOff()
	b.InitialInterval, b.MaxInterval = 50*time.Millisecond, time.Second
	marked, err := backoff.Retry(ctx, op, backoff.WithBackOff(b), backoff.WithMaxElapsedTime(5*time.Second))
	if err != nil {
		return fmt.Errorf("mark %s e-mail of order %s sent: %w", k.Kind, k.Subject, err)
	}
	if !marked {
		n.log.Warn("e-mail was not 'sending' when marked sent (another sender took it over)", "kind", k.Kind, "order_id", k.Subject)
	}
	return nil
}

// release gives a claim back after a failure that certainly delivered nothing, so the next
// attempt takes it at once instead of waiting for the lease.
func (n *Notifier) release(j *job, cause error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := n.claims.MarkFailed(ctx, j.key, cause.Error()); err != nil {
		n.log.Warn("claim not released; it waits for its lease", "kind", j.key.Kind, "order_id", j.key.Subject, "err", err)
	}
}

// orderMail says which e-mail an event asks for: its kind and what it shows. ok is false for
// event types that send no e-mail (skipped, committed).
func (n *Notifier) orderMail(env event.Envelope) (kind string, o omail.Order, ok bool, err error) {
	switch env.Type {
	case event.TypeOrderConfirmed:
		d, err := event.Decode[event.OrderConfirmed](n.validator, env)
		if err != nil {
			return "", omail.Order{}, false, err
		}
		o := orderOf(d.OrderID, d.Email, d.Currency, d.Priority, d.Lines, d.SubtotalMinor, d.ShippingMinor, d.TotalMinor, d.ShippingAddress, d.PlacedAt)
		return omail.KindOrderConfirmed, o, true, nil
	case event.TypeOrderCancelled:
		d, err := event.Decode[event.OrderCancelled](n.validator, env)
		if err != nil {
			return "", omail.Order{}, false, err
		}
		o := orderOf(d.OrderID, d.Email, d.Currency, d.Priority, d.Lines, d.SubtotalMinor, d.ShippingMinor, d.TotalMinor, d.ShippingAddress, d.PlacedAt)
		o.Reason, o.Refunded = d.Reason, d.Refunded
		return omail.KindOrderCancelled, o, true, nil
	case event.TypeOrderShipped:
		d, err := event.Decode[event.OrderShipped](n.validator, env)
		if err != nil {
			return "", omail.Order{}, false, err
		}
		o := orderOf(d.OrderID, d.Email, d.Currency, d.Priority, d.Lines, d.SubtotalMinor, d.ShippingMinor, d.TotalMinor, d.ShippingAddress, d.PlacedAt)
		return omail.KindOrderShipped, o, true, nil
	}
	return "", omail.Order{}, false, nil
}

func orderOf(id, email, currency, priority string, lines []event.OrderLine, subtotal, shipping, total int64, addr event.Address, placed time.Time) omail.Order {
	o := omail.Order{
		ID: id, Name: addr.Name, Email: email, Currency: currency, SubtotalMinor: subtotal, ShippingMinor: shipping,
		TotalMinor: total, Express: priority == "express", PlacedAt: placed,
		Address: omail.Address{Name: addr.Name, Line1: addr.Line1, Line2: addr.Line2, City: addr.City, PostalCode: addr.PostalCode, Country: addr.Country},
	}
	for _, l := range lines {
		o.Lines = append(o.Lines, omail.Line{SKU: l.SKU, Name: l.Name, Quantity: l.Quantity, UnitPriceMinor: l.UnitPriceMinor, LineTotalMinor: l.LineTotalMinor})
	}
	return o
}

// Package orderworker is the order-worker process: it consumes OrderPlaced from the priority and
// standard lanes, charges each order through the payment gateway, decides it in Postgres in one
// transaction per batch (the I1 guard allocates or refuses), ends its Redis holds, and publishes
// OrderConfirmed or OrderCancelled. Every step is idempotent, so a redelivery or a replay of any
// record changes nothing (I3), and every accepted order reaches a terminal state (I2).
//
// The order of the steps, and why a crash between any two loses nothing and doubles nothing:
//
//  1. charge (gateway, idempotency key = order id): a crash after it repeats the charge, which
//     the provider answers with the first result; no second capture.
//  2. decide in Postgres (one transaction: processed event, order, lines, payment, allocation):
//     a crash before commit leaves nothing; after it, the redelivered event is recognised by its
//     processed-events row and only the following steps run again.
//  3. refund, if the guard refused a captured order (idempotent by order id, marked in Postgres).
//  4. end the Redis holds (confirm or release; each hold ends once, marked in Redis).
//  5. publish the outcome with a deterministic event id (consumers deduplicate a re-publish).
//  6. commit the offset (only now: steps 3-5 are repeated by a redelivery until they succeeded).
package orderworker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderpipe/orderpipe/internal/consumer"
	"github.com/orderpipe/orderpipe/internal/event"
	"github.com/orderpipe/orderpipe/internal/order"
	"github.com/orderpipe/orderpipe/internal/payment"
	"github.com/orderpipe/orderpipe/internal/postgres"
	"github.com/orderpipe/orderpipe/internal/redisstore"
)

// Gateway charges and refunds payments, idempotent by order id.
type Gateway interface {
	Charge(ctx context.Context, r payment.ChargeRequest) (payment.Charge, error)
	Refund(ctx context.Context, orderID string, amountMinor int64, currency string) (payment.Refund, error)
}

// Holds ends the Redis holds of an order.
type Holds interface {
	Confirm(ctx context.Context, orderID string, lines []redisstore.Line) ([]redisstore.HoldResult, error)
	Release(ctx context.Context, orderID string, skus []string) ([]redisstore.HoldResult, error)
}

// Store is the Postgres side of processing.
type Store interface {
	Processed(ctx context.Context, group string, eventIDs []string) (map[string]bool, error)
	Apply(ctx context.Context, group string, cands []postgres.Candidate, now time.Time) ([]postgres.Decision, error)
	Decisions(ctx context.Context, orderIDs []string) (map[string]postgres.Decision, error)
	MarkRefunded(ctx context.Context, orderID, refundID string) error
}

// Producer publishes outcome events.
type Producer interface {
	ProduceSync(ctx context.Context, rs ...*kgo.Record) kgo.ProduceResults
}

// Processor is the consumer.Handler of order-worker.
type Processor struct {
	group       string
	source      string
	concurrency int
	gateway     Gateway
	holds       Holds
	store       Store
	producer    Producer
	validator   *event.Validator
	log         *slog.Logger
	now         func() time.Time

	outcomes      *prometheus.CounterVec
	guardRefused  prometheus.Counter
	lateConfirms  prometheus.Counter
	decideSeconds prometheus.Histogram
}

// NewProcessor builds the processor; concurrency bounds parallel gateway calls per batch.
func NewProcessor(group, source string, concurrency int, gw Gateway, holds Holds, store Store, producer Producer, v *event.Validator, log *slog.Logger, reg prometheus.Registerer) *Processor {
	f := promauto.With(reg)
	p := &Processor{
		group: group, source: source, concurrency: max(concurrency, 1), gateway: gw, holds: holds, store: store,
		producer: producer, validator: v, log: log, now: time.Now,
		outcomes: f.NewCounterVec(prometheus.CounterOpts{
			Name: "orderpipe_worker_orders_total",
			Help: "Orders decided by order-worker, by status and cancel reason.",
		}, []string{"status", "reason"}),
		guardRefused: f.NewCounter(prometheus.CounterOpts{
			Name: "orderpipe_worker_guard_refusals_total",
			Help: "Captured orders the Postgres guard refused to allocate (Redis promised stock Postgres did not have); each is refunded.",
		}),
		lateConfirms: f.NewCounter(prometheus.CounterOpts{
			Name: "orderpipe_worker_late_confirms_total",
			Help: "Order lines confirmed after their hold had expired (units taken back out of availability).",
		}),
		decideSeconds: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "orderpipe_worker_accept_to_decision_seconds",
			Help:    "Time from the api accepting an order to order-worker deciding it.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 900},
		}),
	}
	// Every decision exists at 0 from the start (panels and alerts read increase() and rate()).
	p.outcomes.WithLabelValues(string(order.StatusConfirmed), "")
	for _, r := range []order.CancelReason{order.ReasonPaymentDeclined, order.ReasonOutOfStock, order.ReasonExpired, order.ReasonInvalid} {
		p.outcomes.WithLabelValues(string(order.StatusCancelled), string(r))
	}
	return p
}

// item is one record of a batch on its way through the steps.
type item struct {
	idx    int
	rec    *kgo.Record
	env    event.Envelope
	placed event.OrderPlaced
	cand   postgres.Candidate
	dec    postgres.Decision
	err    error
}

// batchTimeout bounds one batch's work, so a hung dependency (a Postgres that stopped
// answering) turns into transient errors and retries instead of a stuck loop.
const batchTimeout = 60 * time.Second

// Handle processes one poll batch (consumer.Handler).
func (p *Processor) Handle(ctx context.Context, recs []*kgo.Record) []error {
	ctx, cancel := context.WithTimeout(ctx, batchTimeout)
	defer cancel()
	errs := make([]error, len(recs))
	items := make([]*item, 0, len(recs))
	byEvent := map[string]*item{}
	dups := map[int]*item{} // a record whose event repeats earlier in the same batch
	for i, r := range recs {
		it, err := p.decode(i, r)
		if err != nil {
			errs[i] = consumer.Permanent(err)
			continue
		}
		if first, ok := byEvent[it.env.ID]; ok {
			dups[i] = first
			continue
		}
		byEvent[it.env.ID] = it
		items = append(items, it)
	}
	if len(items) > 0 {
		if err := p.process(ctx, items); err != nil {
			for _, it := range items {
				if it.err == nil {
					it.err = consumer.Transient(err)
				}
			}
		}
	}
	for _, it := range items {
		errs[it.idx] = it.err
	}
	for i, first := range dups {
		errs[i] = first.err
	}
	return errs
}

func (p *Processor) decode(i int, r *kgo.Record) (*item, error) {
	env, err := event.FromRecord(r)
	if err != nil {
		return nil, err
	}
	if env.Type != event.TypeOrderPlaced {
		return nil, fmt.Errorf("event %s: type %q, want %s", env.ID, env.Type, event.TypeOrderPlaced)
	}
	placed, err := event.Decode[event.OrderPlaced](p.validator, env)
	if err != nil {
		return nil, err
	}
	if want := event.ID(event.TypeOrderPlaced, placed.OrderID); env.ID != want {
		return nil, fmt.Errorf("event id %s does not belong to order %s (want %s)", env.ID, placed.OrderID, want)
	}
	return &item{idx: i, rec: r, env: env, placed: placed}, nil
}

// process runs the steps for the decodable, distinct records of a batch. A returned error
// fails every item that has no error of its own.
func (p *Processor) process(ctx context.Context, items []*item) error {
	ids := make([]string, len(items))
	for i, it := range items {
		ids[i] = it.env.ID
	}
	done, err := p.store.Processed(ctx, p.group, ids)
	if err != nil {
		return err
	}
	var fresh, redelivered []*item
	for _, it := range items {
		if done[it.env.ID] {
			redelivered = append(redelivered, it)
		} else {
			fresh = append(fresh, it)
		}
	}

	// Step 1: charge the fresh orders, several at a time.
	p.charge(ctx, fresh)
	var cands []postgres.Candidate
	var deciding []*item
	for _, it := range fresh {
		if it.err == nil {
			cands = append(cands, it.cand)
			deciding = append(deciding, it)
		}
	}

	// Step 2: decide in Postgres, one transaction for the batch.
	now := p.now().UTC().Truncate(time.Microsecond)
	decisions, err := p.store.Apply(ctx, p.group, cands, now)
	if err != nil {
		for _, it := range deciding {
			it.err = consumer.Transient(err)
		}
		deciding = nil
	}
	decided := map[string]postgres.Decision{}
	for _, d := range decisions {
		decided[d.OrderID] = d
	}
	for _, it := range deciding {
		d, ok := decided[it.placed.OrderID]
		if !ok {
			// Another delivery claimed it concurrently: treat as redelivered.
			redelivered = append(redelivered, it)
			continue
		}
		it.dec = d
		p.outcomes.WithLabelValues(d.Status, d.CancelReason).Inc()
		p.decideSeconds.Observe(now.Sub(it.placed.PlacedAt).Seconds())
		if d.Payment == postgres.PaymentRefundPending {
			p.guardRefused.Inc()
		}
	}
	if len(redelivered) > 0 {
		oids := make([]string, len(redelivered))
		for i, it := range redelivered {
			oids[i] = it.placed.OrderID
		}
		known, err := p.store.Decisions(ctx, oids)
		if err != nil {
			for _, it := range redelivered {
				it.err = consumer.Transient(err)
			}
		}
		for _, it := range redelivered {
			if it.err != nil {
				continue
			}
			d, ok := known[it.placed.OrderID]
			if !ok {
				it.err = consumer.Transient(fmt.Errorf("order %s: processed event without an order row", it.placed.OrderID))
				continue
			}
			it.dec = d
		}
	}

	// Steps 3-5 for every decided item, fresh or redelivered.
	var follow []*item
	for _, it := range items {
		if it.err == nil && it.dec.OrderID != "" {
			follow = append(follow, it)
		}
	}
	p.refund(ctx, follow)
	p.endHolds(ctx, follow)
	p.publish(ctx, follow)
	return nil
}

// charge calls the gateway for every item, bounded in parallel. A decline or a rejected request
// becomes a cancellation; a transient failure stays an error of the item (retried later).
func (p *Processor) charge(ctx context.Context, items []*item) {
	sem := make(chan struct{}, p.concurrency)
	var wg sync.WaitGroup
	for _, it := range items {
		if err := checkTotals(it.placed); err != nil {
			it.cand = p.candidate(it, "cancelled", "invalid", postgres.Payment{Status: postgres.PaymentFailed, AmountMinor: it.placed.TotalMinor, Currency: it.placed.Currency})
			p.log.Warn("order cancelled as invalid", "order_id", it.placed.OrderID, "event_id", it.env.ID, "err", err)
			continue
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			pl := it.placed
			ch, err := p.gateway.Charge(ctx, payment.ChargeRequest{
				OrderID: pl.OrderID, Token: pl.Payment.Token, Method: pl.Payment.Method,
				AmountMinor: pl.TotalMinor, Currency: pl.Currency,
			})
			pay := postgres.Payment{ProviderID: ch.ID, AmountMinor: pl.TotalMinor, Currency: pl.Currency, DeclineCode: ch.DeclineCode}
			switch {
			case errors.Is(err, payment.ErrPermanent):
				pay.Status = postgres.PaymentFailed
				it.cand = p.candidate(it, "cancelled", "invalid", pay)
				p.log.Warn("payment request rejected; order cancelled as invalid", "order_id", pl.OrderID, "event_id", it.env.ID, "err", err)
			case err != nil:
				it.err = consumer.Transient(fmt.Errorf("charge order %s: %w", pl.OrderID, err))
			case ch.Status == payment.StatusDeclined:
				pay.Status = postgres.PaymentDeclined
				it.cand = p.candidate(it, "cancelled", "payment_declined", pay)
			default:
				pay.Status = postgres.PaymentCaptured
				it.cand = p.candidate(it, "confirmed", "", pay)
			}
		})
	}
	wg.Wait()
}

func (p *Processor) candidate(it *item, status, reason string, pay postgres.Payment) postgres.Candidate {
	pl := it.placed
	addr, _ := json.Marshal(pl.ShippingAddress)
	o := postgres.Order{
		ID: pl.OrderID, Status: status, CancelReason: reason, CustomerID: pl.CustomerID, Email: pl.Email,
		Priority: pl.Priority, Currency: pl.Currency, SubtotalMinor: pl.SubtotalMinor, ShippingMinor: pl.ShippingMinor,
		TotalMinor: pl.TotalMinor, ShippingAddress: addr, PlacedAt: pl.PlacedAt, HoldDeadline: pl.HoldDeadline,
	}
	for _, l := range pl.Lines {
		o.Lines = append(o.Lines, postgres.OrderLine{LineNo: l.LineNo, SKU: l.SKU, Name: l.Name, Quantity: l.Quantity, UnitPriceMinor: l.UnitPriceMinor, PromotionID: l.PromotionID})
	}
	return postgres.Candidate{EventID: it.env.ID, Order: o, Payment: pay, Expired: p.now().After(pl.HoldDeadline)}
}

// checkTotals verifies the arithmetic the api did; an order that does not add up is cancelled
// as invalid rather than charged.
func checkTotals(p event.OrderPlaced) error {
	var sub int64
	for _, l := range p.Lines {
		if int64(l.Quantity)*l.UnitPriceMinor != l.LineTotalMinor {
			return fmt.Errorf("line %d: %d x %d != %d", l.LineNo, l.Quantity, l.UnitPriceMinor, l.LineTotalMinor)
		}
		sub += l.LineTotalMinor
	}
	if sub != p.SubtotalMinor || p.SubtotalMinor+p.ShippingMinor != p.TotalMinor {
		return fmt.Errorf("totals do not add up: lines %d, subtotal %d, shipping %d, total %d", sub, p.SubtotalMinor, p.ShippingMinor, p.TotalMinor)
	}
	return nil
}

// refund returns the money of captured orders the guard refused.
func (p *Processor) refund(ctx context.Context, items []*item) {
	for _, it := range items {
		if it.dec.Payment != postgres.PaymentRefundPending {
			continue
		}
		pl := it.placed
		r, err := p.gateway.Refund(ctx, pl.OrderID, pl.TotalMinor, pl.Currency)
		if err != nil {
			it.err = consumer.Transient(fmt.Errorf("refund order %s: %w", pl.OrderID, err))
			continue
		}
		if err := p.store.MarkRefunded(ctx, pl.OrderID, r.ID); err != nil {
			it.err = consumer.Transient(err)
			continue
		}
		p.log.Warn("captured order refused by the stock guard and refunded", "order_id", pl.OrderID, "event_id", it.env.ID, "reason", it.dec.CancelReason)
	}
}

// endHolds confirms or releases each order's Redis holds.
func (p *Processor) endHolds(ctx context.Context, items []*item) {
	for _, it := range items {
		if it.err != nil {
			continue
		}
		pl := it.placed
		if it.dec.Status == "confirmed" || it.dec.Status == "shipped" {
			lines := make([]redisstore.Line, len(pl.Lines))
			for i, l := range pl.Lines {
				lines[i] = redisstore.Line{SKU: l.SKU, Qty: int64(l.Quantity)}
				if l.PromotionID != "" {
					// Confirm merges the lines of a SKU; a late confirmation counts these
					// promotional units again (the expiry gave them back).
					lines[i].Promo = &redisstore.LinePromo{ID: l.PromotionID, Customer: pl.CustomerID, Units: int64(l.Quantity)}
				}
			}
			res, err := p.holds.Confirm(ctx, pl.OrderID, lines)
			if err != nil {
				it.err = consumer.Transient(err)
				continue
			}
			for _, r := range res {
				if r.Late {
					p.lateConfirms.Inc()
				}
			}
			continue
		}
		skus := make([]string, len(pl.Lines))
		for i, l := range pl.Lines {
			skus[i] = l.SKU
		}
		if _, err := p.holds.Release(ctx, pl.OrderID, skus); err != nil {
			it.err = consumer.Transient(err)
		}
	}
}

// publish produces the outcome event of each order, deterministic per order and outcome.
func (p *Processor) publish(ctx context.Context, items []*item) {
	var recs []*kgo.Record
	owners := map[*kgo.Record]*item{}
	for _, it := range items {
		if it.err != nil {
			continue
		}
		env, err := p.outcome(it)
		if err != nil {
			it.err = consumer.Transient(err)
			continue
		}
		rec := env.Record(event.TopicOrderEvents, []byte(it.placed.OrderID))
		recs = append(recs, rec)
		owners[rec] = it
	}
	if len(recs) == 0 {
		return
	}
	// Results come back in completion order, not in the order given: match them by record.
	for _, r := range p.producer.ProduceSync(ctx, recs...) {
		if r.Err != nil {
			it := owners[r.Record]
			it.err = consumer.Transient(fmt.Errorf("publish outcome of %s: %w", it.placed.OrderID, r.Err))
		}
	}
}

func (p *Processor) outcome(it *item) (event.Envelope, error) {
	pl, d := it.placed, it.dec
	var data event.Data
	// A replayed order may have shipped since: its outcome was still a confirmation.
	if d.Status == "confirmed" || d.Status == "shipped" {
		data = event.OrderConfirmed{
			OrderID: pl.OrderID, CustomerID: pl.CustomerID, Email: pl.Email, Priority: pl.Priority, Currency: pl.Currency,
			Lines: pl.Lines, SubtotalMinor: pl.SubtotalMinor, ShippingMinor: pl.ShippingMinor, TotalMinor: pl.TotalMinor,
			ShippingAddress: pl.ShippingAddress, PlacedAt: pl.PlacedAt, ConfirmedAt: d.DecidedAt, PaymentID: d.PaymentID,
		}
	} else {
		data = event.OrderCancelled{
			OrderID: pl.OrderID, CustomerID: pl.CustomerID, Email: pl.Email, Priority: pl.Priority, Currency: pl.Currency,
			Lines: pl.Lines, SubtotalMinor: pl.SubtotalMinor, ShippingMinor: pl.ShippingMinor, TotalMinor: pl.TotalMinor,
			ShippingAddress: pl.ShippingAddress, PlacedAt: pl.PlacedAt, CancelledAt: d.DecidedAt, Reason: d.CancelReason,
			Refunded: d.Payment == postgres.PaymentRefunded || d.Payment == postgres.PaymentRefundPending,
		}
	}
	env, err := event.NewEnvelope(p.source, pl.OrderID, d.DecidedAt, data)
	if err != nil {
		return event.Envelope{}, err
	}
	if err := p.validator.Validate(env.Type, env.Data); err != nil {
		return event.Envelope{}, fmt.Errorf("outcome of %s: %w", pl.OrderID, err)
	}
	return env, nil
}

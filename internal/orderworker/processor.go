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
	"slices"
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
	RecordUndo(ctx context.Context, u postgres.Undo) error
	Undone(ctx context.Context, orderIDs []string) (map[string]postgres.Undo, error)
	ClaimIdempotency(ctx context.Context, claims []postgres.IdempotencyClaim) (map[postgres.IdempotencyClaim]string, error)
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
	undone        prometheus.Counter
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
		undone: f.NewCounter(prometheus.CounterOpts{
			Name: "orderpipe_worker_payments_undone_total",
			Help: "Captured payments refunded because Postgres refused their order for good (its record is dead-lettered).",
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
	undone *postgres.Undo // its capture was refunded earlier because it could not be stored
	// duplicateOf is the order that claimed this order's Idempotency-Key first.
	duplicateOf string
	err         error
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

	// An order whose capture was undone because it could not be stored (a re-driven dead
	// letter) is not charged again: it is cancelled as invalid, its payment refunded.
	if len(fresh) > 0 {
		oids := make([]string, len(fresh))
		for i, it := range fresh {
			oids[i] = it.placed.OrderID
		}
		undone, err := p.store.Undone(ctx, oids)
		if err != nil {
			return err
		}
		for _, it := range fresh {
			if u, ok := undone[it.placed.OrderID]; ok {
				it.undone = &u
			}
		}
	}

	// Claim each fresh order's Idempotency-Key fingerprint in Postgres before any money moves:
	// a second order for a key another order claimed is a duplicate (the api lost its
	// idempotency record) and is cancelled without a charge.
	if err := p.claim(ctx, fresh); err != nil {
		return err
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
	poisoned := map[string]error{}
	decisions, err := p.apply(ctx, cands, now, poisoned)
	decided := map[string]postgres.Decision{}
	for _, d := range decisions {
		decided[d.OrderID] = d
	}
	var poison []*item
	for _, it := range deciding {
		if perr, ok := poisoned[it.env.ID]; ok {
			it.err = perr
			poison = append(poison, it)
			continue
		}
		d, ok := decided[it.placed.OrderID]
		if !ok && err != nil {
			// Not decided: the error is the batch's (classified by its nature by the consumer).
			it.err = err
			continue
		}
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
	p.undo(ctx, poison)
	return nil
}

// claim claims the Idempotency-Key fingerprints of items (durably, before their charge) and
// marks the items whose fingerprint another order owns.
func (p *Processor) claim(ctx context.Context, items []*item) error {
	var claims []postgres.IdempotencyClaim
	for _, it := range items {
		if fp := it.placed.IdempotencyFingerprint; fp != "" && it.undone == nil {
			claims = append(claims, postgres.IdempotencyClaim{APIKeyID: it.placed.APIKeyID, Fingerprint: fp, OrderID: it.placed.OrderID})
		}
	}
	if len(claims) == 0 {
		return nil
	}
	owners, err := p.store.ClaimIdempotency(ctx, claims)
	if err != nil {
		return err
	}
	for _, it := range items {
		fp := it.placed.IdempotencyFingerprint
		if fp == "" || it.undone != nil {
			continue
		}
		owner, ok := owners[postgres.IdempotencyClaim{APIKeyID: it.placed.APIKeyID, Fingerprint: fp}]
		switch {
		case !ok:
			it.err = consumer.Transient(fmt.Errorf("order %s: idempotency claim not found after claiming it", it.placed.OrderID))
		case owner != it.placed.OrderID:
			it.duplicateOf = owner
		}
	}
	return nil
}

// apply decides cands in Postgres. When the transaction fails permanently (a record that can
// never be stored: Postgres refuses its data for good), it isolates the candidates at fault: when
// Postgres named the refused row (postgres.RowError), by applying the batch without that
// candidate and then the candidate alone; otherwise by applying the two halves separately,
// recursively, in arrival order. The others are decided as if the poison were not there, without
// being charged again, and each candidate that fails permanently on its own is put into poisoned
// with its error. A transient failure stops the split and is returned for the candidates not
// decided (the consumer retries them; those decided by then are found by their processed-event
// rows).
func (p *Processor) apply(ctx context.Context, cands []postgres.Candidate, now time.Time, poisoned map[string]error) ([]postgres.Decision, error) {
	decisions, err := p.store.Apply(ctx, p.group, cands, now)
	if err == nil || consumer.ClassOf(err) != consumer.ClassPermanent {
		return decisions, err
	}
	if len(cands) == 1 {
		poisoned[cands[0].EventID] = err
		return nil, nil
	}
	// Postgres named the row it refused: apply the others without it, then it alone (its own
	// verdict; it loses its place in the batch's allocation order, nothing else).
	var row *postgres.RowError
	if errors.As(err, &row) {
		if i := slices.IndexFunc(cands, func(c postgres.Candidate) bool { return c.EventID == row.EventID }); i >= 0 {
			rest := append(slices.Clone(cands[:i]), cands[i+1:]...)
			decided, err := p.apply(ctx, rest, now, poisoned)
			if err != nil {
				return decided, err
			}
			alone, err := p.apply(ctx, cands[i:i+1], now, poisoned)
			return append(decided, alone...), err
		}
	}
	half := len(cands) / 2
	first, err := p.apply(ctx, cands[:half], now, poisoned)
	if err != nil {
		return first, err
	}
	second, err := p.apply(ctx, cands[half:], now, poisoned)
	return append(first, second...), err
}

// undo handles the orders Postgres refused for good (I8: no money moves for an order that
// cannot be stored). A captured payment is refunded at once through the gateway (idempotent by
// order id) and the refund recorded in Postgres; the holds are released (the order will not be
// served); the item keeps its permanent error, so the consumer dead-letters its record with the
// cause. If the refund, its record or the release fails, the item's error is transient instead:
// the record is tried again, and every step repeats idempotently.
func (p *Processor) undo(ctx context.Context, items []*item) {
	for _, it := range items {
		pl, cause := it.placed, it.err
		if it.cand.Payment.Status == postgres.PaymentCaptured {
			r, err := p.gateway.Refund(ctx, pl.OrderID, pl.TotalMinor, pl.Currency)
			if err != nil {
				it.err = consumer.Transient(fmt.Errorf("undo payment of unstorable order %s: refund: %w (order refused: %w)", pl.OrderID, err, cause))
				continue
			}
			err = p.store.RecordUndo(ctx, postgres.Undo{
				OrderID: pl.OrderID, EventID: it.env.ID, ChargeID: it.cand.Payment.ProviderID, RefundID: r.ID,
				AmountMinor: pl.TotalMinor, Currency: pl.Currency, ErrorClass: consumer.ClassPermanent, Error: cause.Error(),
			})
			if err != nil {
				it.err = consumer.Transient(fmt.Errorf("undo payment of unstorable order %s: %w (order refused: %w)", pl.OrderID, err, cause))
				continue
			}
			p.undone.Inc()
			p.log.Error("order cannot be stored; its payment was refunded and its record goes to the dead-letter topic",
				"order_id", pl.OrderID, "event_id", it.env.ID, "charge_id", it.cand.Payment.ProviderID, "refund_id", r.ID, "err", cause)
		}
		skus := make([]string, len(pl.Lines))
		for i, l := range pl.Lines {
			skus[i] = l.SKU
		}
		if _, err := p.holds.Release(ctx, pl.OrderID, skus); err != nil {
			it.err = consumer.Transient(fmt.Errorf("release holds of unstorable order %s: %w (order refused: %w)", pl.OrderID, err, cause))
			continue
		}
		it.err = consumer.Permanent(fmt.Errorf("order %s cannot be stored (payment %s): %w", pl.OrderID, undoneWord(it.cand.Payment.Status), cause))
	}
}

func undoneWord(status string) string {
	if status == postgres.PaymentCaptured {
		return "refunded"
	}
	return status + ", nothing to refund"
}

// charge calls the gateway for every item, bounded in parallel. A decline or a rejected request
// becomes a cancellation; a transient failure stays an error of the item (retried later).
func (p *Processor) charge(ctx context.Context, items []*item) {
	sem := make(chan struct{}, p.concurrency)
	var wg sync.WaitGroup
	for _, it := range items {
		if it.err != nil {
			continue
		}
		if it.duplicateOf != "" {
			it.cand = p.candidate(it, "cancelled", "duplicate", postgres.Payment{})
			p.log.Warn("second order for an Idempotency-Key already claimed; cancelled as duplicate without a charge",
				"order_id", it.placed.OrderID, "event_id", it.env.ID, "first_order_id", it.duplicateOf, "api_key_id", it.placed.APIKeyID)
			continue
		}
		if u := it.undone; u != nil {
			it.cand = p.candidate(it, "cancelled", "invalid", postgres.Payment{Status: postgres.PaymentRefunded, ProviderID: u.ChargeID, AmountMinor: u.AmountMinor, Currency: u.Currency})
			p.log.Warn("order whose payment was undone is cancelled as invalid, not charged again", "order_id", it.placed.OrderID, "event_id", it.env.ID, "refund_id", u.RefundID)
			continue
		}
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

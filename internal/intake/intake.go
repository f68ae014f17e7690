// Package intake is the checkout's order intake path: price the order from the catalog, hold
// its stock in Redis, publish OrderPlaced durably, and only then accept it. Every refusal leaves
// no hold behind (I5); every acceptance is on the broker before the client hears about it (I2).
//
//	request -> price (catalog cache + published price timelines, at the acceptance time)
//	        -> reserve (Redis Lua: stock hold + promotion counters) -> build + validate OrderPlaced
//	        -> produce (acks=all, idempotent) -> 202 (with the pending snapshot, stored by the
//	           HTTP layer together with the idempotent answer)
//
// A failure after the reservation releases the holds before answering; a crash in between is
// healed by the hold deadlines.
package intake

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderpipe/orderpipe/internal/catalog"
	"github.com/orderpipe/orderpipe/internal/event"
	"github.com/orderpipe/orderpipe/internal/order"
	"github.com/orderpipe/orderpipe/internal/promotion"
	"github.com/orderpipe/orderpipe/internal/redisstore"
)

// Stock is the part of the Redis store intake needs.
type Stock interface {
	Reserve(ctx context.Context, orderID string, lines []redisstore.Line, deadline time.Time) (redisstore.Reservation, error)
	Release(ctx context.Context, orderID string, skus []string) ([]redisstore.HoldResult, error)
}

// Producer writes one record and returns once the broker acknowledged it (or it failed).
type Producer interface {
	ProduceSync(ctx context.Context, rs ...*kgo.Record) kgo.ProduceResults
}

// Catalog finds products by SKU without a database query.
type Catalog interface {
	Get(sku string) (catalog.Product, bool)
}

// Validator checks produced events against their JSON Schema.
type Validator interface {
	Validate(eventType string, data []byte) error
}

// SoldOut remembers the SKUs known to be sold out (httpapi.StockView), so their orders are
// refused without a Redis call: the sold-out fast path. It also caches availability, which a
// reservation made here changes.
type SoldOut interface {
	SoldOut(sku string) bool
	Epoch() uint64                        // taken before a reservation, handed to MarkSoldOut after it
	MarkSoldOut(sku string, since uint64) // a reservation begun at since found the SKU with ATP 0
	Reserved(skus []string)               // units of skus were just held: cached availability is stale
}

// Config are the intake rules.
type Config struct {
	HoldTTL               time.Duration // how long stock stays held for an unpaid order
	ProduceTimeout        time.Duration
	Currency              string
	ShippingStandardMinor int64
	ShippingExpressMinor  int64
	Source                string  // CloudEvents source of produced events
	SoldOut               SoldOut // nil: no sold-out fast path
	Prices                Prices  // nil: no promotions, every line at its catalog price
	// TradeAccounts knows the business customers whose orders use the priority lane like
	// express orders (tradeaccounts.Set); nil: only express orders do.
	TradeAccounts TradeAccounts
}

// TradeAccounts reports whether a customer has a trade account.
type TradeAccounts interface {
	Trade(customerID string) bool
}

// Prices are the published price timelines (pricing.Cache): the promotion window pricing a SKU
// at an instant, found in memory.
type Prices interface {
	At(sku string, t time.Time) (promotion.Window, bool)
	Ready() bool // false until the timelines were loaded: orders are refused with 503 meanwhile
}

// Service places orders.
type Service struct {
	cfg       Config
	stock     Stock
	producer  Producer
	catalog   Catalog
	validator Validator
	log       *slog.Logger
	now       func() time.Time

	outcomes       *prometheus.CounterVec
	priority       *prometheus.CounterVec
	produceSeconds prometheus.Histogram
	reserveSeconds prometheus.Histogram
	soldOutFast    prometheus.Counter
}

// New builds the intake service, registering its metrics on reg.
func New(cfg Config, stock Stock, producer Producer, cat Catalog, v Validator, log *slog.Logger, reg prometheus.Registerer) *Service {
	f := promauto.With(reg)
	s := &Service{
		cfg: cfg, stock: stock, producer: producer, catalog: cat, validator: v, log: log, now: time.Now,
		outcomes: f.NewCounterVec(prometheus.CounterOpts{
			Name: "orderpipe_intake_orders_total",
			Help: "Order placements by outcome: accepted, out_of_stock, promotion_limit, invalid, unavailable.",
		}, []string{"outcome"}),
		priority: f.NewCounterVec(prometheus.CounterOpts{
			Name: "orderpipe_intake_priority_lane_total",
			Help: "Accepted orders that travel on the priority lane (orders.placed.priority), by reason: express or trade_account.",
		}, []string{"reason"}),
		produceSeconds: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "orderpipe_intake_produce_seconds",
			Help:    "Time from produce to broker acknowledgement of OrderPlaced.",
			Buckets: []float64{.0005, .001, .002, .005, .01, .02, .05, .1, .25, .5, 1, 2.5, 5},
		}),
		reserveSeconds: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "orderpipe_intake_reserve_seconds",
			Help:    "Time of the Redis reservation (all lines, one round trip).",
			Buckets: []float64{.0002, .0005, .001, .002, .005, .01, .02, .05, .1, .25},
		}),
		soldOutFast: f.NewCounter(prometheus.CounterOpts{
			Name: "orderpipe_intake_soldout_fastpath_total",
			Help: "Orders refused with 409 because a line's SKU was known to be sold out, without a Redis call.",
		}),
	}
	// Every outcome exists at 0 from the start: alerts take increase() and rate() of them, which
	// see nothing of a series until its second sample.
	for _, o := range []string{"accepted", "out_of_stock", "promotion_limit", "invalid", "unavailable"} {
		s.outcomes.WithLabelValues(o)
	}
	for _, r := range []string{"express", "trade_account"} {
		s.priority.WithLabelValues(r)
	}
	return s
}

// Accepted is an accepted order: its view and the view's JSON, which is both the 202 body and
// the pending snapshot GET /v1/orders/{id} answers with until order-worker has written Postgres
// (the HTTP layer stores it together with the idempotent answer, in the same round trip).
type Accepted struct {
	View View
	Doc  []byte
}

// Request is a validated order request, with its order id already chosen (stable across retries
// of the same Idempotency-Key).
type Request struct {
	OrderID    string
	APIKeyID   string
	CustomerID string
	Email      string
	Priority   order.Priority
	Lines      []LineRequest
	Payment    event.Payment
	Address    event.Address

	// IdempotencyFingerprint is event.IdempotencyFingerprint of the API key and the request's
	// Idempotency-Key; it travels in OrderPlaced (order-worker claims it before charging).
	IdempotencyFingerprint string
}

// LineRequest is one requested line: what and how many, never a price.
type LineRequest struct {
	SKU      string
	Quantity int64
}

// Place runs the intake path. Errors: *order.InvalidError (unknown SKUs), *order.OutOfStockError,
// *order.PromotionLimitError, order.ErrUnavailable (Redis or Kafka down, nothing held).
//
// The order's acceptance time (placed_at) is taken once, first, truncated to the millisecond;
// a promotion prices the order when its window contains that instant (promotion package).
func (s *Service) Place(ctx context.Context, req Request) (Accepted, error) {
	at := s.now().UTC().Truncate(time.Millisecond)
	if s.cfg.Prices != nil && !s.cfg.Prices.Ready() {
		s.outcomes.WithLabelValues("unavailable").Inc()
		return Accepted{}, fmt.Errorf("order %s: promotional prices not loaded yet: %w", req.OrderID, order.ErrUnavailable)
	}
	pr, err := s.price(req, at)
	if err != nil {
		s.outcomes.WithLabelValues("invalid").Inc()
		return Accepted{}, err
	}
	var epoch uint64
	if s.cfg.SoldOut != nil {
		if short := s.knownSoldOut(req.Lines); len(short) > 0 {
			s.soldOutFast.Inc()
			s.outcomes.WithLabelValues("out_of_stock").Inc()
			return Accepted{}, &order.OutOfStockError{Short: short}
		}
		epoch = s.cfg.SoldOut.Epoch()
	}

	lines := make([]redisstore.Line, len(pr.lines))
	skus := make([]string, len(pr.lines))
	for i, l := range pr.lines {
		lines[i] = redisstore.Line{SKU: l.SKU, Qty: l.Quantity}
		if w := l.window; w != nil {
			lines[i].Promo = &redisstore.LinePromo{
				ID: w.PromotionID, StockCap: w.StockCap, Limit: w.Limit, Refuse: w.OverCap == promotion.OverCapRefuse,
				Customer: req.CustomerID, Until: w.Ends(),
			}
		}
		skus[i] = l.SKU
	}
	start := time.Now()
	res, err := s.stock.Reserve(ctx, req.OrderID, lines, pr.holdDeadline)
	s.reserveSeconds.Observe(time.Since(start).Seconds())
	if err != nil {
		s.outcomes.WithLabelValues("unavailable").Inc()
		return Accepted{}, fmt.Errorf("reserve order %s: %w: %w", req.OrderID, order.ErrUnavailable, err)
	}
	if len(res.NotStocked) > 0 {
		s.outcomes.WithLabelValues("unavailable").Inc()
		return Accepted{}, fmt.Errorf("order %s: stock of %v not loaded in Redis: %w", req.OrderID, res.NotStocked, order.ErrUnavailable)
	}
	if !res.OK {
		if len(res.Short) == 0 && len(res.PromoLimited) > 0 {
			s.outcomes.WithLabelValues("promotion_limit").Inc()
			limits := make([]order.PromotionLimit, len(res.PromoLimited))
			for i, l := range res.PromoLimited {
				limits[i] = order.PromotionLimit{SKU: l.SKU, PromotionID: l.PromotionID, Requested: l.Requested, Promotional: l.Promotional}
			}
			return Accepted{}, &order.PromotionLimitError{Lines: limits}
		}
		s.outcomes.WithLabelValues("out_of_stock").Inc()
		short := make([]order.Shortage, len(res.Short))
		for i, sh := range res.Short {
			short[i] = order.Shortage{SKU: sh.SKU, Requested: sh.Requested, Available: sh.Available}
			if sh.Available <= 0 && s.cfg.SoldOut != nil {
				s.cfg.SoldOut.MarkSoldOut(sh.SKU, epoch)
			}
		}
		return Accepted{}, &order.OutOfStockError{Short: short}
	}
	if s.cfg.SoldOut != nil {
		s.cfg.SoldOut.Reserved(skus)
	}
	// From here the order holds units. Every way out that does not end in the broker's
	// acknowledgement (an error, or a panic on its way up) refuses the order, so its holds (and
	// promotional units) go back (I5).
	acked := false
	defer func() {
		if !acked {
			s.release(req.OrderID, skus)
		}
	}()

	// The reservation decided how many units of each promoted SKU are promotional; the event
	// is built from that, validated, and only then produced.
	placed, err := s.build(req, pr, res.Promotional, at)
	if err != nil {
		s.outcomes.WithLabelValues("invalid").Inc()
		return Accepted{}, err
	}
	env, err := event.NewOrderPlaced(s.cfg.Source, placed)
	if err != nil {
		return Accepted{}, fmt.Errorf("build OrderPlaced %s: %w", req.OrderID, err)
	}
	if err := s.validator.Validate(event.TypeOrderPlaced, env.Data); err != nil {
		s.outcomes.WithLabelValues("invalid").Inc()
		return Accepted{}, invalidFromSchema(err)
	}
	view := viewOf(placed)
	doc, err := json.Marshal(view)
	if err != nil {
		return Accepted{}, fmt.Errorf("encode view %s: %w", req.OrderID, err)
	}

	topic, priorityReason := s.lane(req)
	pctx, cancel := context.WithTimeout(ctx, s.cfg.ProduceTimeout)
	defer cancel()
	start = time.Now()
	err = s.producer.ProduceSync(pctx, env.Record(topic, []byte(req.OrderID))).FirstErr()
	s.produceSeconds.Observe(time.Since(start).Seconds())
	if err != nil {
		// Not acknowledged: the order is refused and its holds go (the deferred release). The
		// client may retry with the same Idempotency-Key, which keeps the order id.
		s.outcomes.WithLabelValues("unavailable").Inc()
		return Accepted{}, fmt.Errorf("produce OrderPlaced %s: %w: %w", req.OrderID, order.ErrUnavailable, err)
	}
	acked = true
	if priorityReason != "" {
		s.priority.WithLabelValues(priorityReason).Inc()
	}
	s.outcomes.WithLabelValues("accepted").Inc()
	s.log.LogAttrs(ctx, slog.LevelDebug, "order accepted", slog.String("order_id", req.OrderID), slog.String("event_id", env.ID), slog.String("topic", topic))
	return Accepted{View: view, Doc: doc}, nil
}

// lane is the topic an order travels on, and why: the priority lane, drained first, for express
// orders and for trade accounts' orders (whatever their shipping); the standard lane (reason "")
// for the rest.
func (s *Service) lane(req Request) (topic, reason string) {
	switch {
	case req.Priority == order.PriorityExpress:
		return event.TopicOrdersPlacedPriority, "express"
	case s.cfg.TradeAccounts != nil && s.cfg.TradeAccounts.Trade(req.CustomerID):
		return event.TopicOrdersPlacedPriority, "trade_account"
	}
	return event.TopicOrdersPlaced, ""
}

// release gives back the holds of a refused order. It runs detached from the request's context
// so a client that hung up does not leave units held; if Redis is gone too, the hold deadline
// returns the units later.
func (s *Service) release(orderID string, skus []string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := s.stock.Release(ctx, orderID, skus); err != nil {
		s.log.Error("release holds of refused order; the hold deadline will return them", "order_id", orderID, "err", err)
	}
}

// knownSoldOut lists the lines whose SKU is known to be sold out (available 0). The other lines
// are not looked at: the order is refused either way, and looking would cost the Redis call the
// fast path saves.
func (s *Service) knownSoldOut(lines []LineRequest) []order.Shortage {
	var short []order.Shortage
	for _, l := range lines {
		if s.cfg.SoldOut.SoldOut(l.SKU) {
			short = append(short, order.Shortage{SKU: l.SKU, Requested: l.Quantity})
		}
	}
	return short
}

// priced is a request priced at its acceptance time: every line with its base price and the
// promotion window in effect, if any.
type priced struct {
	lines        []pricedLine
	shipping     int64
	holdDeadline time.Time
}

type pricedLine struct {
	order.Line                   // base price
	window     *promotion.Window // the promotion pricing the SKU at acceptance; nil: none
}

// price looks every line up in the catalog and the published price timelines: two map lookups
// per line, no query and no computation beyond picking the window that contains at.
func (s *Service) price(req Request, at time.Time) (priced, error) {
	var problems []order.FieldError
	lines := make([]pricedLine, 0, len(req.Lines))
	for i, l := range req.Lines {
		p, ok := s.catalog.Get(l.SKU)
		switch {
		case !ok:
			problems = append(problems, order.FieldError{Field: fmt.Sprintf("lines[%d].sku", i), Detail: fmt.Sprintf("unknown SKU %q", l.SKU)})
			continue
		case !p.Active:
			problems = append(problems, order.FieldError{Field: fmt.Sprintf("lines[%d].sku", i), Detail: fmt.Sprintf("SKU %q is not for sale", l.SKU)})
			continue
		case p.Currency != s.cfg.Currency:
			problems = append(problems, order.FieldError{Field: fmt.Sprintf("lines[%d].sku", i), Detail: fmt.Sprintf("SKU %q is priced in %s, the shop sells in %s", l.SKU, p.Currency, s.cfg.Currency)})
			continue
		case p.PriceMinor > order.MaxUnitPriceMinor:
			// A catalog entry from before the bound: no consumer could store its sums.
			problems = append(problems, order.FieldError{Field: fmt.Sprintf("lines[%d].sku", i), Detail: fmt.Sprintf("SKU %q is priced above the highest unit price (%d); it cannot be ordered until its price is fixed", l.SKU, order.MaxUnitPriceMinor)})
			continue
		}
		pl := pricedLine{Line: order.Line{SKU: p.SKU, Name: p.Name, Quantity: l.Quantity, UnitPriceMinor: p.PriceMinor}}
		if s.cfg.Prices != nil {
			if w, ok := s.cfg.Prices.At(p.SKU, at); ok {
				pl.window = &w
			}
		}
		lines = append(lines, pl)
	}
	if len(problems) > 0 {
		return priced{}, &order.InvalidError{Problems: problems}
	}
	shipping := s.cfg.ShippingStandardMinor
	if req.Priority == order.PriorityExpress {
		shipping = s.cfg.ShippingExpressMinor
	}
	return priced{lines: lines, shipping: shipping, holdDeadline: at.Add(s.cfg.HoldTTL)}, nil
}

// build turns a priced, reserved request into its OrderPlaced event. promotional says, per SKU,
// how many units the reservation granted at the promotional price; they go to the SKU's first
// lines, and a line that is only partly promotional becomes two lines (promotional units first).
func (s *Service) build(req Request, pr priced, promotional map[string]int64, at time.Time) (event.OrderPlaced, error) {
	left := make(map[string]int64, len(promotional))
	for sku, n := range promotional {
		left[sku] = n
	}
	lines := make([]order.Line, 0, len(pr.lines))
	for _, l := range pr.lines {
		if w := l.window; w != nil && left[l.SKU] > 0 {
			n := min(l.Quantity, left[l.SKU])
			left[l.SKU] -= n
			lines = append(lines, order.Line{SKU: l.SKU, Name: l.Name, Quantity: n, UnitPriceMinor: w.PriceMinor, PromotionID: w.PromotionID})
			if rest := l.Quantity - n; rest > 0 {
				lines = append(lines, order.Line{SKU: l.SKU, Name: l.Name, Quantity: rest, UnitPriceMinor: l.UnitPriceMinor})
			}
			continue
		}
		lines = append(lines, l.Line)
	}
	totals, err := order.Price(lines, pr.shipping)
	if err != nil {
		return event.OrderPlaced{}, &order.InvalidError{Problems: []order.FieldError{{Field: "lines", Detail: err.Error()}}}
	}
	ev := event.OrderPlaced{
		OrderID:         req.OrderID,
		PlacedAt:        at,
		CustomerID:      req.CustomerID,
		Email:           req.Email,
		Priority:        string(req.Priority),
		Currency:        s.cfg.Currency,
		SubtotalMinor:   totals.SubtotalMinor,
		ShippingMinor:   totals.ShippingMinor,
		TotalMinor:      totals.TotalMinor,
		Payment:         req.Payment,
		ShippingAddress: req.Address,
		HoldDeadline:    pr.holdDeadline,
		APIKeyID:        req.APIKeyID,
	}
	ev.IdempotencyFingerprint = req.IdempotencyFingerprint
	for i, l := range lines {
		lt, _ := l.TotalMinor() // checked by order.Price
		ev.Lines = append(ev.Lines, event.OrderLine{
			LineNo: i + 1, SKU: l.SKU, Name: l.Name, Quantity: int(l.Quantity),
			UnitPriceMinor: l.UnitPriceMinor, LineTotalMinor: lt, PromotionID: l.PromotionID,
		})
	}
	return ev, nil
}

// invalidFromSchema turns a schema violation of the event we were about to produce into a 422
// naming the fields. Request validation mirrors the schema, so this is a second line of defence.
func invalidFromSchema(err error) error {
	var ve *event.ValidationError
	if !errors.As(err, &ve) {
		return &order.InvalidError{Problems: []order.FieldError{{Field: "", Detail: err.Error()}}}
	}
	problems := make([]order.FieldError, len(ve.Problems))
	for i, p := range ve.Problems {
		problems[i] = order.FieldError{Field: p.Field, Detail: p.Detail}
	}
	return &order.InvalidError{Problems: problems}
}

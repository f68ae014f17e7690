// Package inventorysync is the inventory-sync process: it consumes warehouse stock events
// (snapshots, adjustments, shipments) from inventory.stock in consumer group inventory-sync,
// applies them to the stock truth in Postgres in one transaction per batch, and moves Redis
// available-to-promise by exactly what changed, so the holds of orders in flight stay held.
//
// The steps of a batch, and why a crash between any two applies nothing twice:
//
//  1. decode and validate every record; one that is not a well-formed stock event, or whose
//     record key is not its SKU, or whose SKU is not in the catalog, is permanent: it goes to
//     the dead-letter topic inventory-sync.dlq and the partition moves on.
//  2. apply in Postgres (one transaction): an event is applied only if its seq is above the last
//     one applied for its warehouse and SKU (I7); it records what it changed in stock_deltas. A
//     crash before the commit leaves nothing.
//  3. move Redis ATP by each applied event's delta (stock_delta.lua). The script keeps, per SKU
//     and warehouse, the seq of the last event it counted, so a redelivered event (a crash after
//     step 2, found in Postgres as a duplicate with its recorded delta) counts once.
//  4. publish OrderShipped for shipments whose order is now shipped (deterministic event id: a
//     re-publish is the same event).
//  5. commit the offset (the consumer does, only after steps 2-4 succeeded).
//
// Order matters, so failures are retried in place (consumer.Config.InPlaceOnly): the partition
// pauses and retries with backoff instead of moving the record to a retry topic.
package inventorysync

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderpipe/orderpipe/internal/consumer"
	"github.com/orderpipe/orderpipe/internal/event"
	"github.com/orderpipe/orderpipe/internal/postgres"
	"github.com/orderpipe/orderpipe/internal/redisstore"
)

// Store is the Postgres side: the stock truth.
type Store interface {
	ApplyStock(ctx context.Context, events []postgres.StockEvent) ([]postgres.StockResult, error)
	ShippedOrders(ctx context.Context, ids []string) ([]postgres.ShippedOrder, error)
}

// Counters is the Redis side: available-to-promise.
type Counters interface {
	ApplyStockDeltas(ctx context.Context, deltas map[string][]redisstore.StockDelta) (map[string]redisstore.DeltaResult, error)
	PublishStockChanged(ctx context.Context, skus ...string) error
}

// Producer publishes OrderShipped events.
type Producer interface {
	ProduceSync(ctx context.Context, rs ...*kgo.Record) kgo.ProduceResults
}

// ErrUnknownSKU means a stock event names a SKU that is not in the catalog. It is permanent: the
// record goes to the dead-letter topic, where ops can re-drive it after adding the product.
var ErrUnknownSKU = errors.New("sku not in the catalog")

// Processor is the consumer.Handler of inventory-sync.
type Processor struct {
	source    string
	store     Store
	counters  Counters
	producer  Producer
	validator *event.Validator
	log       *slog.Logger

	applied       *prometheus.CounterVec
	ignored       *prometheus.CounterVec
	clamped       prometheus.Counter
	unmatched     prometheus.Counter
	noCounters    prometheus.Counter
	shortfallSKUs prometheus.Gauge
	shortfallUnit prometheus.Gauge
}

// NewProcessor builds the processor; source is the CloudEvents source of OrderShipped.
func NewProcessor(source string, store Store, counters Counters, producer Producer, v *event.Validator, log *slog.Logger, reg prometheus.Registerer) *Processor {
	f := promauto.With(reg)
	p := &Processor{
		source: source, store: store, counters: counters, producer: producer, validator: v, log: log,
		applied: f.NewCounterVec(prometheus.CounterOpts{
			Name: "orderpipe_inventory_events_applied_total",
			Help: "Warehouse stock events applied to the stock truth, by type (level, adjusted, shipped).",
		}, []string{"type"}),
		ignored: f.NewCounterVec(prometheus.CounterOpts{
			Name: "orderpipe_inventory_events_ignored_total",
			Help: "Warehouse stock events that changed nothing, by reason: stale (seq at or below the last applied one, I7), duplicate (applied before; its Redis step is repeated idempotently), unknown_sku (dead-lettered), invalid (dead-lettered).",
		}, []string{"reason"}),
		clamped: f.NewCounter(prometheus.CounterOpts{
			Name: "orderpipe_inventory_clamped_units_total",
			Help: "Units by which adjustments or shipments would have taken a warehouse below zero; its level stopped at zero.",
		}),
		unmatched: f.NewCounter(prometheus.CounterOpts{
			Name: "orderpipe_inventory_unmatched_shipped_units_total",
			Help: "Shipped units that matched no open allocation (unknown, cancelled or fully shipped order); they only left the warehouse's stock.",
		}),
		noCounters: f.NewCounter(prometheus.CounterOpts{
			Name: "orderpipe_inventory_redis_missing_total",
			Help: "Batches of a SKU whose Redis counters were missing: ATP was not moved (reconciliation rebuilds it from Postgres).",
		}),
		shortfallSKUs: f.NewGauge(prometheus.GaugeOpts{
			Name: "orderpipe_inventory_shortfall_skus",
			Help: "SKUs whose warehouses report fewer units than confirmed orders have allocated.",
		}),
		shortfallUnit: f.NewGauge(prometheus.GaugeOpts{
			Name: "orderpipe_inventory_shortfall_units",
			Help: "Allocated units the warehouses no longer report, summed over SKUs (stock.shortfall).",
		}),
	}
	for _, t := range []string{postgres.StockKindLevel, postgres.StockKindAdjusted, postgres.StockKindShipped} {
		p.applied.WithLabelValues(t)
	}
	for _, r := range []string{postgres.StockStale, postgres.StockDuplicate, postgres.StockUnknownSKU, "invalid"} {
		p.ignored.WithLabelValues(r)
	}
	return p
}

// SetShortfall updates the shortfall gauges (Run refreshes them from Postgres).
func (p *Processor) SetShortfall(skus, units int64) {
	p.shortfallSKUs.Set(float64(skus))
	p.shortfallUnit.Set(float64(units))
}

// batchTimeout bounds one batch's work, so a hung dependency turns into a retry.
const batchTimeout = 60 * time.Second

// kindOf maps a stock event type to the kind the store applies.
func kindOf(eventType string) (string, bool) {
	switch eventType {
	case event.TypeStockLevel:
		return postgres.StockKindLevel, true
	case event.TypeStockAdjusted:
		return postgres.StockKindAdjusted, true
	case event.TypeStockShipped:
		return postgres.StockKindShipped, true
	}
	return "", false
}

// Handle applies one poll batch (consumer.Handler).
func (p *Processor) Handle(ctx context.Context, recs []*kgo.Record) []error {
	ctx, cancel := context.WithTimeout(ctx, batchTimeout)
	defer cancel()
	errs := make([]error, len(recs))
	decoded := p.decodeAll(recs, errs)
	events := make([]postgres.StockEvent, 0, len(recs))
	idx := make([]int, 0, len(recs))
	for i := range recs {
		if errs[i] != nil {
			p.ignored.WithLabelValues("invalid").Inc()
			continue
		}
		events = append(events, decoded[i])
		idx = append(idx, i)
	}
	if len(events) == 0 {
		return errs
	}
	res, err := p.store.ApplyStock(ctx, events)
	if err != nil {
		for _, i := range idx {
			errs[i] = consumer.Transient(err)
		}
		return errs
	}

	deltas := map[string][]redisstore.StockDelta{}
	owners := map[string][]int{}  // SKU -> records whose Redis step is in deltas
	shipped := map[string][]int{} // order id -> shipment records of a shipped order
	for j, r := range res {
		e, i := events[j], idx[j]
		switch r.Outcome {
		case postgres.StockUnknownSKU:
			errs[i] = consumer.Permanent(fmt.Errorf("stock event %s of %s: %s: %w", e.EventID, e.WarehouseID, e.SKU, ErrUnknownSKU))
			p.ignored.WithLabelValues(r.Outcome).Inc()
			continue
		case postgres.StockApplied:
			p.applied.WithLabelValues(e.Kind).Inc()
		default:
			p.ignored.WithLabelValues(r.Outcome).Inc()
		}
		if r.Outcome == postgres.StockApplied || r.Outcome == postgres.StockDuplicate {
			deltas[e.SKU] = append(deltas[e.SKU], redisstore.StockDelta{WarehouseID: e.WarehouseID, Seq: e.Seq, ATP: r.DeltaATP})
			owners[e.SKU] = append(owners[e.SKU], i)
		}
		if r.ShippedOrder != "" {
			shipped[r.ShippedOrder] = append(shipped[r.ShippedOrder], i)
		}
		if r.Outcome != postgres.StockApplied {
			continue
		}
		if r.Clamped > 0 {
			p.clamped.Add(float64(r.Clamped))
			p.log.Warn("warehouse level would go below zero; stopped at zero", "event_id", e.EventID,
				"warehouse_id", e.WarehouseID, "sku", e.SKU, "seq", e.Seq, "units", r.Clamped)
		}
		if r.Unmatched > 0 {
			p.unmatched.Add(float64(r.Unmatched))
			p.log.Warn("shipped units match no open allocation", "event_id", e.EventID, "warehouse_id", e.WarehouseID,
				"sku", e.SKU, "order_id", e.OrderID, "units", r.Unmatched)
		}
		if r.Shortfall > 0 {
			p.log.Warn("warehouses report fewer units than are allocated", "event_id", e.EventID,
				"warehouse_id", e.WarehouseID, "sku", e.SKU, "shortfall", r.Shortfall)
		}
	}

	p.moveATP(ctx, deltas, owners, errs)
	p.publishShipped(ctx, shipped, errs)
	return errs
}

// decodeAll decodes every record, setting a permanent error for those that cannot be applied.
// Schema validation is most of the handler's CPU, so a large batch is decoded on every core.
func (p *Processor) decodeAll(recs []*kgo.Record, errs []error) []postgres.StockEvent {
	out := make([]postgres.StockEvent, len(recs))
	one := func(i int) {
		e, err := p.decode(recs[i])
		out[i], errs[i] = e, consumer.Permanent(err)
	}
	workers := min(runtime.GOMAXPROCS(0), len(recs)/64)
	if workers < 2 {
		for i := range recs {
			one(i)
		}
		return out
	}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < len(recs); i += workers {
				one(i)
			}
		})
	}
	wg.Wait()
	return out
}

func (p *Processor) decode(r *kgo.Record) (postgres.StockEvent, error) {
	env, err := event.FromRecord(r)
	if err != nil {
		return postgres.StockEvent{}, err
	}
	kind, ok := kindOf(env.Type)
	if !ok {
		return postgres.StockEvent{}, fmt.Errorf("event %s: type %q is not a stock event: %w", env.ID, env.Type, event.ErrUnknownType)
	}
	e, err := event.DecodeStock(p.validator, env)
	if err != nil {
		return postgres.StockEvent{}, err
	}
	if string(r.Key) != e.SKU {
		// Ordering per SKU relies on the key: a record keyed otherwise may sit in another
		// partition than the SKU's other events.
		return postgres.StockEvent{}, fmt.Errorf("event %s: record key %q is not its sku %q (key stock events by SKU)", env.ID, r.Key, e.SKU)
	}
	return postgres.StockEvent{
		EventID: env.ID, Kind: kind, WarehouseID: e.WarehouseID, SKU: e.SKU, Seq: e.Seq, OccurredAt: e.OccurredAt,
		OnHand: e.OnHand, Delta: e.Delta, OrderID: e.OrderID, Quantity: e.Quantity,
	}, nil
}

// moveATP sends the batch's deltas to Redis and announces SKUs that gained units, so api
// instances that cached them as sold out look again.
func (p *Processor) moveATP(ctx context.Context, deltas map[string][]redisstore.StockDelta, owners map[string][]int, errs []error) {
	if len(deltas) == 0 {
		return
	}
	got, err := p.counters.ApplyStockDeltas(ctx, deltas)
	var gained []string
	for sku, is := range owners {
		r, ok := got[sku]
		if !ok {
			for _, i := range is {
				errs[i] = consumer.Transient(fmt.Errorf("move ATP of %s: %w", sku, err))
			}
			continue
		}
		if r.Missing {
			p.noCounters.Inc()
			p.log.Warn("no Redis counters for the SKU; ATP not moved (reconciliation rebuilds it)", "sku", sku, "events", r.Counted)
		}
		if r.Moved > 0 {
			gained = append(gained, sku)
		}
	}
	if len(gained) > 0 {
		slices.Sort(gained)
		if err := p.counters.PublishStockChanged(ctx, gained...); err != nil {
			p.log.Warn("stock-changed announcement lost; api caches expire on their own", "skus", len(gained), "err", err)
		}
	}
}

// publishShipped publishes OrderShipped for each shipped order, with a deterministic id.
func (p *Processor) publishShipped(ctx context.Context, shipped map[string][]int, errs []error) {
	if len(shipped) == 0 {
		return
	}
	fail := func(id string, err error) {
		for _, i := range shipped[id] {
			if errs[i] == nil {
				errs[i] = consumer.Transient(err)
			}
		}
	}
	ids := make([]string, 0, len(shipped))
	for id := range shipped {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	orders, err := p.store.ShippedOrders(ctx, ids)
	if err != nil {
		for _, id := range ids {
			fail(id, err)
		}
		return
	}
	var recs []*kgo.Record
	owners := map[*kgo.Record]string{}
	for _, o := range orders {
		env, err := p.orderShipped(o)
		if err != nil {
			fail(o.ID, err)
			continue
		}
		rec := env.Record(event.TopicOrderEvents, []byte(o.ID))
		recs = append(recs, rec)
		owners[rec] = o.ID
	}
	if len(recs) == 0 {
		return
	}
	// Results come back in completion order: match them by record.
	for _, r := range p.producer.ProduceSync(ctx, recs...) {
		if r.Err != nil {
			id := owners[r.Record]
			fail(id, fmt.Errorf("publish OrderShipped of %s: %w", id, r.Err))
		}
	}
}

func (p *Processor) orderShipped(o postgres.ShippedOrder) (event.Envelope, error) {
	var addr event.Address
	if err := json.Unmarshal(o.ShippingAddress, &addr); err != nil {
		return event.Envelope{}, fmt.Errorf("order %s: shipping address: %w", o.ID, err)
	}
	d := event.OrderShipped{
		OrderID: o.ID, CustomerID: o.CustomerID, Email: o.Email, Priority: o.Priority, Currency: o.Currency,
		SubtotalMinor: o.SubtotalMinor, ShippingMinor: o.ShippingMinor, TotalMinor: o.TotalMinor,
		ShippingAddress: addr, PlacedAt: o.PlacedAt.UTC(), ShippedAt: o.ShippedAt.UTC(),
	}
	for _, l := range o.Lines {
		d.Lines = append(d.Lines, event.OrderLine{LineNo: l.LineNo, SKU: l.SKU, Name: l.Name, Quantity: l.Quantity,
			UnitPriceMinor: l.UnitPriceMinor, LineTotalMinor: int64(l.Quantity) * l.UnitPriceMinor, PromotionID: l.PromotionID})
	}
	env, err := event.NewEnvelope(p.source, o.ID, d.ShippedAt, d)
	if err != nil {
		return event.Envelope{}, err
	}
	if err := p.validator.Validate(env.Type, env.Data); err != nil {
		return event.Envelope{}, fmt.Errorf("OrderShipped of %s: %w", o.ID, err)
	}
	return env, nil
}

package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Kinds of warehouse stock events.
const (
	StockKindLevel    = "level"    // absolute on_hand of the warehouse
	StockKindAdjusted = "adjusted" // signed delta of the warehouse's on_hand
	StockKindShipped  = "shipped"  // units of a confirmed order left the warehouse
)

// Outcomes of applying one stock event.
const (
	StockApplied    = "applied"     // changed the stock (or confirmed it) and advanced last_seq
	StockDuplicate  = "duplicate"   // this very event was applied before; DeltaATP is what it changed
	StockStale      = "stale"       // its seq is at or below the last applied one (I7): nothing changed
	StockUnknownSKU = "unknown_sku" // the SKU is not in the catalog: nothing changed
)

// StockEvent is one warehouse stock event to apply.
type StockEvent struct {
	EventID     string // the producer's event id (ce_id)
	Kind        string // StockKindLevel, StockKindAdjusted or StockKindShipped
	WarehouseID string
	SKU         string
	Seq         int64
	OccurredAt  time.Time
	OnHand      int64  // level
	Delta       int64  // adjusted
	OrderID     string // shipped (a UUID)
	Quantity    int64  // shipped
}

// StockResult is what applying one stock event did.
type StockResult struct {
	Outcome string
	// DeltaOnHand is the change of stock.on_hand and DeltaATP the change of
	// stock.on_hand - stock.allocated: what Redis available-to-promise must move by. For a
	// duplicate they are what the event changed when it was applied (zero if that record was
	// pruned).
	DeltaOnHand, DeltaATP int64
	// Clamped is how many units the warehouse's on_hand would have gone below zero (an
	// adjustment or shipment bigger than its level); it stopped at zero.
	Clamped int64
	// Unmatched is how many shipped units did not come off an allocation (unknown, cancelled or
	// already fully shipped order); they only left the warehouse's on_hand.
	Unmatched int64
	// Shortfall is the SKU's shortfall after the event: allocated units the warehouses no
	// longer report.
	Shortfall int64
	// ShippedOrder is the order id of a shipment whose order is shipped (by this event or
	// before): its OrderShipped event must be published.
	ShippedOrder string
}

// Warehouse is a registered warehouse: only these may post to the webhook. A nil Secret means
// it may post unsigned.
type Warehouse struct {
	ID        string
	Name      string
	Secret    []byte
	CreatedAt time.Time
}

// WarehouseLevel is one warehouse's stock of one SKU.
type WarehouseLevel struct {
	WarehouseID string
	OnHand      int64
	LastSeq     int64
}

// ShippedOrder is a shipped order with what its OrderShipped event carries.
type ShippedOrder struct {
	Order
	ShippedAt time.Time
}

// InventoryStore applies warehouse stock events to the stock truth.
type InventoryStore struct {
	pool *pgxpool.Pool
}

// NewInventoryStore returns an InventoryStore over pool.
func NewInventoryStore(pool *pgxpool.Pool) *InventoryStore { return &InventoryStore{pool: pool} }

type deltaKey struct {
	warehouse, sku string
	seq            int64
}

type appliedDelta struct {
	eventID         string
	onHand, atp     int64
	fresh           bool
	kind            string
	warehouse, sku  string
	seq             int64
	occurredAt      time.Time
	orderID         string
	quantity, match int64
}

type whState struct {
	onHand, lastSeq int64
	dirty           bool
}

type skuState struct {
	onHand, allocated, shortfall, sum int64
	wh                                map[string]*whState
	dirty                             bool
}

type allocState struct {
	quantity, shipped int64
	dirty             bool
}

type orderState struct {
	status    string
	allocs    map[string]*allocState // by SKU
	shippedAt time.Time
	dirty     bool
}

// ApplyStock applies a batch of stock events in one transaction, in the given order (events of
// one SKU must be in the order they were published: their partition order), and returns one
// result per event.
//
// The transaction locks the stock rows of the batch's SKUs in SKU order (the lock order
// order-worker uses too), so concurrent appliers serialize per SKU, and an event is applied only
// if its seq is above the last one applied for its warehouse and SKU (I7). Per SKU:
//
//	stock.on_hand   = greatest(sum of the warehouses' on_hand, stock.allocated)
//	stock.shortfall = greatest(stock.allocated - sum of the warehouses' on_hand, 0)
//
// A shipment lowers the warehouse's on_hand and the order's allocation together; the order
// becomes shipped when every allocated unit has shipped. Every applied event leaves a
// stock_deltas row with what it changed, so a redelivered event can repeat its Redis step.
func (s *InventoryStore) ApplyStock(ctx context.Context, events []StockEvent) ([]StockResult, error) {
	res := make([]StockResult, len(events))
	if len(events) == 0 {
		return res, nil
	}
	skuSet := map[string]bool{}
	orderSet := map[string]bool{}
	for i, e := range events {
		switch {
		case e.Kind != StockKindLevel && e.Kind != StockKindAdjusted && e.Kind != StockKindShipped:
			return nil, fmt.Errorf("apply stock event %s: kind %q", e.EventID, e.Kind)
		case e.Seq < 1:
			return nil, fmt.Errorf("apply stock event %s: seq %d, want at least 1", e.EventID, e.Seq)
		case e.SKU == "" || e.WarehouseID == "" || e.EventID == "":
			return nil, fmt.Errorf("apply stock event %d: empty sku, warehouse or event id", i)
		}
		if e.Kind == StockKindShipped {
			if _, err := uuid.Parse(e.OrderID); err != nil {
				return nil, fmt.Errorf("apply stock event %s: order id %q: %w", e.EventID, e.OrderID, err)
			}
			if e.Quantity < 1 {
				return nil, fmt.Errorf("apply stock event %s: quantity %d, want at least 1", e.EventID, e.Quantity)
			}
			orderSet[e.OrderID] = true
		}
		skuSet[e.SKU] = true
	}
	skus := sortedKeys(skuSet)
	orderIDs := sortedKeys(orderSet)

	// A catalog SKU without a stock row gets one (zero units) first, in its own statement: creating
	// it inside the batch's transaction would take its row lock after the locks of the existing
	// rows, out of SKU order, and deadlock with a concurrent applier doing the same. The second
	// pass treats SKUs still without a row (outside the catalog) as unknown.
	for pass := 0; ; pass++ {
		var missing []string
		err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
			clear(res)
			st, err := readStock(ctx, tx, events, skus, orderIDs)
			if err != nil {
				return err
			}
			if pass == 0 {
				for _, sku := range skus {
					if st.skus[sku] == nil {
						missing = append(missing, sku)
					}
				}
				if len(missing) > 0 {
					return errMissingStock
				}
			}
			var fresh []*appliedDelta
			for i, e := range events {
				r, d := applyOne(e, st.skus, st.deltas, st.orders)
				res[i] = r
				if d != nil {
					fresh = append(fresh, d)
				}
			}
			return writeStock(ctx, tx, st.skus, fresh, st.orders)
		})
		if errors.Is(err, errMissingStock) {
			if _, err := s.pool.Exec(ctx, createStockSQL, missing); err != nil {
				return nil, fmt.Errorf("apply %d stock events: create stock rows: %w", len(events), err)
			}
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("apply %d stock events: %w", len(events), err)
		}
		return res, nil
	}
}

// errMissingStock rolls back a batch's first pass when a SKU of it has no stock row yet.
var errMissingStock = errors.New("stock rows missing")

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// batchState is what a batch's transaction read: the locked stock rows with their warehouses,
// the delta records of the batch's (warehouse, SKU, seq) keys, and the shipped orders'
// allocations.
type batchState struct {
	skus   map[string]*skuState
	deltas map[deltaKey]*appliedDelta
	orders map[string]*orderState
}

// The queries of a batch join with unnest($1) rather than filter with = ANY($1): with a prepared
// statement's generic plan, = ANY of a parameter is matched linearly per row, which costs tens of
// milliseconds for a batch of hundreds of SKUs; the join is hashed or uses the index.
const (
	lockStockSQL = `
SELECT s.sku, s.on_hand, s.allocated, s.shortfall
FROM stock s JOIN unnest($1::text[]) AS u(sku) ON s.sku = u.sku
ORDER BY s.sku FOR UPDATE OF s`
	warehouseStockSQL = `
SELECT w.sku, w.warehouse_id, w.on_hand, w.last_seq
FROM warehouse_stock w JOIN unnest($1::text[]) AS u(sku) ON w.sku = u.sku`
	deltasSQL = `
SELECT d.warehouse_id, d.sku, d.seq, d.event_id, d.delta_on_hand, d.delta_atp
FROM stock_deltas d JOIN unnest($1::text[], $2::text[], $3::bigint[]) AS u(w, s, q)
  ON d.warehouse_id = u.w AND d.sku = u.s AND d.seq = u.q`
	// Every allocation of the shipped orders, locked in (order, SKU) order, so two appliers
	// shipping lines of the same order serialize without deadlocks.
	allocationsSQL = `
SELECT a.order_id::text, a.sku, a.quantity, a.shipped, o.status
FROM allocations a JOIN orders o ON o.id = a.order_id
WHERE a.order_id IN (SELECT unnest($1::uuid[]))
ORDER BY a.order_id, a.sku
FOR UPDATE OF a`
	createStockSQL = `
INSERT INTO stock (sku) SELECT p.sku FROM products p JOIN unnest($1::text[]) AS u(sku) ON p.sku = u.sku
ORDER BY p.sku ON CONFLICT (sku) DO NOTHING`
)

// readStock locks the stock rows of the batch's SKUs in SKU order (the lock order order-worker
// uses too) and reads what applying the batch needs, in one round trip as a rule. SKUs without a
// stock row are absent from the result.
func readStock(ctx context.Context, tx pgx.Tx, events []StockEvent, skus, orderIDs []string) (batchState, error) {
	st := batchState{skus: make(map[string]*skuState, len(skus)), deltas: map[deltaKey]*appliedDelta{}, orders: map[string]*orderState{}}
	b := &pgx.Batch{}
	b.Queue(lockStockSQL, skus)
	b.Queue(warehouseStockSQL, skus)
	if len(orderIDs) > 0 {
		b.Queue(allocationsSQL, orderIDs)
	}
	br := tx.SendBatch(ctx, b)
	err := readAll(br, st, len(orderIDs) > 0)
	if cerr := br.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("read stock: %w", cerr)
	}
	if err != nil {
		return batchState{}, err
	}
	// The delta records of events at or below their last_seq (duplicates or stale ones; usually
	// none): one more round trip only when there are some.
	var ws, ss []string
	var qs []int64
	for _, e := range events {
		if s := st.skus[e.SKU]; s != nil {
			if w := s.wh[e.WarehouseID]; w != nil && e.Seq <= w.lastSeq {
				ws, ss, qs = append(ws, e.WarehouseID), append(ss, e.SKU), append(qs, e.Seq)
			}
		}
	}
	if len(ws) == 0 {
		return st, nil
	}
	rows, err := tx.Query(ctx, deltasSQL, ws, ss, qs)
	if err != nil {
		return batchState{}, fmt.Errorf("load applied deltas: %w", err)
	}
	if err := scanDeltas(rows, st); err != nil {
		return batchState{}, err
	}
	return st, nil
}

func readAll(br pgx.BatchResults, st batchState, withOrders bool) error {
	rows, err := br.Query()
	if err != nil {
		return fmt.Errorf("lock stock: %w", err)
	}
	if err := scanStock(rows, st); err != nil {
		return err
	}
	if rows, err = br.Query(); err != nil {
		return fmt.Errorf("load warehouse stock: %w", err)
	}
	if err := scanWarehouses(rows, st); err != nil {
		return err
	}
	if !withOrders {
		return nil
	}
	if rows, err = br.Query(); err != nil {
		return fmt.Errorf("lock allocations: %w", err)
	}
	return scanAllocations(rows, st)
}

func scanStock(rows pgx.Rows, st batchState) error {
	defer rows.Close()
	for rows.Next() {
		s := &skuState{wh: map[string]*whState{}}
		var sku string
		if err := rows.Scan(&sku, &s.onHand, &s.allocated, &s.shortfall); err != nil {
			return fmt.Errorf("lock stock: %w", err)
		}
		st.skus[sku] = s
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("lock stock: %w", err)
	}
	return nil
}

func scanWarehouses(rows pgx.Rows, st batchState) error {
	defer rows.Close()
	for rows.Next() {
		var sku, wh string
		w := &whState{}
		if err := rows.Scan(&sku, &wh, &w.onHand, &w.lastSeq); err != nil {
			return fmt.Errorf("load warehouse stock: %w", err)
		}
		if s := st.skus[sku]; s != nil {
			s.wh[wh] = w
			s.sum += w.onHand
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("load warehouse stock: %w", err)
	}
	return nil
}

func scanDeltas(rows pgx.Rows, st batchState) error {
	defer rows.Close()
	for rows.Next() {
		var k deltaKey
		d := &appliedDelta{}
		if err := rows.Scan(&k.warehouse, &k.sku, &k.seq, &d.eventID, &d.onHand, &d.atp); err != nil {
			return fmt.Errorf("load applied deltas: %w", err)
		}
		st.deltas[k] = d
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("load applied deltas: %w", err)
	}
	return nil
}

func scanAllocations(rows pgx.Rows, st batchState) error {
	defer rows.Close()
	for rows.Next() {
		var id, sku, status string
		a := &allocState{}
		if err := rows.Scan(&id, &sku, &a.quantity, &a.shipped, &status); err != nil {
			return fmt.Errorf("lock allocations: %w", err)
		}
		o := st.orders[id]
		if o == nil {
			o = &orderState{status: status, allocs: map[string]*allocState{}}
			st.orders[id] = o
		}
		o.allocs[sku] = a
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("lock allocations: %w", err)
	}
	return nil
}

// applyOne applies e to the in-memory state and returns its result, and the delta record when
// it was applied now.
func applyOne(e StockEvent, state map[string]*skuState, deltas map[deltaKey]*appliedDelta, orders map[string]*orderState) (StockResult, *appliedDelta) {
	st := state[e.SKU]
	if st == nil {
		return StockResult{Outcome: StockUnknownSKU}, nil
	}
	w := st.wh[e.WarehouseID]
	if w == nil {
		w = &whState{}
		st.wh[e.WarehouseID] = w
	}
	key := deltaKey{e.WarehouseID, e.SKU, e.Seq}
	if e.Seq <= w.lastSeq {
		r := StockResult{Outcome: StockStale, Shortfall: st.shortfall}
		if d := deltas[key]; d != nil && d.eventID == e.EventID {
			r.Outcome, r.DeltaOnHand, r.DeltaATP = StockDuplicate, d.onHand, d.atp
		}
		if o := orders[e.OrderID]; e.Kind == StockKindShipped && o != nil && o.status == "shipped" {
			r.ShippedOrder = e.OrderID
		}
		return r, nil
	}

	var r StockResult
	beforeOnHand, beforeAlloc, prev := st.onHand, st.allocated, w.onHand
	clampAt0 := func(n int64) int64 {
		if n < 0 {
			r.Clamped = -n
			return 0
		}
		return n
	}
	d := &appliedDelta{eventID: e.EventID, fresh: true, kind: e.Kind, warehouse: e.WarehouseID, sku: e.SKU, seq: e.Seq, occurredAt: e.OccurredAt}
	switch e.Kind {
	case StockKindLevel:
		w.onHand = e.OnHand
	case StockKindAdjusted:
		w.onHand = clampAt0(w.onHand + e.Delta)
	case StockKindShipped:
		w.onHand = clampAt0(w.onHand - e.Quantity)
		var matched int64
		o := orders[e.OrderID]
		if o != nil && o.status == "confirmed" {
			if a := o.allocs[e.SKU]; a != nil {
				matched = min(e.Quantity, a.quantity-a.shipped)
				a.shipped += matched
				a.dirty = a.dirty || matched > 0
				st.allocated -= matched
			}
			done := true
			for _, a := range o.allocs {
				done = done && a.shipped == a.quantity
			}
			if done {
				o.status, o.shippedAt, o.dirty = "shipped", e.OccurredAt, true
			}
		}
		if o != nil && o.status == "shipped" {
			r.ShippedOrder = e.OrderID
		}
		r.Unmatched = e.Quantity - matched
		d.orderID, d.quantity, d.match = e.OrderID, e.Quantity, matched
	}
	st.sum += w.onHand - prev
	st.onHand = max(st.sum, st.allocated)
	st.shortfall = max(st.allocated-st.sum, 0)
	w.lastSeq, w.dirty, st.dirty = e.Seq, true, true

	r.Outcome = StockApplied
	r.DeltaOnHand = st.onHand - beforeOnHand
	r.DeltaATP = (st.onHand - st.allocated) - (beforeOnHand - beforeAlloc)
	r.Shortfall = st.shortfall
	d.onHand, d.atp = r.DeltaOnHand, r.DeltaATP
	deltas[key] = d
	return r, d
}

func writeStock(ctx context.Context, tx pgx.Tx, state map[string]*skuState, fresh []*appliedDelta, orders map[string]*orderState) error {
	var (
		whSKU, whID                []string
		whOnHand, whSeq            []int64
		stSKU                      []string
		stOnHand, stAlloc, stShort []int64
	)
	for sku, st := range state {
		if !st.dirty {
			continue
		}
		stSKU, stOnHand, stAlloc, stShort = append(stSKU, sku), append(stOnHand, st.onHand), append(stAlloc, st.allocated), append(stShort, st.shortfall)
		for id, w := range st.wh {
			if w.dirty {
				whSKU, whID, whOnHand, whSeq = append(whSKU, sku), append(whID, id), append(whOnHand, w.onHand), append(whSeq, w.lastSeq)
			}
		}
	}
	if len(stSKU) == 0 {
		return nil
	}
	// Every write goes in one batch: one round trip for the lot.
	b := &pgx.Batch{}
	var what []string
	q := func(name, sql string, args ...any) {
		b.Queue(sql, args...)
		what = append(what, name)
	}
	q("write warehouse stock", `
INSERT INTO warehouse_stock (sku, warehouse_id, on_hand, last_seq)
SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[])
ON CONFLICT (sku, warehouse_id) DO UPDATE
SET on_hand = EXCLUDED.on_hand, last_seq = EXCLUDED.last_seq, updated_at = now()`, whSKU, whID, whOnHand, whSeq)
	// Allocations first: the stock rows are locked, so stock.allocated and the allocation rows
	// change together.
	var aOrder []uuid.UUID
	var aSKU []string
	var aShipped []int64
	var shippedIDs []uuid.UUID
	var shippedAt []time.Time
	for id, o := range orders {
		for sku, a := range o.allocs {
			if a.dirty {
				aOrder, aSKU, aShipped = append(aOrder, uuid.MustParse(id)), append(aSKU, sku), append(aShipped, a.shipped)
			}
		}
		if o.dirty {
			shippedIDs, shippedAt = append(shippedIDs, uuid.MustParse(id)), append(shippedAt, o.shippedAt)
		}
	}
	if len(aOrder) > 0 {
		q("write shipped allocations", `
UPDATE allocations SET shipped = d.shipped
FROM unnest($1::uuid[], $2::text[], $3::bigint[]) AS d(order_id, sku, shipped)
WHERE allocations.order_id = d.order_id AND allocations.sku = d.sku`, aOrder, aSKU, aShipped)
	}
	if len(shippedIDs) > 0 {
		q("mark orders shipped", `
UPDATE orders SET status = 'shipped', shipped_at = d.at, updated_at = now()
FROM unnest($1::uuid[], $2::timestamptz[]) AS d(id, at)
WHERE orders.id = d.id AND orders.status = 'confirmed'`, shippedIDs, shippedAt)
	}
	q("write stock", `
UPDATE stock SET on_hand = d.on_hand, allocated = d.allocated, shortfall = d.shortfall, updated_at = now()
FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[]) AS d(sku, on_hand, allocated, shortfall)
WHERE stock.sku = d.sku`, stSKU, stOnHand, stAlloc, stShort)

	n := len(fresh)
	dW, dS, dID, dKind := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	dSeq, dOn, dATP := make([]int64, n), make([]int64, n), make([]int64, n)
	var shW, shS, shID []string
	var shSeq, shQty, shMatch []int64
	var shOrder []uuid.UUID
	var shAt []time.Time
	for i, d := range fresh {
		dW[i], dS[i], dSeq[i], dID[i], dKind[i], dOn[i], dATP[i] = d.warehouse, d.sku, d.seq, d.eventID, d.kind, d.onHand, d.atp
		if d.kind == StockKindShipped {
			shW, shS, shSeq, shID = append(shW, d.warehouse), append(shS, d.sku), append(shSeq, d.seq), append(shID, d.eventID)
			shOrder, shQty, shMatch, shAt = append(shOrder, uuid.MustParse(d.orderID)), append(shQty, d.quantity), append(shMatch, d.match), append(shAt, d.occurredAt)
		}
	}
	q("record stock deltas", `
INSERT INTO stock_deltas (warehouse_id, sku, seq, event_id, event_type, delta_on_hand, delta_atp)
SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::bigint[], $7::bigint[])
ON CONFLICT DO NOTHING`, dW, dS, dSeq, dID, dKind, dOn, dATP)
	if len(shW) > 0 {
		q("record shipments", `
INSERT INTO shipments (warehouse_id, sku, seq, event_id, order_id, quantity, matched, occurred_at)
SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::uuid[], $6::bigint[], $7::bigint[], $8::timestamptz[])
ON CONFLICT DO NOTHING`, shW, shS, shSeq, shID, shOrder, shQty, shMatch, shAt)
	}
	br := tx.SendBatch(ctx, b)
	for _, name := range what {
		if _, err := br.Exec(); err != nil {
			_ = br.Close()
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	if err := br.Close(); err != nil {
		return fmt.Errorf("write stock batch: %w", err)
	}
	return nil
}

// ShippedOrders returns the orders among ids that are shipped, with their lines, for their
// OrderShipped events.
func (s *InventoryStore) ShippedOrders(ctx context.Context, ids []string) ([]ShippedOrder, error) {
	uids := make([]uuid.UUID, 0, len(ids))
	for _, id := range ids {
		if u, err := uuid.Parse(id); err == nil {
			uids = append(uids, u)
		}
	}
	if len(uids) == 0 {
		return nil, nil
	}
	var out []ShippedOrder
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		out = out[:0]
		rows, err := tx.Query(ctx, `
SELECT id::text, status, customer_id, email, priority, currency, subtotal_minor, shipping_minor,
       total_minor, shipping_address, placed_at, hold_deadline, updated_at, shipped_at
FROM orders WHERE id = ANY($1) AND status = 'shipped' ORDER BY id`, uids)
		if err != nil {
			return err
		}
		byID := map[string]int{}
		for rows.Next() {
			var o ShippedOrder
			var addr []byte
			if err := rows.Scan(&o.ID, &o.Status, &o.CustomerID, &o.Email, &o.Priority, &o.Currency, &o.SubtotalMinor,
				&o.ShippingMinor, &o.TotalMinor, &addr, &o.PlacedAt, &o.HoldDeadline, &o.UpdatedAt, &o.ShippedAt); err != nil {
				rows.Close()
				return err
			}
			o.ShippingAddress = json.RawMessage(addr)
			byID[o.ID] = len(out)
			out = append(out, o)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if len(out) == 0 {
			return nil
		}
		rows, err = tx.Query(ctx, `
SELECT order_id::text, line_no, sku, name, quantity, unit_price_minor, coalesce(promotion_id, '')
FROM order_lines WHERE order_id = ANY($1) ORDER BY order_id, line_no`, uids)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id string
			var l OrderLine
			if err := rows.Scan(&id, &l.LineNo, &l.SKU, &l.Name, &l.Quantity, &l.UnitPriceMinor, &l.PromotionID); err != nil {
				return err
			}
			if i, ok := byID[id]; ok {
				out[i].Lines = append(out[i].Lines, l)
			}
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("load %d shipped orders: %w", len(uids), err)
	}
	return out, nil
}

// WarehouseLevels returns every warehouse's stock of sku, sorted by warehouse.
func (s *InventoryStore) WarehouseLevels(ctx context.Context, sku string) ([]WarehouseLevel, error) {
	rows, err := s.pool.Query(ctx, `SELECT warehouse_id, on_hand, last_seq FROM warehouse_stock WHERE sku = $1 ORDER BY warehouse_id`, sku)
	if err != nil {
		return nil, fmt.Errorf("warehouse stock of %s: %w", sku, err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (WarehouseLevel, error) {
		var l WarehouseLevel
		err := row.Scan(&l.WarehouseID, &l.OnHand, &l.LastSeq)
		return l, err
	})
	if err != nil {
		return nil, fmt.Errorf("warehouse stock of %s: %w", sku, err)
	}
	return out, nil
}

// Shortfall returns how many SKUs have a shortfall and how many units it adds up to.
func (s *InventoryStore) Shortfall(ctx context.Context) (skus, units int64, err error) {
	err = s.pool.QueryRow(ctx, `SELECT count(*), coalesce(sum(shortfall), 0)::bigint FROM stock WHERE shortfall > 0`).Scan(&skus, &units)
	if err != nil {
		return 0, 0, fmt.Errorf("stock shortfall: %w", err)
	}
	return skus, units, nil
}

// PruneStockDeltas deletes the delta records of events applied before t and returns how many.
// Keep them longer than the topic's retention: a replayed event without its record counts as
// stale, so its Redis step is not repeated (it was done long ago).
func (s *InventoryStore) PruneStockDeltas(ctx context.Context, before time.Time) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM stock_deltas WHERE applied_at < $1`, before)
	if err != nil {
		return 0, fmt.Errorf("prune stock deltas: %w", err)
	}
	return tag.RowsAffected(), nil
}

// PutWarehouse creates or replaces a warehouse and its webhook secret (nil: unsigned requests).
func (s *InventoryStore) PutWarehouse(ctx context.Context, w Warehouse) error {
	if w.Secret != nil && len(w.Secret) < 16 {
		return fmt.Errorf("put warehouse %s: secret of %d bytes, want at least 16", w.ID, len(w.Secret))
	}
	_, err := s.pool.Exec(ctx, `
INSERT INTO warehouses (id, name, webhook_secret) VALUES ($1, $2, $3)
ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, webhook_secret = EXCLUDED.webhook_secret, updated_at = now()`,
		w.ID, w.Name, w.Secret)
	if err != nil {
		return fmt.Errorf("put warehouse %s: %w", w.ID, err)
	}
	return nil
}

// WebhookSecret returns the webhook secret of a warehouse: found is false when the warehouse is
// not registered, secret is nil when it posts unsigned.
func (s *InventoryStore) WebhookSecret(ctx context.Context, warehouseID string) (secret []byte, found bool, err error) {
	err = s.pool.QueryRow(ctx, `SELECT webhook_secret FROM warehouses WHERE id = $1`, warehouseID).Scan(&secret)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("webhook secret of %s: %w", warehouseID, err)
	}
	return secret, true, nil
}

// AddWarehouse registers a new warehouse, or returns ErrConflict when its id is registered
// (PutWarehouse replaces one). The secret (nil: unsigned requests) must be at least 16 bytes.
func (s *InventoryStore) AddWarehouse(ctx context.Context, w Warehouse) (Warehouse, error) {
	if w.Secret != nil && len(w.Secret) < 16 {
		return Warehouse{}, fmt.Errorf("add warehouse %s: secret of %d bytes, want at least 16", w.ID, len(w.Secret))
	}
	err := s.pool.QueryRow(ctx, `
INSERT INTO warehouses (id, name, webhook_secret) VALUES ($1, $2, $3)
ON CONFLICT (id) DO NOTHING RETURNING created_at`, w.ID, w.Name, w.Secret).Scan(&w.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return Warehouse{}, fmt.Errorf("add warehouse %s: %w", w.ID, ErrConflict)
	}
	if err != nil {
		return Warehouse{}, fmt.Errorf("add warehouse %s: %w", w.ID, err)
	}
	return w, nil
}

// RemoveWarehouse unregisters a warehouse, or returns ErrNotFound. Its stock stays: the
// warehouse_stock rows are the stock truth, and a warehouse registered again continues them.
func (s *InventoryStore) RemoveWarehouse(ctx context.Context, id string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM warehouses WHERE id = $1`, id)
	if err != nil {
		return fmt.Errorf("remove warehouse %s: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("remove warehouse %s: %w", id, ErrNotFound)
	}
	return nil
}

// Warehouses returns every registered warehouse by id, with its secret.
func (s *InventoryStore) Warehouses(ctx context.Context) ([]Warehouse, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, name, webhook_secret, created_at FROM warehouses ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("list warehouses: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Warehouse, error) {
		var w Warehouse
		err := row.Scan(&w.ID, &w.Name, &w.Secret, &w.CreatedAt)
		return w, err
	})
	if err != nil {
		return nil, fmt.Errorf("list warehouses: %w", err)
	}
	return out, nil
}

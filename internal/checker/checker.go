// Package checker checks a settled system against the product's promises (invariants I1-I7 of
// the architecture) from the outside, after a load run: it reads Postgres, Redis, the topics,
// the payment simulator and the e-mail sink, and compares them with what the buyers were told
// (the load generator's outcomes). Each invariant is reported as holding or broken with its
// evidence; undersell (units left unsold while demand for them was refused) is reported too. P1
// checks the flash-sale promotions from Postgres (promotion.go): caps, per-customer limits and
// promotional prices.
package checker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/orderpipe/orderpipe/internal/event"
	"github.com/orderpipe/orderpipe/internal/loadgen"
	"github.com/orderpipe/orderpipe/internal/redisstore"
)

// Sources are where the checker reads the system's state.
type Sources struct {
	Pool       *pgxpool.Pool
	Redis      redis.UniversalClient
	Prefix     string   // Redis key prefix (REDIS_KEY_PREFIX)
	Brokers    []string // Kafka bootstrap brokers
	PaymentURL string   // base URL of the payment simulator (internal/paysim)
	MailURL    string   // base URL of the e-mail sink's HTTP API (internal/mailsink)
	// Result is the load run: what every buyer was told.
	Result *loadgen.Result
	// Stock is the units available at the start per SKU; nil takes Result.Stock.
	Stock map[string]int64
}

// Report is the checker's verdict.
type Report struct {
	Invariants []InvariantResult `json:"invariants"`
	Undersell  []UndersellRow    `json:"undersell"`
	Summary    map[string]int64  `json:"summary"`
}

// InvariantResult is one invariant's verdict. Count is the number of violations (0 when it
// holds); Evidence names them (at most maxEvidence lines, the rest counted). ByDesign explains a
// count that cannot be 0 by design, and ByDesignCount is that measured count: it does not break
// the invariant (docs/e2e.md explains each).
type InvariantResult struct {
	ID            string   `json:"id"`
	Name          string   `json:"name"`
	Holds         bool     `json:"holds"`
	Count         int64    `json:"count"`
	Evidence      []string `json:"evidence"`
	ByDesign      string   `json:"by_design,omitempty"`
	ByDesignCount int64    `json:"by_design_count,omitempty"`
}

// UndersellRow is a SKU with units left unsold after settlement while buyers were refused for
// it as out of stock.
type UndersellRow struct {
	SKU           string `json:"sku"`
	RefusedOrders int64  `json:"refused_orders"` // out-of-stock refusals naming the SKU as short
	RefusedUnits  int64  `json:"refused_units"`  // units those orders asked for
	Unsold        int64  `json:"unsold"`         // on_hand - allocated after settlement
}

// maxEvidence bounds the evidence lines per invariant.
const maxEvidence = 20

// OK reports whether every invariant holds.
func (r *Report) OK() bool {
	for _, i := range r.Invariants {
		if !i.Holds {
			return false
		}
	}
	return true
}

// Check reads every source and returns the report. An error means a source could not be read
// (nothing was judged); broken invariants are in the report.
func Check(ctx context.Context, s Sources) (*Report, error) {
	if s.Pool == nil || s.Redis == nil || len(s.Brokers) == 0 || s.PaymentURL == "" || s.MailURL == "" || s.Result == nil {
		return nil, errors.New("checker: every source is needed: Postgres, Redis, Kafka brokers, payment URL, mail URL and the run's outcomes")
	}
	if s.Stock == nil {
		s.Stock = s.Result.Stock
	}
	st, err := gather(ctx, s)
	if err != nil {
		return nil, err
	}
	r := &Report{Summary: map[string]int64{}}
	r.Invariants = []InvariantResult{
		st.i1(), st.i2(), st.i3(), st.i4(), st.i5(), st.i6(), st.i7(), st.p1(), st.r0(),
	}
	r.Undersell = st.undersell()
	st.summarize(r)
	return r, nil
}

// evidence collects a bounded list of lines.
type evidence struct {
	lines []string
	n     int64
}

func (e *evidence) add(format string, args ...any) {
	e.n++
	if len(e.lines) < maxEvidence {
		e.lines = append(e.lines, fmt.Sprintf(format, args...))
	}
}

func (e *evidence) result(id, name string) InvariantResult {
	lines := e.lines
	if more := e.n - int64(len(lines)); more > 0 {
		lines = append(lines, fmt.Sprintf("... and %d more", more))
	}
	if lines == nil {
		lines = []string{}
	}
	return InvariantResult{ID: id, Name: name, Holds: e.n == 0, Count: e.n, Evidence: lines}
}

// state is everything read from the sources.
type state struct {
	res   *loadgen.Result
	start map[string]int64 // units available at the start per SKU

	stock    map[string]stockRow
	skus     []string                  // every SKU with a stock row, sorted
	ledger   map[string]int64          // sum of unshipped allocations per SKU
	orders   map[string]orderRow       // the run's orders (and every accepted order id) by id
	lines    map[string][]loadgen.Line // order lines by order id
	allocs   map[string]int64          // allocated units per order
	payments map[string]string         // payment status per order
	notes    map[[2]string]int         // notification resends by (kind, order)
	parked   map[string]bool           // orders in order_dead_letters
	stale    []string                  // stock deltas applied out of seq order
	whSeq    map[[2]string]int64       // warehouse_stock.last_seq by (warehouse, sku)
	promo    promoState                // promotions, their sales and the run's promotional lines

	observed map[string]redisstore.Observed
	holds    map[string][]redisstore.RebuildHold // live holds per SKU

	placed    map[string]int // OrderPlaced records per order id
	placedCID map[string]string
	dlq       map[string]int            // order-worker dead letters per order id
	stockSeq  map[[2]string]int64       // highest stock-event seq on the topic by (warehouse, sku)
	captures  map[string]int            // captured charges per order id
	refunded  map[string]bool           // order ids with a refunded capture
	doubleSim []string                  // the simulator's own double-capture list
	mails     map[[2]string]int         // e-mails per (kind, order id)
	customers map[string][]string       // the run's orders per customer id
	accepted  map[string]bool           // order ids some buyer was told 202 about
	buyers    map[int][]loadgen.Outcome // outcomes per buyer
}

type stockRow struct{ onHand, allocated int64 }

type orderRow struct {
	status, reason, customer string
}

func terminal(status string) bool {
	return status == "confirmed" || status == "shipped" || status == "cancelled"
}

// gather reads all sources.
func gather(ctx context.Context, s Sources) (*state, error) {
	st := &state{res: s.Result, start: s.Stock, accepted: map[string]bool{}, buyers: map[int][]loadgen.Outcome{}}
	for _, o := range s.Result.Outcomes {
		if o.Class == loadgen.ClassAccepted {
			st.accepted[o.OrderID] = true
		}
		st.buyers[o.Buyer] = append(st.buyers[o.Buyer], o)
	}
	if err := st.readPostgres(ctx, s.Pool); err != nil {
		return nil, err
	}
	if err := st.readRedis(ctx, redisstore.New(s.Redis, s.Prefix)); err != nil {
		return nil, err
	}
	kctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := st.readTopics(kctx, s.Brokers); err != nil {
		return nil, err
	}
	charges, stats, err := payments(ctx, s.PaymentURL)
	if err != nil {
		return nil, err
	}
	st.captures, st.refunded = map[string]int{}, map[string]bool{}
	for _, c := range charges {
		if c.Status == "captured" {
			st.captures[c.OrderID]++
			if c.Refunded {
				st.refunded[c.OrderID] = true
			}
		}
	}
	st.doubleSim = stats.DoubleCaptured
	msgs, err := mails(ctx, s.MailURL)
	if err != nil {
		return nil, err
	}
	st.mails = map[[2]string]int{}
	for _, m := range msgs {
		if m.OrderID != "" {
			st.mails[[2]string{m.Kind, m.OrderID}]++
		}
	}
	return st, nil
}

func (st *state) readPostgres(ctx context.Context, pool *pgxpool.Pool) error {
	fail := func(what string, err error) error { return fmt.Errorf("checker: postgres %s: %w", what, err) }
	st.stock, st.ledger = map[string]stockRow{}, map[string]int64{}
	rows, err := pool.Query(ctx, `SELECT sku, on_hand, allocated FROM stock ORDER BY sku`)
	if err != nil {
		return fail("stock", err)
	}
	for rows.Next() {
		var sku string
		var r stockRow
		if err := rows.Scan(&sku, &r.onHand, &r.allocated); err != nil {
			rows.Close()
			return fail("stock", err)
		}
		st.stock[sku] = r
		st.skus = append(st.skus, sku)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fail("stock", err)
	}
	if err := scanEach(ctx, pool, `SELECT sku, sum(quantity - shipped) FROM allocations GROUP BY sku`, nil, func(sc scanner) error {
		var sku string
		var n int64
		err := sc.Scan(&sku, &n)
		st.ledger[sku] = n
		return err
	}); err != nil {
		return fail("allocations", err)
	}

	ids := make([]string, 0, len(st.accepted))
	for id := range st.accepted {
		ids = append(ids, id)
	}
	like := "lg-" + st.res.RunID + "-%"
	st.orders, st.customers = map[string]orderRow{}, map[string][]string{}
	if err := scanEach(ctx, pool, `
SELECT id::text, status, coalesce(cancel_reason, ''), customer_id FROM orders
WHERE customer_id LIKE $1 OR id::text = ANY($2)`, []any{like, ids}, func(sc scanner) error {
		var id string
		var o orderRow
		if err := sc.Scan(&id, &o.status, &o.reason, &o.customer); err != nil {
			return err
		}
		st.orders[id] = o
		// An order cancelled as duplicate is the pipeline refusing a second order for an
		// Idempotency-Key already claimed (after Redis lost the key): no charge, no stock, so
		// it is not the buyer's second order. A charged or allocated one still breaks I3 below.
		if strings.HasPrefix(o.customer, "lg-"+st.res.RunID+"-") && !(o.status == "cancelled" && o.reason == "duplicate") {
			st.customers[o.customer] = append(st.customers[o.customer], id)
		}
		return nil
	}); err != nil {
		return fail("orders", err)
	}
	known := make([]string, 0, len(st.orders))
	for id := range st.orders {
		known = append(known, id)
	}
	st.lines, st.allocs, st.payments, st.notes, st.parked = map[string][]loadgen.Line{}, map[string]int64{}, map[string]string{}, map[[2]string]int{}, map[string]bool{}
	if err := scanEach(ctx, pool, `SELECT order_id::text, sku, quantity FROM order_lines WHERE order_id::text = ANY($1) ORDER BY order_id, line_no`, []any{known}, func(sc scanner) error {
		var id string
		var l loadgen.Line
		err := sc.Scan(&id, &l.SKU, &l.Qty)
		st.lines[id] = append(st.lines[id], l)
		return err
	}); err != nil {
		return fail("order lines", err)
	}
	if err := scanEach(ctx, pool, `SELECT order_id::text, sum(quantity) FROM allocations WHERE order_id::text = ANY($1) GROUP BY order_id`, []any{known}, func(sc scanner) error {
		var id string
		var n int64
		err := sc.Scan(&id, &n)
		st.allocs[id] = n
		return err
	}); err != nil {
		return fail("allocations", err)
	}
	if err := scanEach(ctx, pool, `SELECT order_id::text, status FROM payments WHERE order_id::text = ANY($1)`, []any{known}, func(sc scanner) error {
		var id, status string
		err := sc.Scan(&id, &status)
		st.payments[id] = status
		return err
	}); err != nil {
		return fail("payments", err)
	}
	if err := scanEach(ctx, pool, `SELECT kind, subject, resends FROM notifications WHERE subject = ANY($1)`, []any{known}, func(sc scanner) error {
		var kind, subject string
		var resends int
		err := sc.Scan(&kind, &subject, &resends)
		st.notes[[2]string{kind, subject}] = resends
		return err
	}); err != nil {
		return fail("notifications", err)
	}
	if err := scanEach(ctx, pool, `SELECT order_id::text FROM order_dead_letters WHERE order_id::text = ANY($1)`, []any{known}, func(sc scanner) error {
		var id string
		err := sc.Scan(&id)
		st.parked[id] = true
		return err
	}); err != nil {
		return fail("order dead letters", err)
	}
	// I7 from the inside: an applied stock event whose seq is below one applied before it for
	// the same warehouse and SKU.
	if err := scanEach(ctx, pool, `
SELECT warehouse_id, sku, seq, prev FROM (
  SELECT warehouse_id, sku, seq,
         max(seq) OVER (PARTITION BY warehouse_id, sku ORDER BY applied_at, seq
                        ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS prev
  FROM stock_deltas) d
WHERE prev IS NOT NULL AND seq <= prev ORDER BY warehouse_id, sku, seq`, nil, func(sc scanner) error {
		var wh, sku string
		var seq, prev int64
		err := sc.Scan(&wh, &sku, &seq, &prev)
		st.stale = append(st.stale, fmt.Sprintf("%s/%s: event seq %d applied after seq %d", wh, sku, seq, prev))
		return err
	}); err != nil {
		return fail("stock deltas", err)
	}
	st.whSeq = map[[2]string]int64{}
	if err := scanEach(ctx, pool, `SELECT warehouse_id, sku, last_seq FROM warehouse_stock`, nil, func(sc scanner) error {
		var wh, sku string
		var seq int64
		err := sc.Scan(&wh, &sku, &seq)
		st.whSeq[[2]string{wh, sku}] = seq
		return err
	}); err != nil {
		return fail("warehouse stock", err)
	}
	return st.readPromotions(ctx, pool, known)
}

type scanner interface{ Scan(dest ...any) error }

func scanEach(ctx context.Context, pool *pgxpool.Pool, sql string, args []any, fn func(scanner) error) error {
	rows, err := pool.Query(ctx, sql, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := fn(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

func (st *state) readRedis(ctx context.Context, store *redisstore.Store) error {
	obs, err := store.ObserveStock(ctx, st.skus)
	if err != nil {
		return fmt.Errorf("checker: redis: %w", err)
	}
	st.observed = obs
	st.holds = map[string][]redisstore.RebuildHold{}
	for _, sku := range st.skus {
		if o := obs[sku]; o.Holds == 0 && o.Held == 0 && o.HeldLive == 0 {
			continue
		}
		hs, err := store.Holds(ctx, sku)
		if err != nil {
			return fmt.Errorf("checker: redis: %w", err)
		}
		st.holds[sku] = hs
	}
	return nil
}

func (st *state) readTopics(ctx context.Context, brokers []string) error {
	dlqTopic := event.DeadLetterTopic("order-worker")
	recs, err := readTopics(ctx, brokers, event.TopicOrdersPlaced, event.TopicOrdersPlacedPriority, dlqTopic, event.TopicInventoryStock)
	if err != nil {
		return fmt.Errorf("checker: kafka: %w", err)
	}
	st.placed, st.placedCID, st.dlq, st.stockSeq = map[string]int{}, map[string]string{}, map[string]int{}, map[[2]string]int64{}
	for _, topic := range []string{event.TopicOrdersPlaced, event.TopicOrdersPlacedPriority} {
		for _, r := range recs[topic] {
			var d struct {
				OrderID    string `json:"order_id"`
				CustomerID string `json:"customer_id"`
			}
			if json.Unmarshal(r.Value, &d) != nil || d.OrderID == "" {
				d.OrderID = string(r.Key)
			}
			st.placed[d.OrderID]++
			st.placedCID[d.OrderID] = d.CustomerID
		}
	}
	for _, r := range recs[dlqTopic] {
		st.dlq[string(r.Key)]++
	}
	for _, r := range recs[event.TopicInventoryStock] {
		if !event.IsStockType(header(r, "ce_type")) {
			continue
		}
		var h event.StockHeader
		if json.Unmarshal(r.Value, &h) != nil {
			continue
		}
		k := [2]string{h.WarehouseID, h.SKU}
		if h.Seq > st.stockSeq[k] {
			st.stockSeq[k] = h.Seq
		}
	}
	return nil
}

// i1: no oversell.
func (st *state) i1() InvariantResult {
	var ev evidence
	sold := st.soldByRun()
	for _, sku := range st.skus {
		r := st.stock[sku]
		if r.allocated > r.onHand {
			ev.n += r.allocated - r.onHand - 1
			ev.add("%s: allocated %d > on_hand %d: %d units oversold", sku, r.allocated, r.onHand, r.allocated-r.onHand)
		}
		if l := st.ledger[sku]; l != r.allocated {
			ev.add("%s: stock.allocated %d but the unshipped allocations add up to %d", sku, r.allocated, l)
		}
		if start, ok := st.start[sku]; ok && sold[sku] > start {
			ev.n += sold[sku] - start - 1
			ev.add("%s: the run's confirmed orders hold %d units, %d were available at the start: %d units oversold", sku, sold[sku], start, sold[sku]-start)
		}
	}
	return ev.result("I1", "No oversell")
}

// soldByRun is the units of the run's confirmed or shipped orders per SKU.
func (st *state) soldByRun() map[string]int64 {
	out := map[string]int64{}
	for id, o := range st.orders {
		if o.status != "confirmed" && o.status != "shipped" {
			continue
		}
		for _, l := range st.lines[id] {
			out[l.SKU] += int64(l.Qty)
		}
	}
	return out
}

// i2: no lost order.
func (st *state) i2() InvariantResult {
	var ev evidence
	for _, id := range sortedKeys(st.accepted) {
		o, ok := st.orders[id]
		where := fmt.Sprintf("OrderPlaced records %d, order-worker dead letters %d, parked in Postgres %v", st.placed[id], st.dlq[id], st.parked[id])
		switch {
		case !ok:
			ev.add("order %s was answered 202 but has no row in Postgres (%s)", id, where)
		case !terminal(o.status):
			ev.add("order %s was answered 202 and is still %s (%s)", id, o.status, where)
		case o.status == "cancelled" && o.reason == "":
			ev.add("order %s is cancelled without a reason", id)
		}
	}
	// Orders the server took although the buyer never learned it (unknown answers) count too.
	for _, id := range sortedKeys(st.orders) {
		if o := st.orders[id]; !st.accepted[id] && !terminal(o.status) {
			ev.add("order %s (customer %s, answer unknown to the buyer) is still %s", id, o.customer, o.status)
		}
	}
	return ev.result("I2", "No lost order")
}

// i3: no double effect.
func (st *state) i3() InvariantResult {
	var ev evidence
	r := InvariantResult{}
	for _, cid := range sortedKeys(st.customers) {
		if ids := st.customers[cid]; len(ids) > 1 {
			slices.Sort(ids)
			ev.add("buyer %s (one intended order) has %d orders: %s", cid, len(ids), strings.Join(ids, ", "))
		}
	}
	for _, id := range sortedKeys(st.captures) {
		if _, ours := st.orders[id]; st.captures[id] > 1 && (ours || st.accepted[id]) {
			n := st.captures[id]
			ev.add("order %s was captured %d times", id, n)
		}
	}
	for _, id := range st.doubleSim {
		if _, ours := st.orders[id]; ours && st.captures[id] <= 1 {
			ev.add("the payment simulator lists order %s as captured twice", id)
		}
	}
	for _, id := range sortedKeys(st.orders) {
		if o := st.orders[id]; o.status == "cancelled" && st.captures[id] > 0 && !st.refunded[id] {
			ev.add("order %s is cancelled (%s) but its capture was not refunded (payment %s)", id, o.reason, st.payments[id])
		}
		if o := st.orders[id]; o.status == "cancelled" && st.allocs[id] > 0 {
			ev.add("order %s is cancelled but still has %d units allocated", id, st.allocs[id])
		}
	}
	var byDesign int64
	for _, k := range sortedPairs(st.mails) {
		n := st.mails[k]
		if _, ours := st.orders[k[1]]; !ours || n < 2 {
			continue
		}
		if resends := st.notes[k]; resends > 0 && n-1 <= resends {
			byDesign += int64(n - 1)
			continue
		}
		ev.add("order %s got %d %s e-mails (notification resends recorded: %d)", k[1], n, k[0], st.notes[k])
	}
	r = ev.result("I3", "No double effect")
	r.ByDesignCount = byDesign
	r.ByDesign = fmt.Sprintf("%d duplicate e-mail(s) after a notifier crash between the SMTP send and its record (a claim taken over after NOTIFIER_SEND_LEASE, counted in notifications.resends)", byDesign)
	return r
}

// i4: stock conservation at rest.
func (st *state) i4() InvariantResult {
	var ev evidence
	for _, sku := range st.skus {
		r, o := st.stock[sku], st.observed[sku]
		truth := r.onHand - r.allocated
		switch {
		case !o.Known:
			ev.add("%s: Redis has no counters (Postgres on_hand - allocated = %d)", sku, truth)
		case o.ATP+o.Held != truth:
			ev.add("%s: Redis atp %d + held %d = %d, Postgres on_hand %d - allocated %d = %d: drift %+d", sku, o.ATP, o.Held, o.ATP+o.Held, r.onHand, r.allocated, truth, o.ATP+o.Held-truth)
		case o.Held != o.HeldLive:
			ev.add("%s: held counter %d but live holds add up to %d", sku, o.Held, o.HeldLive)
		}
	}
	return ev.result("I4", "Stock conservation")
}

// i5: a rejected order holds nothing.
func (st *state) i5() InvariantResult {
	var ev evidence
	for _, sku := range sortedKeys(st.holds) {
		for _, h := range st.holds[sku] {
			if _, known := st.orders[h.OrderID]; !known && !st.accepted[h.OrderID] {
				ev.add("%s: hold of %d for %s, an order nobody was told 202 about and Postgres does not know", sku, h.Qty, h.OrderID)
			}
		}
	}
	// A buyer who was refused every time has no order.
	for _, n := range sortedKeys(st.buyers) {
		os := st.buyers[n]
		refusedOnly := true
		for _, o := range os {
			if o.Class == loadgen.ClassAccepted || o.Class == loadgen.ClassUnknown {
				refusedOnly = false
			}
		}
		if !refusedOnly {
			continue
		}
		if ids := st.customers[os[0].CustomerID]; len(ids) > 0 {
			ev.add("buyer %s was only refused (%d %s) but has order(s) %s", os[0].CustomerID, os[0].Status, os[0].Reason, strings.Join(ids, ", "))
		}
	}
	return ev.result("I5", "A rejected order holds nothing")
}

// i6: a hold ends exactly once.
func (st *state) i6() InvariantResult {
	var ev evidence
	now := time.Now()
	for _, sku := range sortedKeys(st.holds) {
		for _, h := range st.holds[sku] {
			o, known := st.orders[h.OrderID]
			switch {
			case known && terminal(o.status):
				ev.add("%s: hold of %d for order %s is still live although the order is %s", sku, h.Qty, h.OrderID, o.status)
			case h.Deadline.Before(now.Add(-time.Minute)):
				ev.add("%s: hold of %d for order %s is live %s after its deadline", sku, h.Qty, h.OrderID, now.Sub(h.Deadline).Round(time.Second))
			}
		}
	}
	for id, o := range st.orders {
		if (o.status == "confirmed" || o.status == "shipped") && len(st.lines[id]) > 0 && st.allocs[id] == 0 {
			ev.add("order %s is %s without allocations", id, o.status)
		}
	}
	return ev.result("I6", "A hold ends exactly once")
}

// i7: stale stock events are ignored.
func (st *state) i7() InvariantResult {
	var ev evidence
	for _, s := range st.stale {
		ev.add("%s", s)
	}
	keys := make([][2]string, 0, len(st.stockSeq))
	for k := range st.stockSeq {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i][0]+"/"+keys[i][1] < keys[j][0]+"/"+keys[j][1] })
	for _, k := range keys {
		if got, ok := st.whSeq[k]; !ok || got != st.stockSeq[k] {
			ev.add("%s/%s: the topic's newest event has seq %d, Postgres applied up to %d", k[0], k[1], st.stockSeq[k], got)
		}
	}
	for k, seq := range st.whSeq {
		if top, ok := st.stockSeq[k]; ok && seq > top {
			ev.add("%s/%s: Postgres applied seq %d, beyond the topic's newest %d", k[0], k[1], seq, top)
		}
	}
	return ev.result("I7", "Stale stock events are ignored")
}

// undersell lists SKUs with units left while out-of-stock refusals named them short.
func (st *state) undersell() []UndersellRow {
	type demand struct{ orders, units int64 }
	refused := map[string]*demand{}
	for _, o := range st.res.Outcomes {
		if o.Class != loadgen.ClassRefused || o.Reason != "out-of-stock" || o.Duplicate {
			continue
		}
		for _, l := range o.Lines {
			if slices.Contains(o.Short, l.SKU) {
				d := refused[l.SKU]
				if d == nil {
					d = &demand{}
					refused[l.SKU] = d
				}
				d.orders++
				d.units += int64(l.Qty)
			}
		}
	}
	out := []UndersellRow{}
	for _, sku := range sortedKeys(refused) {
		r, ok := st.stock[sku]
		if !ok {
			continue
		}
		if unsold := r.onHand - r.allocated; unsold > 0 {
			out = append(out, UndersellRow{SKU: sku, RefusedOrders: refused[sku].orders, RefusedUnits: refused[sku].units, Unsold: unsold})
		}
	}
	return out
}

func (st *state) summarize(r *Report) {
	s := r.Summary
	for _, o := range st.res.Outcomes {
		s["submissions"]++
		s["outcome_"+o.Class]++
		if o.Duplicate {
			s["duplicate_submissions"]++
		}
		if len(o.Tries) > 0 {
			s["retried_submissions"]++
		}
	}
	s["buyers"] = int64(len(st.buyers))
	s["accepted_orders"] = int64(len(st.accepted))
	for _, o := range st.orders {
		s["orders_"+o.status]++
		if o.reason != "" {
			s["cancelled_"+o.reason]++
		}
	}
	for sku, n := range st.soldByRun() {
		s["units_sold"] += n
		if _, ok := st.start[sku]; ok {
			s["units_sold_of_scenario"] += n
		}
	}
	for _, n := range st.start {
		s["units_at_start"] += n
	}
	// Buyers whose answer was unknown: their order exists once or not at all (I3 checks more).
	for _, os := range st.buyers {
		unknown, accepted := false, false
		for _, o := range os {
			unknown = unknown || o.Class == loadgen.ClassUnknown
			accepted = accepted || o.Class == loadgen.ClassAccepted
		}
		if unknown && !accepted {
			if len(st.customers[os[0].CustomerID]) > 0 {
				s["unknown_answer_order_exists"]++
			} else {
				s["unknown_answer_no_order"]++
			}
		}
	}
	for id, n := range st.placed {
		if _, ours := st.orders[id]; ours || st.accepted[id] {
			s["orderplaced_records"] += int64(n)
			if n > 1 {
				s["orderplaced_duplicated_records"] += int64(n - 1)
			}
		}
	}
	for id, n := range st.dlq {
		if _, ours := st.orders[id]; ours {
			s["order_worker_dead_letters"] += int64(n)
		}
	}
	for id, n := range st.captures {
		if _, ours := st.orders[id]; ours {
			s["captures"] += int64(n)
		}
	}
	for k, n := range st.mails {
		if _, ours := st.orders[k[1]]; ours {
			s["emails_"+k[0]] += int64(n)
		}
	}
	for _, hs := range st.holds {
		s["holds_outstanding"] += int64(len(hs))
	}
	st.summarizePromotions(s)
	for _, u := range r.Undersell {
		s["undersell_units"] += min(u.Unsold, u.RefusedUnits)
	}
	for _, i := range r.Invariants {
		if !i.Holds {
			s["invariants_broken"]++
		}
	}
}

func sortedKeys[K string | int, V any](m map[K]V) []K {
	out := make([]K, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func sortedPairs(m map[[2]string]int) [][2]string {
	out := make([][2]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i][1]+out[i][0] < out[j][1]+out[j][0] })
	return out
}

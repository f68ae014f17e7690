package reconcile_test

import (
	"maps"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/orderpipe/orderpipe/internal/event"
	"github.com/orderpipe/orderpipe/internal/redisstore"
	"github.com/orderpipe/orderpipe/internal/testenv"
)

// promotionRow stores a promotion of skus ending at end, as the promotions API would.
func (b *bundle) promotionRow(t *testing.T, id string, end time.Time, skus ...string) {
	t.Helper()
	_, err := b.pool.Exec(t.Context(), `
INSERT INTO promotions (id, name, kind, percent_off, skus, starts_at, ends_at)
VALUES ($1, $1, 'percent', 30, $2, $3, $4)`, id, skus, end.Add(-24*time.Hour), end)
	if err != nil {
		t.Fatal(err)
	}
}

// decidedLine is one order line order-worker recorded.
type decidedLine struct {
	sku     string
	qty     int
	promoID string
}

// decideLines writes an order row of customer with its lines, as order-worker would.
func (b *bundle) decideLines(t *testing.T, id, status, customer string, lines ...decidedLine) {
	t.Helper()
	b.decide(t, id, status)
	if _, err := b.pool.Exec(t.Context(), `UPDATE orders SET customer_id = $2 WHERE id = $1`, id, customer); err != nil {
		t.Fatal(err)
	}
	for i, l := range lines {
		var promo any
		if l.promoID != "" {
			promo = l.promoID
		}
		_, err := b.pool.Exec(t.Context(), `
INSERT INTO order_lines (order_id, line_no, sku, name, quantity, unit_price_minor, promotion_id)
VALUES ($1, $2, $3, 'Part', $4, 1000, $5)`, id, i+1, l.sku, l.qty, promo)
		if err != nil {
			t.Fatal(err)
		}
	}
}

// After Redis lost everything, the rebuild recreates each lost SKU's promotion counters: the
// promotional units of the orders Postgres decided and did not cancel, per customer, plus those of
// the holds it gives back (not of a hold past its deadline); a promotion whose counters would
// have expired is left out. The stock cap and the customer limits then hold as before the loss.
func TestRebuildPromotionCounters(t *testing.T) {
	t.Parallel()
	const tyre, pads = "TYR-WIN-7101", "BRK-PAD-1001"
	b := setup(t, map[string]int64{tyre: 50, pads: 10}, 0)
	ctx := t.Context()
	now := time.Now()
	end := now.Add(time.Hour)
	b.promotionRow(t, "winter", end, tyre, pads)
	b.promotionRow(t, "autumn", now.Add(-redisstore.DefaultEndedTTL-time.Hour), tyre) // counters long expired

	future := now.Add(10 * time.Minute)
	decided := placedOrder{id: uuid.NewString(), lines: map[string]int{tyre: 4}, deadline: future, customer: "ann", promoID: "winter", promo: map[string]int{tyre: 3}}
	inFlight := placedOrder{id: uuid.NewString(), lines: map[string]int{tyre: 4, pads: 1}, deadline: future, customer: "dan", promoID: "winter", promo: map[string]int{tyre: 3}}
	late := placedOrder{id: uuid.NewString(), lines: map[string]int{tyre: 2}, deadline: now.Add(-time.Minute), customer: "ann", promoID: "winter", promo: map[string]int{tyre: 2}}
	for _, o := range []placedOrder{decided, inFlight, late} {
		r := b.orderRecord(t, event.TopicOrdersPlaced, o)
		r.Partition = 0
		b.produce(t, r)
	}
	// Postgres: decided (in the journal too) confirmed; older orders, one cancelled, one under
	// the expired promotion, one of the other SKU.
	b.decideLines(t, decided.id, "confirmed", "ann", decidedLine{tyre, 3, "winter"}, decidedLine{tyre, 1, ""})
	b.decideLines(t, uuid.NewString(), "cancelled", "bob", decidedLine{tyre, 2, "winter"})
	b.decideLines(t, uuid.NewString(), "confirmed", "cy", decidedLine{tyre, 2, "autumn"})
	b.decideLines(t, uuid.NewString(), "confirmed", "ann", decidedLine{pads, 1, "winter"})
	if _, err := b.pool.Exec(ctx, `UPDATE stock SET allocated = CASE sku WHEN $1 THEN 6 ELSE 1 END`, tyre); err != nil {
		t.Fatal(err)
	}

	b.flush(t)
	res, err := b.rec.Repair(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Rebuilt) != 2 || !res.After.Clean() {
		t.Fatalf("repair: %+v, want 2 SKUs rebuilt and a clean comparison", res)
	}
	for _, r := range res.Rebuilt {
		if r.Promotions != 1 {
			t.Fatalf("rebuilt %+v, want the counters of one promotion (winter)", r)
		}
	}
	b.wantStock(t, tyre, 50-6-4, 4)
	// ann's 3 decided + dan's 3 held; bob's were cancelled, late's hold expired.
	testenv.WantPromoCounters(t, b.store, tyre, "winter", 6, map[string]int64{"ann": 3, "dan": 3})
	testenv.WantPromoCounters(t, b.store, pads, "winter", 1, map[string]int64{"ann": 1})
	if n, err := b.rdb.Exists(ctx, b.prefix+"promo:{"+tyre+"}:autumn").Result(); err != nil || n != 0 {
		t.Fatalf("counters of the expired promotion exist (%d, %v), want none", n, err)
	}
	if ttl, err := b.rdb.PTTL(ctx, b.prefix+"promo:{"+tyre+"}:winter").Result(); err != nil || ttl < redisstore.DefaultEndedTTL || ttl > redisstore.DefaultEndedTTL+time.Hour {
		t.Fatalf("TTL of the winter counters %v (%v), want the promotion's end plus %v", ttl, err, redisstore.DefaultEndedTTL)
	}

	// The cap (8) and the limit (3 per customer) count what was sold before the loss.
	promo := func(customer string) *redisstore.LinePromo {
		return &redisstore.LinePromo{ID: "winter", StockCap: 8, Limit: 3, Customer: customer, Until: end}
	}
	got := map[string]int64{}
	for _, o := range []struct {
		customer string
		qty      int64
	}{{"ann", 2}, {"fay", 5}, {"gus", 2}} {
		r, err := b.store.Reserve(ctx, uuid.NewString(), []redisstore.Line{{SKU: tyre, Qty: o.qty, Promo: promo(o.customer)}}, future)
		if err != nil || !r.OK {
			t.Fatalf("order of %s: %+v %v", o.customer, r, err)
		}
		got[o.customer] = r.Promotional[tyre]
	}
	if want := map[string]int64{"ann": 0, "fay": 2, "gus": 0}; !maps.Equal(got, want) {
		t.Fatalf("promotional units after the rebuild %v, want %v (ann at her limit, then the cap)", got, want)
	}
	// The re-created hold carries its promotional units: cancelling the order gives them back.
	if _, err := b.store.Release(ctx, inFlight.id, []string{tyre, pads}); err != nil {
		t.Fatal(err)
	}
	testenv.WantPromoCounters(t, b.store, tyre, "winter", 5, map[string]int64{"ann": 3, "dan": 0, "fay": 2})
}

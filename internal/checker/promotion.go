package checker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/orderpipe/orderpipe/internal/postgres"
	"github.com/orderpipe/orderpipe/internal/promotion"
)

// promoState is what P1 reads from Postgres: the promotions of the run (the scenario's and any
// other that priced a line of the run's orders), their promotional units in orders that are not
// cancelled (of every order, not only the run's: the cap and the limits count every unit sold
// under the promotion, as the Redis counters do), and the run's promotional lines.
type promoState struct {
	promos  map[string]promotion.Promotion
	missing []string            // promotions of the scenario Postgres does not know
	sold    map[[2]string]int64 // units by (promotion, sku), orders not cancelled
	byCust  map[[3]string]int64 // units by (promotion, sku, customer), orders not cancelled
	lines   []promoLine         // the run's promotional lines
	base    map[string]int64    // base price per SKU (products.price_minor)
}

// promoLine is one promotional line of one of the run's orders.
type promoLine struct {
	order, sku, promotion string
	lineNo                int
	qty, unit             int64
	placed                time.Time
}

func (st *state) readPromotions(ctx context.Context, pool *pgxpool.Pool, known []string) error {
	fail := func(what string, err error) error { return fmt.Errorf("checker: postgres %s: %w", what, err) }
	ps := &st.promo
	ps.promos, ps.sold, ps.byCust, ps.base = map[string]promotion.Promotion{}, map[[2]string]int64{}, map[[3]string]int64{}, map[string]int64{}
	if err := scanEach(ctx, pool, `
SELECT l.order_id::text, l.line_no, l.sku, l.promotion_id, l.quantity, l.unit_price_minor, o.placed_at
FROM order_lines l JOIN orders o ON o.id = l.order_id
WHERE l.promotion_id IS NOT NULL AND l.order_id::text = ANY($1)
ORDER BY l.order_id, l.line_no`, []any{known}, func(sc scanner) error {
		var l promoLine
		err := sc.Scan(&l.order, &l.lineNo, &l.sku, &l.promotion, &l.qty, &l.unit, &l.placed)
		ps.lines = append(ps.lines, l)
		return err
	}); err != nil {
		return fail("promotional order lines", err)
	}
	ids := slices.Clone(st.res.Promotions)
	for _, l := range ps.lines {
		if !slices.Contains(ids, l.promotion) {
			ids = append(ids, l.promotion)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	store := postgres.NewPromotionStore(pool)
	for _, id := range ids {
		p, err := store.Get(ctx, id)
		if errors.Is(err, postgres.ErrNotFound) {
			ps.missing = append(ps.missing, id)
			continue
		}
		if err != nil {
			return fail("promotions", err)
		}
		ps.promos[id] = p
	}
	if err := scanEach(ctx, pool, `
SELECT l.promotion_id, l.sku, o.customer_id, sum(l.quantity)
FROM order_lines l JOIN orders o ON o.id = l.order_id
WHERE l.promotion_id = ANY($1) AND o.status <> 'cancelled'
GROUP BY 1, 2, 3`, []any{ids}, func(sc scanner) error {
		var promo, sku, cust string
		var n int64
		err := sc.Scan(&promo, &sku, &cust, &n)
		ps.sold[[2]string{promo, sku}] += n
		ps.byCust[[3]string{promo, sku, cust}] += n
		return err
	}); err != nil {
		return fail("promotional sales", err)
	}
	if err := scanEach(ctx, pool, `SELECT sku, price_minor FROM products WHERE sku = ANY($1)`, []any{ps.lineSKUs()}, func(sc scanner) error {
		var sku string
		var price int64
		err := sc.Scan(&sku, &price)
		ps.base[sku] = price
		return err
	}); err != nil {
		return fail("products", err)
	}
	return nil
}

func (ps *promoState) lineSKUs() []string {
	out := []string{}
	for _, l := range ps.lines {
		if !slices.Contains(out, l.sku) {
			out = append(out, l.sku)
		}
	}
	return out
}

// p1: promotion caps and limits hold, and promotional lines carry the promotional price.
func (st *state) p1() InvariantResult {
	var ev evidence
	ps := st.promo
	for _, id := range ps.missing {
		ev.add("promotion %s of the scenario does not exist in Postgres", id)
	}
	type over struct {
		what   string
		excess int64
	}
	var overs []over
	for k, n := range ps.sold {
		if p, ok := ps.promos[k[0]]; ok && p.StockCap > 0 && n > p.StockCap {
			overs = append(overs, over{fmt.Sprintf("promotion %s, %s: %d promotional units sold (orders not cancelled), cap %d: %d over the cap", k[0], k[1], n, p.StockCap, n-p.StockCap), n - p.StockCap})
		}
	}
	for k, n := range ps.byCust {
		if p, ok := ps.promos[k[0]]; ok && p.PerCustomerLimit > 0 && n > p.PerCustomerLimit {
			overs = append(overs, over{fmt.Sprintf("promotion %s, %s, customer %s: %d promotional units, limit %d per customer: %d over the limit", k[0], k[1], k[2], n, p.PerCustomerLimit, n-p.PerCustomerLimit), n - p.PerCustomerLimit})
		}
	}
	// The worst offenders first.
	sort.Slice(overs, func(i, j int) bool {
		if overs[i].excess != overs[j].excess {
			return overs[i].excess > overs[j].excess
		}
		return overs[i].what < overs[j].what
	})
	for _, o := range overs {
		ev.add("%s", o.what)
	}
	for _, l := range ps.lines {
		p, ok := ps.promos[l.promotion]
		if !ok {
			continue // reported as missing when it is the scenario's; otherwise unknown to Postgres
		}
		base, ok := ps.base[l.sku]
		if !ok {
			ev.add("order %s line %d: %s has no product row to price promotion %s from", l.order, l.lineNo, l.sku, l.promotion)
			continue
		}
		if want := p.PriceFor(base); l.unit != want {
			ev.add("order %s line %d: %d x %s at %d under promotion %s, whose price is %d (base %d)", l.order, l.lineNo, l.qty, l.sku, l.unit, l.promotion, want, base)
		}
		if l.placed.Before(p.StartsAt) || !l.placed.Before(p.End()) {
			ev.add("order %s line %d: priced by promotion %s but placed at %s, outside its window [%s, %s)", l.order, l.lineNo, l.promotion, l.placed.UTC().Format(time.RFC3339Nano), p.StartsAt.Format(time.RFC3339Nano), p.End().Format(time.RFC3339Nano))
		}
	}
	return ev.result("P1", "Promotion caps and limits hold")
}

// summarizePromotions counts the promotional units of the run's confirmed or shipped orders,
// per promotion (promo_units_sold_<id>) and in all (promo_units_sold).
func (st *state) summarizePromotions(s map[string]int64) {
	for id := range st.promo.promos {
		s["promo_units_sold_"+id] += 0
	}
	for _, l := range st.promo.lines {
		if o := st.orders[l.order]; o.status == "confirmed" || o.status == "shipped" {
			s["promo_units_sold_"+l.promotion] += l.qty
			s["promo_units_sold"] += l.qty
		}
	}
	if len(st.promo.promos) > 0 {
		s["promo_units_sold"] += 0
	}
}

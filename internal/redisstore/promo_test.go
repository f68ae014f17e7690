package redisstore_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/orderpipe/orderpipe/internal/redisstore"
)

func promoLine(sku string, qty int64, customer string, cap, limit int64, refuse bool) redisstore.Line {
	return redisstore.Line{SKU: sku, Qty: qty, Promo: &redisstore.LinePromo{
		ID: "flash", StockCap: cap, Limit: limit, Refuse: refuse, Customer: customer, Until: time.Now().Add(time.Hour),
	}}
}

func (b bundle) wantPromo(t *testing.T, sku string, sold int64, customer string, mine int64) {
	t.Helper()
	gotSold, customers, err := b.store.PromoCounters(t.Context(), sku, "flash")
	if err != nil {
		t.Fatal(err)
	}
	if gotSold != sold || customers[customer] != mine {
		t.Fatalf("promotion counters of %s: sold %d, %s %d; want %d and %d", sku, gotSold, customer, customers[customer], sold, mine)
	}
}

// The stock cap and the per-customer limit hold under concurrency, atomically with the hold:
// 200 customers x 2 orders of 3 units race for a cap of 100 promotional units, limit 4 each.
func TestReservePromotionCapAndLimitConcurrently(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.seed(t, map[string]int64{"TYR-1001": 10000})
	const customers = 200
	var mu sync.Mutex
	perCustomer := map[string]int64{}
	var total int64
	var wg sync.WaitGroup
	for c := range customers {
		for o := range 2 {
			wg.Go(func() {
				cust := fmt.Sprintf("c-%d", c)
				res := reserve(t, b.store, fmt.Sprintf("o-%d-%d", c, o), promoLine("TYR-1001", 3, cust, 100, 4, false))
				if !res.OK {
					t.Errorf("order of %s refused: %+v", cust, res)
					return
				}
				mu.Lock()
				perCustomer[cust] += res.Promotional["TYR-1001"]
				total += res.Promotional["TYR-1001"]
				mu.Unlock()
			})
		}
	}
	wg.Wait()
	if total != 100 {
		t.Fatalf("promotional units granted %d, want exactly the cap 100", total)
	}
	for c, n := range perCustomer {
		if n > 4 {
			t.Fatalf("customer %s got %d promotional units, limit 4", c, n)
		}
	}
	b.wantStock(t, "TYR-1001", 10000-customers*2*3, customers*2*3)
	sold, customersSeen, err := b.store.PromoCounters(t.Context(), "TYR-1001", "flash")
	if err != nil || sold != 100 {
		t.Fatalf("sold counter %d (%v), want 100", sold, err)
	}
	for c, n := range perCustomer {
		if customersSeen[c] != n {
			t.Fatalf("customer %s counter %d, granted %d", c, customersSeen[c], n)
		}
	}
}

// Release (cancel) and expiry give back the promotional units and the allowance with the
// stock; a retried reservation takes nothing twice; a late confirmation counts them again.
func TestPromotionUnitsFollowTheHold(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.seed(t, map[string]int64{"TYR-1001": 100})
	ctx := t.Context()

	res := reserve(t, b.store, "o-1", promoLine("TYR-1001", 6, "ann", 10, 4, false))
	if !res.OK || res.Promotional["TYR-1001"] != 4 {
		t.Fatalf("first order: %+v, want 4 promotional units (limit 4)", res)
	}
	b.wantPromo(t, "TYR-1001", 4, "ann", 4)
	// A retry of the same order is idempotent and reports the same grant.
	res = reserve(t, b.store, "o-1", promoLine("TYR-1001", 6, "ann", 10, 4, false))
	if !res.OK || res.Promotional["TYR-1001"] != 4 {
		t.Fatalf("retry: %+v, want the same 4", res)
	}
	b.wantPromo(t, "TYR-1001", 4, "ann", 4)
	// Refuse mode: ann has no allowance left, so a promotional order of hers is refused whole.
	res = reserve(t, b.store, "o-2", promoLine("TYR-1001", 1, "ann", 10, 4, true))
	if res.OK || len(res.PromoLimited) != 1 || res.PromoLimited[0].Promotional != 0 {
		t.Fatalf("over the limit with refuse: %+v, want refused with 0 promotional left", res)
	}
	b.wantStock(t, "TYR-1001", 94, 6)

	// Cancel: units and allowance come back.
	if _, err := b.store.Release(ctx, "o-1", []string{"TYR-1001"}); err != nil {
		t.Fatal(err)
	}
	b.wantStock(t, "TYR-1001", 100, 0)
	b.wantPromo(t, "TYR-1001", 0, "ann", 0)
	// A second release changes nothing.
	if _, err := b.store.Release(ctx, "o-1", []string{"TYR-1001"}); err != nil {
		t.Fatal(err)
	}
	b.wantPromo(t, "TYR-1001", 0, "ann", 0)

	// Expiry gives them back too; the late confirmation counts them again, once.
	if _, err := b.store.Reserve(ctx, "o-3", []redisstore.Line{promoLine("TYR-1001", 3, "bob", 10, 4, false)}, time.Now().Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	b.wantPromo(t, "TYR-1001", 3, "bob", 3)
	if _, err := b.store.ExpireDue(ctx, "TYR-1001", time.Now(), 100); err != nil {
		t.Fatal(err)
	}
	b.wantStock(t, "TYR-1001", 100, 0)
	b.wantPromo(t, "TYR-1001", 0, "bob", 0)
	late := redisstore.Line{SKU: "TYR-1001", Qty: 3, Promo: &redisstore.LinePromo{ID: "flash", Customer: "bob", Units: 3}}
	for range 2 {
		r, err := b.store.Confirm(ctx, "o-3", []redisstore.Line{late})
		if err != nil {
			t.Fatal(err)
		}
		_ = r
	}
	b.wantStock(t, "TYR-1001", 97, 0)
	b.wantPromo(t, "TYR-1001", 3, "bob", 3)

	// A confirmed live hold keeps its promotional units counted (consumed).
	res = reserve(t, b.store, "o-4", promoLine("TYR-1001", 2, "cy", 10, 4, false))
	if res.Promotional["TYR-1001"] != 2 {
		t.Fatalf("o-4: %+v", res)
	}
	if _, err := b.store.Confirm(ctx, "o-4", []redisstore.Line{{SKU: "TYR-1001", Qty: 2, Promo: &redisstore.LinePromo{ID: "flash", Customer: "cy", Units: 2}}}); err != nil {
		t.Fatal(err)
	}
	b.wantPromo(t, "TYR-1001", 5, "cy", 2)
	b.wantStock(t, "TYR-1001", 95, 0)
}

// A refused order gives back the promotional units its other lines took (I5), and a promotion
// on several SKUs counts its cap and its customer limit per SKU (the documented decision: each
// SKU's counters live in that SKU's slot).
func TestPromotionCountersPerSKUAndRefusal(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.seed(t, map[string]int64{"TYR-1001": 100, "TYR-1002": 100, "BRK-2001": 1})
	res := reserve(t, b.store, "o-1", promoLine("TYR-1001", 2, "ann", 3, 4, false), redisstore.Line{SKU: "BRK-2001", Qty: 5})
	if res.OK || len(res.Short) != 1 {
		t.Fatalf("order with a short line: %+v, want refused", res)
	}
	b.wantPromo(t, "TYR-1001", 0, "ann", 0)
	b.wantStock(t, "TYR-1001", 100, 0)

	res = reserve(t, b.store, "o-2", promoLine("TYR-1001", 3, "ann", 3, 4, false), promoLine("TYR-1002", 3, "ann", 3, 4, false))
	if !res.OK || res.Promotional["TYR-1001"] != 3 || res.Promotional["TYR-1002"] != 3 {
		t.Fatalf("two SKUs of one promotion: %+v, want 3 promotional units of each (cap 3 per SKU)", res)
	}
	res = reserve(t, b.store, "o-3", promoLine("TYR-1001", 2, "bob", 3, 4, false))
	if !res.OK || res.Promotional["TYR-1001"] != 0 {
		t.Fatalf("after the cap: %+v, want the base price for every unit", res)
	}
	b.wantPromo(t, "TYR-1001", 3, "ann", 3)
	b.wantPromo(t, "TYR-1002", 3, "ann", 3)
}

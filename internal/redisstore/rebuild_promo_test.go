package redisstore_test

import (
	"testing"
	"time"

	"github.com/orderpipe/orderpipe/internal/redisstore"
	"github.com/orderpipe/orderpipe/internal/testenv"
)

// A rebuild recreates the counters of the SKU's promotions in the same step as its stock
// counters: the units of decided orders plus the promotional units of every live hold (re-created
// or still there) made under the promotion; a hold past its deadline counts nothing (it ends as
// expired); stale values are replaced; the counters expire with the promotion; the re-created
// holds carry their promotional units, so releasing one gives them back.
func TestRebuildStockPromotionCounters(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	b.seed(t, map[string]int64{"A": 20})
	// A hold that survives (only the counters are lost), and stale promotion counters.
	reserve(t, b.store, "kept", promoLine("A", 3, "bob", 0, 0, false))
	if err := b.client.Del(ctx, b.prefix+"inv:{A}").Err(); err != nil {
		t.Fatal(err)
	}
	if err := b.client.HSet(ctx, b.prefix+"promo:{A}:flash", "sold", 99, "c:zed", 5).Err(); err != nil {
		t.Fatal(err)
	}

	now := time.Now()
	future := now.Add(10 * time.Minute)
	end := now.Add(time.Hour).Truncate(time.Millisecond)
	holds := []redisstore.RebuildHold{
		{OrderID: "kept", Qty: 3, Deadline: future, PromotionID: "flash", PromoQty: 3, Customer: "bob"}, // exists: left alone, counted once
		{OrderID: "new", Qty: 4, Deadline: future, PromotionID: "flash", PromoQty: 3, Customer: "ann"},
		{OrderID: "late", Qty: 2, Deadline: now.Add(-time.Second), PromotionID: "flash", PromoQty: 2, Customer: "ann"},
		{OrderID: "plain", Qty: 1, Deadline: future, Customer: "ann"},
		{OrderID: "elsewhere", Qty: 2, Deadline: future, PromotionID: "spring", PromoQty: 2, Customer: "ann"}, // not rebuilt: counts nothing
	}
	promos := []redisstore.RebuildPromo{
		{ID: "flash", End: end, Customers: map[string]int64{"ann": 5, "cy": 2}},
		{ID: "gone", End: now.Add(-redisstore.DefaultEndedTTL - time.Minute), Customers: map[string]int64{"ann": 1}},
	}
	res, err := b.store.RebuildStock(ctx, "A", 20, nil, holds, promos, now)
	if err != nil {
		t.Fatal(err)
	}
	if want := (redisstore.Rebuilt{Done: true, ATP: 10, Held: 10, Created: 3, Expired: 1, Promotions: 1}); res != want {
		t.Fatalf("rebuild: got %+v, want %+v", res, want)
	}
	// decided 7 (ann 5, cy 2) + kept's 3 (bob) + new's 3 (ann); late, plain and elsewhere count nothing.
	testenv.WantPromoCounters(t, b.store, "A", "flash", 13, map[string]int64{"ann": 8, "bob": 3, "cy": 2})
	ttl, err := b.client.PTTL(ctx, b.prefix+"promo:{A}:flash").Result()
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Until(end.Add(redisstore.DefaultEndedTTL)); ttl <= 0 || ttl > want+time.Second || ttl < want-time.Minute {
		t.Fatalf("TTL of the counters %v, want about %v (the promotion's end plus the ended-marker TTL)", ttl, want)
	}
	for _, key := range []string{"promo:{A}:gone", "promo:{A}:spring"} {
		if n, err := b.client.Exists(ctx, b.prefix+key).Result(); err != nil || n != 0 {
			t.Fatalf("%s exists (%d, %v), want no counters for a promotion not rebuilt", key, n, err)
		}
	}
	got, err := b.store.Holds(ctx, "A")
	if err != nil {
		t.Fatal(err)
	}
	var recreated redisstore.RebuildHold
	for _, h := range got {
		if h.OrderID == "new" {
			recreated = h
		}
	}
	if recreated.PromotionID != "flash" || recreated.PromoQty != 3 || recreated.Customer != "ann" || recreated.Qty != 4 {
		t.Fatalf("re-created hold %+v, want 4 units of which 3 under flash for ann", recreated)
	}

	// Releasing the re-created hold gives its promotional units back; so does the surviving one.
	if r, err := b.store.Release(ctx, "new", []string{"A"}); err != nil || !r[0].Found {
		t.Fatalf("release new: %+v %v", r, err)
	}
	testenv.WantPromoCounters(t, b.store, "A", "flash", 10, map[string]int64{"ann": 5, "bob": 3, "cy": 2})
	if _, err := b.store.Release(ctx, "kept", []string{"A"}); err != nil {
		t.Fatal(err)
	}
	testenv.WantPromoCounters(t, b.store, "A", "flash", 7, map[string]int64{"ann": 5, "bob": 0, "cy": 2})
	b.wantStock(t, "A", 17, 3)
	// The hold ended as expired by the rebuild is confirmed late: its promotional units count again, once.
	late := redisstore.Line{SKU: "A", Qty: 2, Promo: &redisstore.LinePromo{ID: "flash", Customer: "ann", Units: 2}}
	for range 2 {
		if _, err := b.store.Confirm(ctx, "late", []redisstore.Line{late}); err != nil {
			t.Fatal(err)
		}
	}
	testenv.WantPromoCounters(t, b.store, "A", "flash", 9, map[string]int64{"ann": 7, "bob": 0, "cy": 2})
}

// A SKU that still has its counters is not rebuilt, and neither are its promotion counters.
func TestRebuildStockLeavesPromotionCountersOfAStockedSKU(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.seed(t, map[string]int64{"A": 20})
	reserve(t, b.store, "o1", promoLine("A", 2, "ann", 0, 0, false))
	res, err := b.store.RebuildStock(t.Context(), "A", 20, nil, nil, []redisstore.RebuildPromo{
		{ID: "flash", End: time.Now().Add(time.Hour), Customers: map[string]int64{"bob": 50}},
		{ID: "spring", End: time.Now().Add(time.Hour), Customers: map[string]int64{"bob": 50}},
	}, time.Now())
	if err != nil || res.Done {
		t.Fatalf("rebuild of a stocked SKU: %+v %v, want nothing done", res, err)
	}
	testenv.WantPromoCounters(t, b.store, "A", "flash", 2, map[string]int64{"ann": 2})
	if n, err := b.client.Exists(t.Context(), b.prefix+"promo:{A}:spring").Result(); err != nil || n != 0 {
		t.Fatalf("counters of spring exist (%d, %v), want none", n, err)
	}
	b.wantStock(t, "A", 18, 2)
}

// Promotional units are validated: at most the hold's quantity, under a named promotion.
func TestRebuildStockRejectsBadPromotionalUnits(t *testing.T) {
	t.Parallel()
	b := setup(t)
	future := time.Now().Add(time.Hour)
	for _, h := range []redisstore.RebuildHold{
		{OrderID: "o1", Qty: 2, Deadline: future, PromotionID: "flash", PromoQty: 3, Customer: "ann"},
		{OrderID: "o1", Qty: 2, Deadline: future, PromoQty: 1, Customer: "ann"},
	} {
		if _, err := b.store.RebuildStock(t.Context(), "A", 10, nil, []redisstore.RebuildHold{h}, nil, time.Now()); err == nil {
			t.Fatalf("hold %+v accepted, want an error", h)
		}
	}
	if _, err := b.store.RebuildStock(t.Context(), "A", 10, nil, nil, []redisstore.RebuildPromo{{ID: "a{b}", End: future}}, time.Now()); err == nil {
		t.Fatal("promotion id with braces accepted, want an error")
	}
	if st, _ := b.store.Availability(t.Context(), "A"); st.Known {
		t.Fatalf("a rejected rebuild created counters: %+v", st)
	}
}

package redisstore_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/orderpipe/orderpipe/internal/redisstore"
)

// marker returns the ended marker of orderID's hold on sku ("" when there is none).
func (b bundle) marker(t *testing.T, sku, orderID string) string {
	t.Helper()
	v, err := b.client.Get(t.Context(), b.prefix+"ended:{"+sku+"}:"+orderID).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		t.Fatalf("GET ended marker %s/%s: %v", sku, orderID, err)
	}
	return v
}

// The api answered 202 but could not store the answer; the client's retry runs again with the
// same order id after order-worker confirmed the order. The retry is answered as already held
// and takes nothing: the units were counted sold once, by the confirmation.
func TestReserveRetryAfterConfirmTakesNothing(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.seed(t, map[string]int64{"A": 10, "B": 5})
	lines := []redisstore.Line{{SKU: "A", Qty: 4}, {SKU: "B", Qty: 1}}
	if res := reserve(t, b.store, "o", lines...); !res.OK {
		t.Fatalf("first reserve: %+v, want OK", res)
	}
	b.wantStock(t, "A", 6, 4)
	if res, err := b.store.Confirm(t.Context(), "o", lines); err != nil || !res[0].Found || !res[1].Found {
		t.Fatalf("confirm = %+v, %v", res, err)
	}
	b.wantStock(t, "A", 6, 0)
	b.wantStock(t, "B", 4, 0)

	for range 2 {
		res := reserve(t, b.store, "o", lines...)
		if !res.OK || len(res.Short) != 0 || len(res.NotStocked) != 0 || len(res.Promotional) != 0 {
			t.Fatalf("retry after confirm: %+v, want OK (already held), nothing promotional", res)
		}
		b.wantStock(t, "A", 6, 0)
		b.wantStock(t, "B", 4, 0)
		b.wantHolds(t, "A", 0)
		b.wantHolds(t, "B", 0)
		if m := b.marker(t, "A", "o"); !strings.HasPrefix(m, "confirmed") {
			t.Fatalf("ended marker after the retry = %q, want it still confirmed", m)
		}
	}
	// The worker sees the retry's duplicate OrderPlaced and confirms again: nothing to do.
	res, err := b.store.Confirm(t.Context(), "o", lines)
	if err != nil || res[0].Found || res[1].Found {
		t.Fatalf("confirm of the duplicate = %+v, %v, want a no-op", res, err)
	}
	b.wantStock(t, "A", 6, 0)
	b.wantStock(t, "B", 4, 0)
}

// The same under a promotion: the retry reports the promotional units of the first answer and
// the promotion's counters do not grow.
func TestReserveRetryAfterConfirmKeepsPromotionalUnits(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.seed(t, map[string]int64{"TYR-1001": 100})
	first := reserve(t, b.store, "o", promoLine("TYR-1001", 6, "ann", 10, 4, false))
	if !first.OK || first.Promotional["TYR-1001"] != 4 {
		t.Fatalf("first reserve: %+v, want 4 promotional units (limit 4)", first)
	}
	b.wantPromo(t, "TYR-1001", 4, "ann", 4)
	// As order-worker confirms: the order's lines split into promotional and base-price units.
	confirmed := []redisstore.Line{
		{SKU: "TYR-1001", Qty: 4, Promo: &redisstore.LinePromo{ID: "flash", Customer: "ann", Units: 4}},
		{SKU: "TYR-1001", Qty: 2},
	}
	if res, err := b.store.Confirm(t.Context(), "o", confirmed); err != nil || !res[0].Found || res[0].Late {
		t.Fatalf("confirm = %+v, %v, want a normal confirm", res, err)
	}
	b.wantStock(t, "TYR-1001", 94, 0)
	if m := b.marker(t, "TYR-1001", "o"); m != "confirmed:4:flash" {
		t.Fatalf("ended marker = %q, want confirmed:4:flash (promotional units, then promotion)", m)
	}

	retry := reserve(t, b.store, "o", promoLine("TYR-1001", 6, "ann", 10, 4, false))
	if !retry.OK || retry.Promotional["TYR-1001"] != 4 {
		t.Fatalf("retry after confirm: %+v, want OK with the same 4 promotional units", retry)
	}
	b.wantStock(t, "TYR-1001", 94, 0)
	b.wantPromo(t, "TYR-1001", 4, "ann", 4)
	b.wantHolds(t, "TYR-1001", 0)

	// A retry priced without the promotion (or under another one) reports no promotional
	// units, like a retry that finds the live hold.
	plain := reserve(t, b.store, "o", redisstore.Line{SKU: "TYR-1001", Qty: 6})
	if !plain.OK || len(plain.Promotional) != 0 {
		t.Fatalf("retry without the promotion: %+v, want OK, nothing promotional", plain)
	}
	b.wantStock(t, "TYR-1001", 94, 0)
	b.wantPromo(t, "TYR-1001", 4, "ann", 4)
}

// A late confirmation (the hold had expired) records the promotional units it counted again,
// so a retry after it answers like the first attempt and takes nothing either.
func TestReserveRetryAfterLateConfirmTakesNothing(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.seed(t, map[string]int64{"TYR-1001": 100})
	ctx := t.Context()
	res, err := b.store.Reserve(ctx, "o", []redisstore.Line{promoLine("TYR-1001", 3, "bob", 10, 4, false)}, time.Now().Add(-time.Second))
	if err != nil || !res.OK || res.Promotional["TYR-1001"] != 3 {
		t.Fatalf("reserve: %+v, %v, want 3 promotional units", res, err)
	}
	if _, err := b.store.ExpireDue(ctx, "TYR-1001", time.Now(), 100); err != nil {
		t.Fatal(err)
	}
	b.wantStock(t, "TYR-1001", 100, 0)
	b.wantPromo(t, "TYR-1001", 0, "bob", 0)
	late := []redisstore.Line{{SKU: "TYR-1001", Qty: 3, Promo: &redisstore.LinePromo{ID: "flash", Customer: "bob", Units: 3}}}
	if r, err := b.store.Confirm(ctx, "o", late); err != nil || !r[0].Late {
		t.Fatalf("late confirm = %+v, %v, want late", r, err)
	}
	b.wantStock(t, "TYR-1001", 97, 0)
	b.wantPromo(t, "TYR-1001", 3, "bob", 3)

	retry := reserve(t, b.store, "o", promoLine("TYR-1001", 3, "bob", 10, 4, false))
	if !retry.OK || retry.Promotional["TYR-1001"] != 3 {
		t.Fatalf("retry after the late confirm: %+v, want OK with the same 3 promotional units", retry)
	}
	b.wantStock(t, "TYR-1001", 97, 0)
	b.wantPromo(t, "TYR-1001", 3, "bob", 3)
	b.wantHolds(t, "TYR-1001", 0)
}

// Regression guard: only a confirmation stops the retry. After a release (the order was refused,
// or answered 503) the retry legitimately holds again, promotional units included.
func TestReserveRetryAfterReleaseTakesUnitsAgain(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.seed(t, map[string]int64{"TYR-1001": 100})
	if res := reserve(t, b.store, "o", promoLine("TYR-1001", 6, "ann", 10, 4, false)); !res.OK || res.Promotional["TYR-1001"] != 4 {
		t.Fatalf("first reserve: %+v", res)
	}
	if _, err := b.store.Release(t.Context(), "o", []string{"TYR-1001"}); err != nil {
		t.Fatal(err)
	}
	b.wantStock(t, "TYR-1001", 100, 0)
	b.wantPromo(t, "TYR-1001", 0, "ann", 0)
	if m := b.marker(t, "TYR-1001", "o"); m != "released" {
		t.Fatalf("ended marker after release = %q, want released", m)
	}

	res := reserve(t, b.store, "o", promoLine("TYR-1001", 6, "ann", 10, 4, false))
	if !res.OK || res.Promotional["TYR-1001"] != 4 {
		t.Fatalf("retry after release: %+v, want OK with 4 promotional units", res)
	}
	b.wantStock(t, "TYR-1001", 94, 6)
	b.wantPromo(t, "TYR-1001", 4, "ann", 4)
	b.wantHolds(t, "TYR-1001", 1)
	if m := b.marker(t, "TYR-1001", "o"); m != "" {
		t.Fatalf("ended marker after the new hold = %q, want none", m)
	}
}

// Regression guard: after an expiry the retry holds again, and the worker's confirmation then
// ends the new hold normally (not late: the units are taken once).
func TestReserveRetryAfterExpiryTakesUnitsAgain(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.seed(t, map[string]int64{"A": 10})
	ctx := t.Context()
	lines := []redisstore.Line{{SKU: "A", Qty: 3}}
	if res, err := b.store.Reserve(ctx, "o", lines, time.Now().Add(-time.Second)); err != nil || !res.OK {
		t.Fatalf("reserve: %+v, %v", res, err)
	}
	got, err := b.store.ExpireDue(ctx, "A", time.Now(), 100)
	if err != nil || len(got) != 1 || got[0].OrderID != "o" {
		t.Fatalf("ExpireDue = %+v, %v, want the hold of o", got, err)
	}
	b.wantStock(t, "A", 10, 0)
	if m := b.marker(t, "A", "o"); m != "expired" {
		t.Fatalf("ended marker after expiry = %q, want expired", m)
	}

	if res := reserve(t, b.store, "o", lines...); !res.OK {
		t.Fatalf("retry after expiry: %+v, want OK", res)
	}
	b.wantStock(t, "A", 7, 3)
	b.wantHolds(t, "A", 1)
	r, err := b.store.Confirm(ctx, "o", lines)
	if err != nil || !r[0].Found || r[0].Late || r[0].Qty != 3 {
		t.Fatalf("confirm = %+v, %v, want a normal confirm of 3", r, err)
	}
	b.wantStock(t, "A", 7, 0)
}

package testenv

import (
	"maps"
	"testing"

	"github.com/orderpipe/orderpipe/internal/redisstore"
)

// WantPromoCounters fails the test unless the counters of promotionID on sku are exactly sold and
// customers (each customer's promotional units).
func WantPromoCounters(t testing.TB, store *redisstore.Store, sku, promotionID string, sold int64, customers map[string]int64) {
	t.Helper()
	gotSold, got, err := store.PromoCounters(t.Context(), sku, promotionID)
	if err != nil {
		t.Fatal(err)
	}
	if gotSold != sold || !maps.Equal(got, customers) {
		t.Fatalf("promotion %s counters of %s: sold %d, customers %v; want %d and %v", promotionID, sku, gotSold, got, sold, customers)
	}
}

package redisstore_test

import (
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/orderpipe/orderpipe/internal/redisstore"
	"github.com/orderpipe/orderpipe/internal/testenv"
)

// bundle is what a test needs: the store, the raw client to look at the key
// layout, and the test's key prefix.
type bundle struct {
	store  *redisstore.Store
	client *redis.Client
	prefix string
}

func setup(t testing.TB) bundle {
	t.Helper()
	client, prefix := testenv.Redis(t)
	return bundle{store: redisstore.New(client, prefix), client: client, prefix: prefix}
}

// seed creates counters for the given SKUs and fails the test otherwise.
func (b bundle) seed(t testing.TB, atp map[string]int64) {
	t.Helper()
	n, err := b.store.SeedStock(t.Context(), atp)
	if err != nil {
		t.Fatalf("SeedStock: %v", err)
	}
	if n != len(atp) {
		t.Fatalf("SeedStock created %d, want %d", n, len(atp))
	}
}

// wantStock asserts the counters of sku.
func (b bundle) wantStock(t testing.TB, sku string, atp, held int64) {
	t.Helper()
	got, err := b.store.Availability(t.Context(), sku)
	if err != nil {
		t.Fatalf("Availability(%s): %v", sku, err)
	}
	want := redisstore.Stock{ATP: atp, Held: held, Known: true}
	if got != want {
		t.Fatalf("stock of %s: got %+v, want %+v", sku, got, want)
	}
}

// holds counts the holds of sku as seen by the zset and by the hold keys;
// both must agree.
func (b bundle) holds(t testing.TB, sku string) int64 {
	t.Helper()
	ctx := t.Context()
	zn, err := b.client.ZCard(ctx, b.prefix+"holds:{"+sku+"}").Result()
	if err != nil {
		t.Fatalf("ZCARD holds %s: %v", sku, err)
	}
	var kn int64
	iter := b.client.Scan(ctx, 0, b.prefix+"hold:{"+sku+"}:*", 1000).Iterator()
	for iter.Next(ctx) {
		kn++
	}
	if err := iter.Err(); err != nil {
		t.Fatalf("SCAN hold keys %s: %v", sku, err)
	}
	if zn != kn {
		t.Fatalf("holds of %s: zset has %d members, %d hold keys exist", sku, zn, kn)
	}
	return zn
}

func (b bundle) wantHolds(t testing.TB, sku string, want int64) {
	t.Helper()
	if got := b.holds(t, sku); got != want {
		t.Fatalf("holds of %s: got %d, want %d", sku, got, want)
	}
}

func reserve(t testing.TB, s *redisstore.Store, orderID string, lines ...redisstore.Line) redisstore.Reservation {
	t.Helper()
	res, err := s.Reserve(t.Context(), orderID, lines, time.Now().Add(15*time.Minute))
	if err != nil {
		t.Fatalf("Reserve(%s): %v", orderID, err)
	}
	return res
}

// unreachable returns a store whose client points at a closed port.
func unreachable(t testing.TB) *redisstore.Store {
	t.Helper()
	client := redis.NewClient(&redis.Options{
		Addr:        "127.0.0.1:1",
		DialTimeout: 200 * time.Millisecond,
		MaxRetries:  -1,
	})
	t.Cleanup(func() { _ = client.Close() })
	return redisstore.New(client, "t:unreachable:")
}

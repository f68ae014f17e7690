package pricing_test

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/orderpipe/orderpipe/internal/postgres"
	"github.com/orderpipe/orderpipe/internal/pricing"
	"github.com/orderpipe/orderpipe/internal/promotion"
	"github.com/orderpipe/orderpipe/internal/redisstore"
	"github.com/orderpipe/orderpipe/internal/testenv"
)

type stack struct {
	rdb    *redis.Client
	prefix string
	store  *redisstore.Store
	svc    *pricing.Service
	pub    *pricing.Publisher
	cat    *postgres.CatalogStore
}

func setup(t *testing.T) stack {
	t.Helper()
	pool, _ := testenv.Postgres(t)
	rdb, prefix := testenv.Redis(t)
	store := redisstore.New(rdb, prefix)
	cat := postgres.NewCatalogStore(pool)
	if _, err := cat.UpsertMany(t.Context(), []postgres.Product{
		{SKU: "TYR-1001", Name: "Tyre", Category: "tyres", Brand: "A", PriceMinor: 10000, Currency: "EUR", Active: true},
		{SKU: "TYR-1002", Name: "Tyre", Category: "tyres", Brand: "B", PriceMinor: 8000, Currency: "EUR", Active: true},
		{SKU: "BRK-2001", Name: "Pads", Category: "brakes", Brand: "C", PriceMinor: 5000, Currency: "EUR", Active: true},
	}); err != nil {
		t.Fatal(err)
	}
	promos := postgres.NewPromotionStore(pool)
	pub := pricing.NewPublisher(pricing.Stores{Catalog: cat, Promotions: promos}, store)
	return stack{rdb: rdb, prefix: prefix, store: store, svc: &pricing.Service{Store: promos, Publisher: pub}, pub: pub, cat: cat}
}

func within(t *testing.T, d time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// sched is a running scheduler (with its own price cache) of the stack.
type sched struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// startScheduler runs a scheduler for owner: ended windows looked for every 100ms, a full
// recompute only every hour.
func (s stack) startScheduler(t *testing.T, owner string) sched {
	t.Helper()
	ctx := t.Context()
	cache := pricing.NewCache(s.store.Prices, quiet())
	if err := cache.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		var wg sync.WaitGroup
		wg.Go(func() { _ = cache.Run(cctx, 200*time.Millisecond, s.store.SubscribePricesChanged) })
		sc := &pricing.Scheduler{Publisher: s.pub, Cache: cache, Redis: s.store, Owner: owner,
			Interval: 100 * time.Millisecond, Full: time.Hour, Log: quiet()}
		_ = sc.Run(cctx)
		wg.Wait()
	}()
	return sched{cancel: cancel, done: done}
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// A publish from one process reaches the cache of another through the announcement, and a
// category promotion covers the category's SKUs only.
func TestPublishReachesEveryCache(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	other := pricing.NewCache(s.store.Prices, quiet())
	if err := other.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() { _ = other.Run(ctx, time.Hour, s.store.SubscribePricesChanged) })
	time.Sleep(200 * time.Millisecond) // let the subscription establish; the hourly refresh cannot help

	now := time.Now()
	if _, err := s.svc.Create(ctx, promotion.Promotion{
		ID: "tyres-20", Name: "Tyres", Kind: promotion.KindPercent, PercentOff: 20, Category: "tyres",
		StartsAt: now.Add(-time.Minute), EndsAt: now.Add(time.Hour),
	}); err != nil {
		t.Fatal(err)
	}
	within(t, 10*time.Second, "announced prices reach the other cache", func() bool {
		a, okA := other.At("TYR-1001", time.Now())
		b, okB := other.At("TYR-1002", time.Now())
		return okA && okB && a.PriceMinor == 8000 && b.PriceMinor == 6400
	})
	if _, ok := other.At("BRK-2001", time.Now()); ok {
		t.Fatal("a tyre promotion prices brake pads")
	}
	// A new base price republishes the derived promotional price.
	if _, err := s.cat.Upsert(ctx, postgres.Product{SKU: "TYR-1001", Name: "Tyre", Category: "tyres", Brand: "A", PriceMinor: 12000, Currency: "EUR", Active: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.pub.Recompute(ctx, []string{"TYR-1001"}); err != nil {
		t.Fatal(err)
	}
	within(t, 10*time.Second, "repriced SKU reaches the other cache", func() bool {
		w, ok := other.At("TYR-1001", time.Now())
		return ok && w.PriceMinor == 9600
	})
	// Ending removes the timelines everywhere.
	if _, err := s.svc.End(ctx, "tyres-20"); err != nil {
		t.Fatal(err)
	}
	within(t, 10*time.Second, "ended promotion leaves the other cache", func() bool {
		return len(other.SKUs()) == 0
	})
}

// The scheduler drops windows that ended, and only one of several schedulers works at a time;
// when it stops, another takes over.
func TestSchedulerLockAndBoundaries(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := t.Context()
	now := time.Now()
	if _, err := s.svc.Create(ctx, promotion.Promotion{
		ID: "short", Name: "Short", Kind: promotion.KindFixed, FixedPriceMinor: 100, SKUs: []string{"BRK-2001"},
		StartsAt: now.Add(-time.Minute), EndsAt: now.Add(1500 * time.Millisecond),
	}); err != nil {
		t.Fatal(err)
	}
	docs, err := s.store.Prices(ctx)
	if err != nil || len(docs) != 1 {
		t.Fatalf("published %d timelines (%v), want 1", len(docs), err)
	}
	a := s.startScheduler(t, "a")
	b := s.startScheduler(t, "b")
	within(t, 10*time.Second, "a scheduler removes the ended window", func() bool {
		docs, err := s.store.Prices(ctx)
		return err == nil && len(docs) == 0
	})
	// One lock holder at a time.
	held := 0
	for _, owner := range []string{"a", "b"} {
		ok, err := s.store.TryLock(ctx, pricing.SchedulerLock, owner, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			held++
		}
	}
	if held != 1 {
		t.Fatalf("%d schedulers hold the lock, want exactly 1", held)
	}
	// Stop both, then a third takes over once the lock lapses and handles the next boundary.
	a.cancel()
	b.cancel()
	<-a.done
	<-b.done
	if _, err := s.svc.Create(ctx, promotion.Promotion{
		ID: "short-2", Name: "Short 2", Kind: promotion.KindFixed, FixedPriceMinor: 100, SKUs: []string{"BRK-2001"},
		StartsAt: time.Now().Add(-time.Minute), EndsAt: time.Now().Add(time.Second),
	}); err != nil {
		t.Fatal(err)
	}
	c := s.startScheduler(t, "c")
	defer func() { c.cancel(); <-c.done }()
	within(t, 15*time.Second, "the third scheduler removes the next ended window", func() bool {
		docs, err := s.store.Prices(ctx)
		return err == nil && len(docs) == 0
	})
}

// Redis losing its data takes the published timelines with it: the scheduler notices within an
// interval (the marker of a full publish is gone) and republishes every SKU, long before its
// Full interval.
func TestSchedulerRepublishesAfterRedisLostItsData(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := t.Context()
	if _, err := s.svc.Create(ctx, promotion.Promotion{
		ID: "winter", Name: "Winter", Kind: promotion.KindPercent, PercentOff: 20, Category: "tyres",
		StartsAt: time.Now().Add(-time.Minute), EndsAt: time.Now().Add(time.Hour),
	}); err != nil {
		t.Fatal(err)
	}
	a := s.startScheduler(t, "a")
	defer func() { a.cancel(); <-a.done }()
	within(t, 10*time.Second, "the first full publish marks it", func() bool {
		ok, err := s.store.PricesPublished(ctx)
		return err == nil && ok
	})

	// Every key of the test's prefix is lost, as in a Redis restarted empty.
	keys, err := s.rdb.Keys(ctx, s.prefix+"*").Result()
	if err != nil || len(keys) == 0 {
		t.Fatalf("keys of the prefix: %v, %v", keys, err)
	}
	if err := s.rdb.Del(ctx, keys...).Err(); err != nil {
		t.Fatal(err)
	}
	within(t, 10*time.Second, "the timelines are republished after the loss", func() bool {
		docs, err := s.store.Prices(ctx)
		return err == nil && len(docs) == 2 // the two tyres
	})
}

// Package pricing publishes precomputed prices and serves them from memory. When a promotion is
// created, changed or ended, or a product's base price changes, the Publisher recomputes the
// price timeline (promotion.Entry) of every affected SKU from Postgres and writes it to Redis,
// announcing the SKUs on a pub/sub channel; every api keeps a Cache of all timelines, reloads
// announced SKUs at once, and prices an order with one map lookup at its acceptance time. The
// Scheduler, run by every api but active in one at a time (a Redis lock), republishes timelines
// whose windows ended, and everything periodically, to heal a lost write.
package pricing

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/orderpipe/orderpipe/internal/postgres"
	"github.com/orderpipe/orderpipe/internal/promotion"
)

// Redis is the part of the Redis store pricing uses.
type Redis interface {
	PublishPrices(ctx context.Context, set map[string][]byte, remove []string) error
	Prices(ctx context.Context, skus ...string) (map[string][]byte, error)
	TryLock(ctx context.Context, name, owner string, ttl time.Duration) (bool, error)
	MarkPricesPublished(ctx context.Context) error
	PricesPublished(ctx context.Context) (bool, error)
}

// Postgres is the part of the Postgres stores pricing uses.
type Postgres interface {
	Products(ctx context.Context) ([]postgres.Product, error)
	LivePromotions(ctx context.Context, now time.Time) ([]promotion.Promotion, error)
}

// Stores adapts the Postgres stores to Postgres.
type Stores struct {
	Catalog    *postgres.CatalogStore
	Promotions *postgres.PromotionStore
}

// Products lists every product.
func (s Stores) Products(ctx context.Context) ([]postgres.Product, error) { return s.Catalog.All(ctx) }

// LivePromotions lists the promotions not ended at now.
func (s Stores) LivePromotions(ctx context.Context, now time.Time) ([]promotion.Promotion, error) {
	return s.Promotions.List(ctx, true, now)
}

// Publisher recomputes and publishes price timelines.
type Publisher struct {
	pg  Postgres
	rdb Redis
	now func() time.Time
	mu  sync.Mutex // one recomputation at a time per process, so two writes cannot interleave

	// OnPublish, if set, is called with the SKUs just published, so this process's own cache
	// sees its writes at once instead of when the announcement comes back.
	OnPublish func(ctx context.Context, skus []string) error
}

// NewPublisher returns a Publisher.
func NewPublisher(pg Postgres, rdb Redis) *Publisher {
	return &Publisher{pg: pg, rdb: rdb, now: time.Now}
}

// Recompute computes the timelines of skus (every SKU when skus is nil) from Postgres and
// publishes those that differ from what Redis has, removing timelines left without windows. It
// returns how many SKUs it published or removed.
func (p *Publisher) Recompute(ctx context.Context, skus []string) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	products, err := p.pg.Products(ctx)
	if err != nil {
		return 0, fmt.Errorf("recompute prices: %w", err)
	}
	promos, err := p.pg.LivePromotions(ctx, now)
	if err != nil {
		return 0, fmt.Errorf("recompute prices: %w", err)
	}
	var want map[string]bool
	if skus != nil {
		want = make(map[string]bool, len(skus))
		for _, s := range skus {
			want[s] = true
		}
	}
	current, err := p.rdb.Prices(ctx, skus...)
	if err != nil {
		return 0, fmt.Errorf("recompute prices: %w", err)
	}
	set := map[string][]byte{}
	var remove []string
	known := map[string]bool{}
	for _, pr := range products {
		if want != nil && !want[pr.SKU] {
			continue
		}
		known[pr.SKU] = true
		e := promotion.Build(pr.SKU, pr.Category, pr.PriceMinor, promos, now)
		if len(e.Windows) == 0 {
			if _, ok := current[pr.SKU]; ok {
				remove = append(remove, pr.SKU)
			}
			continue
		}
		doc, err := json.Marshal(e)
		if err != nil {
			return 0, fmt.Errorf("encode price timeline of %s: %w", pr.SKU, err)
		}
		if !bytes.Equal(doc, current[pr.SKU]) {
			set[pr.SKU] = doc
		}
	}
	for sku := range current {
		if !known[sku] && (want == nil || want[sku]) {
			remove = append(remove, sku) // the product is gone
		}
	}
	if err := p.rdb.PublishPrices(ctx, set, remove); err != nil {
		return 0, fmt.Errorf("recompute prices: %w", err)
	}
	if p.OnPublish != nil && len(set)+len(remove) > 0 {
		changed := append(slices.Collect(maps.Keys(set)), remove...)
		if err := p.OnPublish(ctx, changed); err != nil {
			return 0, fmt.Errorf("recompute prices: reload published: %w", err)
		}
	}
	if skus == nil {
		if err := p.rdb.MarkPricesPublished(ctx); err != nil {
			return 0, fmt.Errorf("recompute prices: %w", err)
		}
	}
	return len(set) + len(remove), nil
}

// Cache is one api's in-memory copy of every published timeline. Lookups never leave memory.
type Cache struct {
	load func(ctx context.Context, skus ...string) (map[string][]byte, error)
	log  *slog.Logger

	mu      sync.RWMutex
	entries map[string]promotion.Entry
	loaded  atomic.Bool // a full load succeeded at least once
}

// NewCache returns an empty cache reading from load (redisstore.Store.Prices); call Refresh
// before serving.
func NewCache(load func(ctx context.Context, skus ...string) (map[string][]byte, error), log *slog.Logger) *Cache {
	return &Cache{load: load, log: log, entries: map[string]promotion.Entry{}}
}

func decode(docs map[string][]byte) (map[string]promotion.Entry, error) {
	out := make(map[string]promotion.Entry, len(docs))
	var errs []error
	for sku, doc := range docs {
		var e promotion.Entry
		if err := json.Unmarshal(doc, &e); err != nil {
			errs = append(errs, fmt.Errorf("price timeline of %s: %w", sku, err))
			continue
		}
		out[sku] = e
	}
	return out, errors.Join(errs...)
}

// Refresh reloads every timeline.
func (c *Cache) Refresh(ctx context.Context) error {
	docs, err := c.load(ctx)
	if err != nil {
		return err
	}
	entries, err := decode(docs)
	c.mu.Lock()
	c.entries = entries
	c.mu.Unlock()
	c.loaded.Store(true)
	return err
}

// Ready reports whether every timeline has been loaded once. Until then the api cannot know
// which promotions apply, so it must not price orders (it answers 503 and /readyz fails).
func (c *Cache) Ready() bool { return c.loaded.Load() }

// Reload reloads the timelines of skus (announced as changed); SKUs without one are dropped.
func (c *Cache) Reload(ctx context.Context, skus []string) error {
	docs, err := c.load(ctx, skus...)
	if err != nil {
		return err
	}
	entries, err := decode(docs)
	c.mu.Lock()
	for _, s := range skus {
		if e, ok := entries[s]; ok {
			c.entries[s] = e
		} else {
			delete(c.entries, s)
		}
	}
	c.mu.Unlock()
	return err
}

// At returns the promotion window pricing sku at t, if any.
func (c *Cache) At(sku string, t time.Time) (promotion.Window, bool) {
	c.mu.RLock()
	e, ok := c.entries[sku]
	c.mu.RUnlock()
	if !ok {
		return promotion.Window{}, false
	}
	return e.At(t)
}

// Entry returns the timeline of sku.
func (c *Cache) Entry(sku string) (promotion.Entry, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	e, ok := c.entries[sku]
	return e, ok
}

// Stale lists the SKUs whose timeline has a window that ended by now.
func (c *Cache) Stale(now time.Time) []string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	var out []string
	for sku, e := range c.entries {
		if e.Stale(now) {
			out = append(out, sku)
		}
	}
	slices.Sort(out)
	return out
}

// SKUs lists the SKUs with a timeline.
func (c *Cache) SKUs() []string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return slices.Sorted(maps.Keys(c.entries))
}

// Run keeps the cache current until ctx ends: it reloads announced SKUs at once, everything
// whenever the subscription is (re)established (announcements may have been lost meanwhile),
// and everything every refresh interval (a bound on any lost announcement). subscribe is
// redisstore.Store.SubscribePricesChanged.
func (c *Cache) Run(ctx context.Context, refresh time.Duration, subscribe func(ctx context.Context, changed func([]string), synced func()) error) error {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(refresh)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if err := c.Refresh(ctx); err != nil && ctx.Err() == nil {
					c.log.Warn("price cache refresh", "err", err)
				}
			}
		}
	}()
	err := subscribe(ctx, func(skus []string) {
		if err := c.Reload(ctx, skus); err != nil && ctx.Err() == nil {
			c.log.Warn("price cache reload", "skus", len(skus), "err", err)
		}
	}, func() {
		if err := c.Refresh(ctx); err != nil && ctx.Err() == nil {
			c.log.Warn("price cache refresh", "err", err)
		}
	})
	wg.Wait()
	if errors.Is(err, context.Canceled) || ctx.Err() != nil {
		return nil
	}
	return err
}

// SchedulerLock is the name of the Redis lock the active scheduler holds.
const SchedulerLock = "promo-scheduler"

// Scheduler republishes timelines at window boundaries. Every api runs one; the one holding the
// Redis lock works, the others wait to take over when it stops renewing it. Besides every Full
// interval, it republishes every SKU as soon as the marker of a full publish is missing from
// Redis (Redis lost its data), so a flash sale's prices come back within an Interval.
type Scheduler struct {
	Publisher *Publisher
	Cache     *Cache
	Redis     Redis
	Owner     string        // unique per process
	Interval  time.Duration // how often ended windows are looked for
	Full      time.Duration // how often every SKU is recomputed
	Log       *slog.Logger
}

// Run works until ctx ends.
func (s *Scheduler) Run(ctx context.Context) error {
	t := time.NewTicker(s.Interval)
	defer t.Stop()
	var lastFull time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		held, err := s.Redis.TryLock(ctx, SchedulerLock, s.Owner, 3*s.Interval)
		if err != nil {
			if ctx.Err() == nil {
				s.Log.Warn("promotion scheduler lock", "err", err)
			}
			continue
		}
		if !held {
			continue
		}
		var skus []string
		full := time.Since(lastFull) >= s.Full
		if !full {
			// Redis lost its data (restarted empty, failed over without it): the timelines are
			// gone and every api would price at the base price until the next full run.
			published, err := s.Redis.PricesPublished(ctx)
			if err == nil && !published {
				s.Log.Warn("price timelines missing from Redis; republishing every SKU now")
				full = true
			}
		}
		if full {
			lastFull = time.Now() // nil skus: every SKU
		} else if skus = s.Cache.Stale(time.Now()); len(skus) == 0 {
			continue
		}
		n, err := s.Publisher.Recompute(ctx, skus)
		if err != nil {
			if ctx.Err() == nil {
				s.Log.Warn("promotion scheduler", "err", err)
			}
			continue
		}
		if n > 0 {
			s.Log.Info("price timelines republished", "skus", n)
		}
	}
}

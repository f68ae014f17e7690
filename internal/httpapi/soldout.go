package httpapi

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/orderpipe/orderpipe/internal/redisstore"
)

// SoldOutTTL is how long the api trusts, without asking Redis, that a SKU is sold out. A
// stock-changed announcement (a release, an expired hold, a delivery, a repair) ends it at once;
// the TTL bounds how long a lost announcement can keep a SKU looking sold out.
const SoldOutTTL = time.Second

// StockView is the api's in-process view of availability, shared by every request of the
// process:
//
//   - a short cache of GET /v1/inventory/{sku} answers (TTL INVENTORY_CACHE_MAX_AGE), so a flash
//     sale's availability polling costs one Redis read per SKU and TTL, not one per request;
//   - the SKUs known to be sold out (a reservation found ATP 0, or an availability read said 0):
//     the intake refuses their orders with 409 without calling Redis (the sold-out fast path).
//
// Both forget a SKU when it is announced on the stock-changed channel (Run), and everything when
// the subscription is (re)established, since announcements made while it was down are lost.
type StockView struct {
	read     func(ctx context.Context, sku string) (redisstore.Stock, error)
	cacheTTL time.Duration
	now      func() time.Time

	mu      sync.RWMutex
	epoch   uint64 // counts announcements and resets
	resetAt uint64 // epoch of the last reset
	skus    map[string]*viewEntry

	announced prometheus.Counter
	resets    prometheus.Counter
}

type viewEntry struct {
	stock      redisstore.Stock
	cachedTill time.Time
	soldTill   time.Time
	changedAt  uint64 // epoch of the SKU's last announcement
}

// NewStockView builds the view over read (the Redis availability read); answers are cached for
// cacheTTL (0 disables the cache, not the sold-out fast path).
func NewStockView(read func(ctx context.Context, sku string) (redisstore.Stock, error), cacheTTL time.Duration, reg prometheus.Registerer) *StockView {
	f := promauto.With(reg)
	return &StockView{
		read: read, cacheTTL: cacheTTL, now: time.Now, skus: map[string]*viewEntry{},
		announced: f.NewCounter(prometheus.CounterOpts{
			Name: "orderpipe_api_stock_changed_total",
			Help: "Stock-changed announcements received (each drops the SKU's cached availability and sold-out mark).",
		}),
		resets: f.NewCounter(prometheus.CounterOpts{
			Name: "orderpipe_api_stock_view_resets_total",
			Help: "Times the stock-changed subscription was (re)established and every cached availability and sold-out mark dropped.",
		}),
	}
}

// Run keeps the view subscribed to stock-changed announcements until ctx ends (subscribe is
// redisstore.Store.SubscribeStockChanged).
func (v *StockView) Run(ctx context.Context, subscribe func(ctx context.Context, changed func(sku string), synced func()) error) error {
	err := subscribe(ctx, v.Changed, v.Reset)
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// Changed forgets what the view knows about sku: units may be available again.
func (v *StockView) Changed(sku string) {
	v.announced.Inc()
	v.mu.Lock()
	defer v.mu.Unlock()
	v.epoch++
	v.skus[sku] = &viewEntry{changedAt: v.epoch}
}

// Reserved forgets the cached availability of skus: this process just held some of their units.
// (Other api instances' caches keep their answer for up to the cache TTL, as browsers and CDNs
// do with the Cache-Control max-age.)
func (v *StockView) Reserved(skus []string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.epoch++
	for _, sku := range skus {
		if e := v.skus[sku]; e != nil {
			e.cachedTill, e.changedAt = time.Time{}, v.epoch
		}
	}
}

// Reset forgets everything.
func (v *StockView) Reset() {
	v.resets.Inc()
	v.mu.Lock()
	defer v.mu.Unlock()
	v.epoch++
	v.resetAt = v.epoch
	clear(v.skus)
}

// Epoch returns a token to take before reading Redis and hand to MarkSoldOut afterwards: a mark
// based on a read that an announcement overtook is ignored.
func (v *StockView) Epoch() uint64 {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.epoch
}

// SoldOut reports whether sku is known to be sold out right now.
func (v *StockView) SoldOut(sku string) bool {
	v.mu.RLock()
	e := v.skus[sku]
	v.mu.RUnlock()
	return e != nil && v.now().Before(e.soldTill)
}

// MarkSoldOut records that a Redis read begun at epoch since found sku with no units, unless an
// announcement for sku (or a reset) came in after since.
func (v *StockView) MarkSoldOut(sku string, since uint64) {
	v.mu.Lock()
	defer v.mu.Unlock()
	e := v.entry(sku, since)
	if e == nil {
		return
	}
	e.soldTill = v.now().Add(SoldOutTTL)
}

// entry returns sku's entry for an update based on a read begun at epoch since, or nil when an
// announcement or reset overtook that read. v.mu must be held.
func (v *StockView) entry(sku string, since uint64) *viewEntry {
	if v.resetAt > since {
		return nil
	}
	e := v.skus[sku]
	if e == nil {
		e = &viewEntry{}
		v.skus[sku] = e
	}
	if e.changedAt > since {
		return nil
	}
	return e
}

// Availability answers from the cache, or reads Redis and caches the answer for the cache TTL.
// A known SKU with no units left is marked sold out as well.
func (v *StockView) Availability(ctx context.Context, sku string) (redisstore.Stock, error) {
	now := v.now()
	v.mu.RLock()
	e := v.skus[sku]
	if e != nil && now.Before(e.cachedTill) {
		st := e.stock
		v.mu.RUnlock()
		return st, nil
	}
	since := v.epoch
	v.mu.RUnlock()
	st, err := v.read(ctx, sku)
	if err != nil || !st.Known {
		return st, err // an unknown SKU is being rebuilt: ask again next time
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if e := v.entry(sku, since); e != nil {
		if v.cacheTTL > 0 {
			e.stock, e.cachedTill = st, now.Add(v.cacheTTL)
		}
		if st.ATP <= 0 {
			e.soldTill = now.Add(SoldOutTTL)
		}
	}
	return st, nil
}

// Wrap returns s with its Availability answered by the view (the GET /v1/inventory/{sku}
// handler reads through it).
func (v *StockView) Wrap(s Store) Store { return viewStore{Store: s, v: v} }

type viewStore struct {
	Store
	v *StockView
}

func (s viewStore) Availability(ctx context.Context, sku string) (redisstore.Stock, error) {
	return s.v.Availability(ctx, sku)
}

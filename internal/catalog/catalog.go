// Package catalog is the api's in-process view of the product catalog: prices and names for the
// intake path (a map lookup, never a query per order), and sorted pages for GET /v1/products.
// It is refreshed from Postgres periodically and updated at once by this instance's own writes.
package catalog

import (
	"cmp"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/orderpipe/orderpipe/internal/refresh"
)

// Product is a sellable part. Prices are integer minor units of Currency.
type Product struct {
	SKU        string    `json:"sku"`
	Name       string    `json:"name"`
	Category   string    `json:"category"`
	Brand      string    `json:"brand"`
	PriceMinor int64     `json:"price_minor"`
	Currency   string    `json:"currency"`
	Active     bool      `json:"active"`
	UpdatedAt  time.Time `json:"-"`
}

// ErrBadCursor is returned for a cursor this package did not issue.
var ErrBadCursor = errors.New("invalid cursor")

// Loader reads the whole catalog.
type Loader func(ctx context.Context) ([]Product, error)

// Cache holds the catalog in memory.
type Cache struct {
	load Loader

	mu     sync.RWMutex
	bySKU  map[string]Product
	sorted []Product // by SKU
}

// New makes an empty cache; call Refresh before serving.
func New(load Loader) *Cache {
	return &Cache{load: load, bySKU: map[string]Product{}}
}

// Refresh replaces the cache with the loader's catalog.
func (c *Cache) Refresh(ctx context.Context) error {
	ps, err := c.load(ctx)
	if err != nil {
		return fmt.Errorf("load catalog: %w", err)
	}
	c.replace(ps)
	return nil
}

// Run refreshes every interval until ctx ends; failures keep the last good catalog.
func (c *Cache) Run(ctx context.Context, every time.Duration, onErr func(error)) error {
	return refresh.Every(ctx, every, c.Refresh, onErr)
}

func (c *Cache) replace(ps []Product) {
	m := make(map[string]Product, len(ps))
	for _, p := range ps {
		m[p.SKU] = p
	}
	sorted := slices.Clone(ps)
	slices.SortFunc(sorted, func(a, b Product) int { return cmp.Compare(a.SKU, b.SKU) })
	c.mu.Lock()
	c.bySKU, c.sorted = m, sorted
	c.mu.Unlock()
}

// Put records a product this instance just wrote, so its own readers see it at once.
func (c *Cache) Put(p Product) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.bySKU[p.SKU] = p
	i, found := slices.BinarySearchFunc(c.sorted, p.SKU, func(e Product, sku string) int { return cmp.Compare(e.SKU, sku) })
	if found {
		c.sorted[i] = p
		return
	}
	c.sorted = slices.Insert(slices.Clone(c.sorted), i, p)
}

// Get returns the product with sku.
func (c *Cache) Get(sku string) (Product, bool) {
	c.mu.RLock()
	p, ok := c.bySKU[sku]
	c.mu.RUnlock()
	return p, ok
}

// Len is the number of products cached.
func (c *Cache) Len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.sorted)
}

// Page lists products after cursor in SKU order, optionally of one category. The cursor is
// opaque to clients (base64 of the last SKU returned); the next cursor is empty on the last page.
func (c *Cache) Page(category, cursor string, limit int) (items []Product, next string, err error) {
	return c.PageOf(Filter{Category: category}, cursor, limit)
}

// Filter selects products; empty fields select everything.
type Filter struct {
	Category string
	Brand    string
}

func (f Filter) match(p Product) bool {
	return (f.Category == "" || p.Category == f.Category) && (f.Brand == "" || p.Brand == f.Brand)
}

// PageOf lists the products f selects after cursor in SKU order, like Page.
func (c *Cache) PageOf(f Filter, cursor string, limit int) (items []Product, next string, err error) {
	after := ""
	if cursor != "" {
		b, err := base64.RawURLEncoding.DecodeString(cursor)
		if err != nil || !cursorSKU(b) {
			return nil, "", ErrBadCursor
		}
		after = string(b)
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	i, _ := slices.BinarySearchFunc(c.sorted, after, func(e Product, sku string) int { return cmp.Compare(e.SKU, sku) })
	for ; i < len(c.sorted); i++ {
		p := c.sorted[i]
		if p.SKU <= after || !f.match(p) {
			continue
		}
		if len(items) == limit {
			return items, base64.RawURLEncoding.EncodeToString([]byte(items[len(items)-1].SKU)), nil
		}
		items = append(items, p)
	}
	return items, "", nil
}

// cursorSKU reports whether a decoded cursor can be one PageOf issued: a SKU, 1 to 64 printable
// ASCII characters without spaces. Anything else ("garbage" decodes to bytes) is not a cursor.
func cursorSKU(b []byte) bool {
	if len(b) == 0 || len(b) > 64 {
		return false
	}
	for _, c := range b {
		if c < 0x21 || c > 0x7e {
			return false
		}
	}
	return true
}

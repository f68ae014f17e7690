package demo_test

import (
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/orderpipe/orderpipe/internal/demo"
)

// skuPattern mirrors the CHECK constraint on products.sku.
var skuPattern = regexp.MustCompile(`^[A-Z0-9][A-Z0-9-]{2,39}$`)

func TestCatalogIsValid(t *testing.T) {
	t.Parallel()
	catalog := demo.Catalog()
	if n := len(catalog); n < 190 || n > 210 {
		t.Fatalf("got %d products, want about 200", n)
	}
	seen := make(map[string]bool)
	categories := make(map[string]int)
	for _, p := range catalog {
		if seen[p.SKU] {
			t.Errorf("sku %s: duplicate", p.SKU)
		}
		seen[p.SKU] = true
		if !skuPattern.MatchString(p.SKU) {
			t.Errorf("sku %q: does not match %s", p.SKU, skuPattern)
		}
		if p.PriceMinor <= 0 {
			t.Errorf("sku %s: got price %d, want > 0", p.SKU, p.PriceMinor)
		}
		if p.Name == "" || p.Brand == "" || p.Category == "" {
			t.Errorf("sku %s: got name %q brand %q category %q, want all set", p.SKU, p.Name,
				p.Brand, p.Category)
		}
		categories[p.Category]++
	}
	if len(categories) < 8 {
		t.Fatalf("got %d categories %v, want at least 8", len(categories), categories)
	}
	if !slices.IsSortedFunc(catalog, func(a, b demo.Product) int {
		return strings.Compare(a.SKU, b.SKU)
	}) {
		t.Fatalf("got catalog not sorted by sku, want sorted")
	}
}

func TestCatalogIsDeterministic(t *testing.T) {
	t.Parallel()
	if a, b := demo.Catalog(), demo.Catalog(); !reflect.DeepEqual(a, b) {
		t.Fatalf("got two different catalogs from two calls, want equal")
	}
	if a, b := demo.StockLevels(), demo.StockLevels(); !reflect.DeepEqual(a, b) {
		t.Fatalf("got two different stock levels from two calls, want equal")
	}
}

func TestStockLevels(t *testing.T) {
	t.Parallel()
	levels := demo.StockLevels()
	catalog := demo.Catalog()
	if len(levels) != len(catalog) {
		t.Fatalf("got %d stock levels, want one per product (%d)", len(levels), len(catalog))
	}
	hot := demo.HotSKUs()
	if len(hot) == 0 {
		t.Fatalf("got no hot skus, want a few")
	}
	for _, p := range catalog {
		got, ok := levels[p.SKU]
		if !ok {
			t.Errorf("sku %s: no stock level", p.SKU)
			continue
		}
		if got != demo.Stock(p.SKU) {
			t.Errorf("sku %s: got Stock %d, want StockLevels %d", p.SKU, demo.Stock(p.SKU), got)
		}
		want := "20..500"
		ok = got >= 20 && got <= 500
		if slices.Contains(hot, p.SKU) {
			want, ok = "HotStock", got == demo.HotStock
		}
		if !ok {
			t.Errorf("sku %s: got stock %d, want %s", p.SKU, got, want)
		}
	}
	for _, sku := range hot {
		if _, ok := levels[sku]; !ok {
			t.Errorf("hot sku %s: not in catalog", sku)
		}
	}
	if got := demo.Stock("NOT-A-SKU"); got != 0 {
		t.Fatalf("got stock %d for unknown sku, want 0", got)
	}
}

package catalog

import (
	"context"
	"errors"
	"fmt"
	"testing"
)

func fixture(n int) []Product {
	ps := make([]Product, n)
	for i := range ps {
		cat := "brakes"
		if i%2 == 1 {
			cat = "filters"
		}
		ps[n-1-i] = Product{SKU: fmt.Sprintf("SKU-%03d", i), Category: cat, PriceMinor: int64(100 + i), Currency: "EUR", Active: true}
	}
	return ps
}

func TestPageWalksEverythingOnce(t *testing.T) {
	t.Parallel()
	c := New(func(context.Context) ([]Product, error) { return fixture(25), nil })
	if err := c.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		category string
		limit    int
		want     int
	}{{"", 7, 25}, {"filters", 5, 12}, {"brakes", 13, 13}, {"", 25, 25}, {"tyres", 10, 0}} {
		seen := map[string]bool{}
		cursor, pages, last := "", 0, ""
		for {
			items, next, err := c.Page(tt.category, cursor, tt.limit)
			if err != nil {
				t.Fatal(err)
			}
			pages++
			if len(items) > tt.limit {
				t.Fatalf("page of %d items, limit %d", len(items), tt.limit)
			}
			for _, p := range items {
				if seen[p.SKU] || p.SKU <= last {
					t.Fatalf("%s repeated or out of order", p.SKU)
				}
				if tt.category != "" && p.Category != tt.category {
					t.Fatalf("%s has category %s, want %s", p.SKU, p.Category, tt.category)
				}
				seen[p.SKU], last = true, p.SKU
			}
			if next == "" {
				break
			}
			cursor = next
		}
		if len(seen) != tt.want {
			t.Fatalf("category %q limit %d: saw %d products, want %d", tt.category, tt.limit, len(seen), tt.want)
		}
	}
}

func TestBadCursorAndPut(t *testing.T) {
	t.Parallel()
	c := New(func(context.Context) ([]Product, error) { return fixture(3), nil })
	if err := c.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	// Not base64, and base64 of something that is no SKU ("garbage" decodes to 5 bytes).
	for _, cur := range []string{"%%%", "garbage", "IA", "U0tVIDE"} {
		if _, _, err := c.Page("", cur, 10); !errors.Is(err, ErrBadCursor) {
			t.Fatalf("cursor %q: err = %v, want ErrBadCursor", cur, err)
		}
	}
	c.Put(Product{SKU: "SKU-0015", PriceMinor: 5})
	c.Put(Product{SKU: "SKU-001", PriceMinor: 7})
	items, _, err := c.Page("", "", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 4 || items[2].SKU != "SKU-0015" || items[1].PriceMinor != 7 {
		t.Fatalf("after Put got %+v", items)
	}
	if p, ok := c.Get("SKU-0015"); !ok || p.PriceMinor != 5 {
		t.Fatalf("Get after Put = %+v, %v", p, ok)
	}
}

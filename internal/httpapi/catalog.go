package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/orderpipe/orderpipe/internal/catalog"
	"github.com/orderpipe/orderpipe/internal/order"
)

type productPage struct {
	Items      []catalog.Product `json:"items"`
	NextCursor string            `json:"next_cursor,omitempty"`
}

func handleListProducts(cat *catalog.Cache) echo.HandlerFunc {
	return func(c echo.Context) error {
		limit := 50
		if s := c.QueryParam("limit"); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 1 || n > 200 {
				return badRequest("limit must be an integer from 1 to 200.")
			}
			limit = n
		}
		items, next, err := cat.Page(c.QueryParam("category"), c.QueryParam("cursor"), limit)
		if errors.Is(err, catalog.ErrBadCursor) {
			return badRequest("cursor is not one this API issued; start again without it.")
		}
		if err != nil {
			return err
		}
		if items == nil {
			items = []catalog.Product{}
		}
		c.Response().Header().Set(echo.HeaderCacheControl, "public, max-age=5")
		return c.JSON(http.StatusOK, productPage{Items: items, NextCursor: next})
	}
}

func handleGetProduct(cat *catalog.Cache) echo.HandlerFunc {
	return func(c echo.Context) error {
		p, ok := cat.Get(c.Param("sku"))
		if !ok {
			return newProblem(http.StatusNotFound, "not-found", "Product not found", "No product has this SKU.")
		}
		c.Response().Header().Set(echo.HeaderCacheControl, "public, max-age=5")
		return c.JSON(http.StatusOK, p)
	}
}

type productInput struct {
	Name       string `json:"name"`
	Category   string `json:"category"`
	Brand      string `json:"brand"`
	PriceMinor int64  `json:"price_minor"`
	Currency   string `json:"currency"`
	Active     *bool  `json:"active"`
}

var currencyPattern = regexp.MustCompile(`^[A-Z]{3}$`)

func (in productInput) validate(sku string) error {
	var p []order.FieldError
	add := func(f, d string) { p = append(p, order.FieldError{Field: f, Detail: d}) }
	if !skuPattern.MatchString(sku) {
		add("sku", "must be an upper-case SKU such as BRK-PAD-1042 (path parameter)")
	}
	for f, v := range map[string]string{"name": in.Name, "category": in.Category, "brand": in.Brand} {
		if strings.TrimSpace(v) == "" || len(v) > 200 {
			add(f, "is required, at most 200 characters")
		}
	}
	if in.PriceMinor < 1 {
		add("price_minor", "must be a positive integer amount in minor units (cents)")
	}
	if !currencyPattern.MatchString(in.Currency) {
		add("currency", "must be an ISO 4217 code such as EUR")
	}
	if in.Active == nil {
		add("active", "is required")
	}
	if len(p) > 0 {
		return &order.InvalidError{Problems: p}
	}
	return nil
}

func handlePutProduct(cfg Config, cat *catalog.Cache, save func(context.Context, catalog.Product) (catalog.Product, error)) echo.HandlerFunc {
	return func(c echo.Context) error {
		body, err := readLimited(c, cfg.MaxBodyBytes)
		if err != nil {
			return err
		}
		var in productInput
		if err := decodeStrict(c, body, &in); err != nil {
			return err
		}
		sku := c.Param("sku")
		if err := in.validate(sku); err != nil {
			return err
		}
		p, err := save(c.Request().Context(), catalog.Product{
			SKU: sku, Name: in.Name, Category: in.Category, Brand: in.Brand,
			PriceMinor: in.PriceMinor, Currency: in.Currency, Active: *in.Active,
		})
		if err != nil {
			return fmt.Errorf("save product %s: %w", sku, err)
		}
		cat.Put(p)
		return c.JSON(http.StatusOK, p)
	}
}

type availability struct {
	SKU       string `json:"sku"`
	Available int64  `json:"available"`
	Status    string `json:"status"`
}

// handleInventory answers availability from Redis with an ETag and a short Cache-Control, so a
// CDN or browser absorbs most of the read traffic of a flash sale.
func handleInventory(cfg Config, cat *catalog.Cache, store Store) echo.HandlerFunc {
	return func(c echo.Context) error {
		sku := c.Param("sku")
		if _, ok := cat.Get(sku); !ok {
			return newProblem(http.StatusNotFound, "not-found", "Product not found", "No product has this SKU.")
		}
		st, err := store.Availability(c.Request().Context(), sku)
		if err != nil {
			return unavailable("Availability cannot be read right now.", time.Second, err)
		}
		if !st.Known {
			return unavailable("Availability of this SKU is being rebuilt.", 2*time.Second, nil)
		}
		a := availability{SKU: sku, Available: max(st.ATP, 0), Status: "in_stock"}
		switch {
		case a.Available == 0:
			a.Status = "out_of_stock"
		case a.Available <= cfg.LowStock:
			a.Status = "low_stock"
		}
		etag := fmt.Sprintf(`"%d"`, a.Available)
		h := c.Response().Header()
		h.Set(echo.HeaderCacheControl, fmt.Sprintf("public, max-age=%d", int(cfg.InventoryMaxAge.Seconds())))
		h.Set("ETag", etag)
		if match := c.Request().Header.Get("If-None-Match"); match != "" && etagMatches(match, etag) {
			return c.NoContent(http.StatusNotModified)
		}
		return c.JSON(http.StatusOK, a)
	}
}

func etagMatches(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == etag || t == "*" {
			return true
		}
	}
	return false
}

package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/orderpipe/orderpipe/internal/catalog"
	"github.com/orderpipe/orderpipe/internal/order"
	"github.com/orderpipe/orderpipe/internal/promotion"
	"github.com/orderpipe/orderpipe/internal/redisstore"
)

// ProductView is a product as the catalog reads show it: the base price, the effective price
// now (the promotion in effect, if any) and availability.
type ProductView struct {
	SKU                 string     `json:"sku"`
	Name                string     `json:"name"`
	Category            string     `json:"category"`
	Brand               string     `json:"brand"`
	PriceMinor          int64      `json:"price_minor"`
	Currency            string     `json:"currency"`
	Active              bool       `json:"active"`
	EffectivePriceMinor int64      `json:"effective_price_minor"`
	PromotionID         string     `json:"promotion_id,omitempty"`
	PromotionEndsAt     *time.Time `json:"promotion_ends_at,omitempty"`
	PromotionRemaining  *int64     `json:"promotion_remaining,omitempty"`
	Available           *int64     `json:"available"`
	Availability        string     `json:"availability"`
}

// productFields are the names fields= may select; sku is always included.
var productFields = map[string]bool{
	"sku": true, "name": true, "category": true, "brand": true, "price_minor": true, "currency": true,
	"active": true, "effective_price_minor": true, "promotion_id": true, "promotion_ends_at": true,
	"promotion_remaining": true, "available": true, "availability": true,
}

// PriceTimelines are the published price timelines (pricing.Cache).
type PriceTimelines interface {
	Entry(sku string) (promotion.Entry, bool)
}

// catalogReader builds product views; shared by the list and the single-product read.
type catalogReader struct {
	cfg       Config
	prices    PriceTimelines // nil: no promotions
	stock     func(ctx context.Context, sku string) (redisstore.Stock, error)
	promoSold func(ctx context.Context, sku, promotionID string) (int64, error)
}

// view renders p at now and returns the next instant its price changes (zero: none known).
//
// Under a promotion with a stock cap it reads the units sold against the cap and shows what is
// left (promotion_remaining). Once the cap is used up, the product reads as orders are priced: a
// promotion with over_cap "base" no longer prices it (the base price, no promotion fields), and
// one with over_cap "refuse" refuses every order until its window ends (available 0,
// out_of_stock). If the count cannot be read, the promotional view is shown.
func (r catalogReader) view(ctx context.Context, p catalog.Product, now time.Time) (ProductView, time.Time) {
	v := ProductView{
		SKU: p.SKU, Name: p.Name, Category: p.Category, Brand: p.Brand, PriceMinor: p.PriceMinor,
		Currency: p.Currency, Active: p.Active, EffectivePriceMinor: p.PriceMinor, Availability: "unknown",
	}
	var next time.Time
	capRefuses := false
	if r.prices != nil {
		if e, ok := r.prices.Entry(p.SKU); ok {
			if w, ok := e.At(now); ok {
				v.EffectivePriceMinor, v.PromotionID = w.PriceMinor, w.PromotionID
				ends := w.Ends()
				v.PromotionEndsAt = &ends
				if w.StockCap > 0 && r.promoSold != nil {
					if sold, err := r.promoSold(ctx, p.SKU, w.PromotionID); err == nil {
						left := max(w.StockCap-sold, 0)
						v.PromotionRemaining = &left
						switch {
						case left > 0:
						case w.OverCap == promotion.OverCapRefuse:
							capRefuses = true
						default:
							v.EffectivePriceMinor, v.PromotionID, v.PromotionEndsAt, v.PromotionRemaining = p.PriceMinor, "", nil, nil
						}
					}
				}
			}
			next, _ = e.NextBoundary(now)
		}
	}
	if capRefuses {
		none := int64(0)
		v.Available, v.Availability = &none, "out_of_stock"
		return v, next
	}
	if st, err := r.stock(ctx, p.SKU); err == nil && st.Known {
		n := max(st.ATP, 0)
		v.Available = &n
		switch {
		case n == 0:
			v.Availability = "out_of_stock"
		case n <= r.cfg.LowStock:
			v.Availability = "low_stock"
		default:
			v.Availability = "in_stock"
		}
	}
	return v, next
}

// parseFields reads fields=a,b,c; nil selects every field.
func parseFields(q string) (map[string]bool, error) {
	if q == "" {
		return nil, nil
	}
	sel := map[string]bool{"sku": true}
	for _, f := range strings.Split(q, ",") {
		f = strings.TrimSpace(f)
		if !productFields[f] {
			return nil, badRequest(fmt.Sprintf("fields: unknown field %q; choose from sku, name, category, brand, price_minor, currency, active, effective_price_minor, promotion_id, promotion_ends_at, available, availability.", f))
		}
		sel[f] = true
	}
	return sel, nil
}

// project keeps only the selected fields of v.
func project(v ProductView, sel map[string]bool) (any, error) {
	if sel == nil {
		return v, nil
	}
	doc, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var all map[string]json.RawMessage
	if err := json.Unmarshal(doc, &all); err != nil {
		return nil, err
	}
	for k := range all {
		if !sel[k] {
			delete(all, k)
		}
	}
	return all, nil
}

// cacheable answers body with a weak ETag of its bytes (so it changes whenever a price or the
// availability in it changes) and a public Cache-Control whose max-age never reaches past the
// next price change of anything in it; 304 when If-None-Match has the ETag.
func cacheable(c echo.Context, maxAge time.Duration, now, next time.Time, body any) error {
	doc, err := json.Marshal(body)
	if err != nil {
		return err
	}
	h := fnv.New64a()
	_, _ = h.Write(doc)
	etag := fmt.Sprintf(`W/"%016x"`, h.Sum64())
	age := maxAge
	if !next.IsZero() && next.Sub(now) < age {
		age = next.Sub(now)
	}
	hd := c.Response().Header()
	hd.Set(echo.HeaderCacheControl, fmt.Sprintf("public, max-age=%d", int(age/time.Second)))
	hd.Set("ETag", etag)
	if match := c.Request().Header.Get("If-None-Match"); match != "" && etagMatches(match, etag) {
		return c.NoContent(http.StatusNotModified)
	}
	return c.JSONBlob(http.StatusOK, doc)
}

type productPage struct {
	Items      []any  `json:"items"`
	NextCursor string `json:"next_cursor,omitempty"`
}

func handleListProducts(cat *catalog.Cache, r catalogReader) echo.HandlerFunc {
	return func(c echo.Context) error {
		limit := 50
		if s := c.QueryParam("limit"); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 1 || n > 200 {
				return badRequest("limit must be an integer from 1 to 200.")
			}
			limit = n
		}
		sel, err := parseFields(c.QueryParam("fields"))
		if err != nil {
			return err
		}
		f := catalog.Filter{Category: c.QueryParam("category"), Brand: c.QueryParam("brand")}
		items, next, err := cat.PageOf(f, c.QueryParam("cursor"), limit)
		if errors.Is(err, catalog.ErrBadCursor) {
			return badRequest("cursor is not one this API issued; start again without it.")
		}
		if err != nil {
			return err
		}
		now := time.Now()
		page := productPage{Items: make([]any, 0, len(items)), NextCursor: next}
		var change time.Time
		for _, p := range items {
			v, nb := r.view(c.Request().Context(), p, now)
			if !nb.IsZero() && (change.IsZero() || nb.Before(change)) {
				change = nb
			}
			item, err := project(v, sel)
			if err != nil {
				return err
			}
			page.Items = append(page.Items, item)
		}
		return cacheable(c, r.cfg.ProductsMaxAge, now, change, page)
	}
}

func handleGetProduct(cat *catalog.Cache, r catalogReader) echo.HandlerFunc {
	return func(c echo.Context) error {
		p, ok := cat.Get(c.Param("sku"))
		if !ok {
			return newProblem(http.StatusNotFound, "not-found", "Product not found", "No product has this SKU.")
		}
		sel, err := parseFields(c.QueryParam("fields"))
		if err != nil {
			return err
		}
		now := time.Now()
		v, next := r.view(c.Request().Context(), p, now)
		item, err := project(v, sel)
		if err != nil {
			return err
		}
		return cacheable(c, r.cfg.ProductsMaxAge, now, next, item)
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

// Lengths of a product's texts, in characters: schemas/openapi.yaml (ProductInput) states them,
// and a test compares.
const (
	productNameMax     = 200
	productCategoryMax = 64
	productBrandMax    = 100
)

func (in productInput) validate(sku string) error {
	var p []order.FieldError
	add := func(f, d string) { p = append(p, order.FieldError{Field: f, Detail: d}) }
	if !skuPattern.MatchString(sku) {
		add("sku", "must be an upper-case SKU such as BRK-PAD-1042 (path parameter)")
	}
	for _, f := range []struct {
		name, v string
		max     int
	}{{"name", in.Name, productNameMax}, {"category", in.Category, productCategoryMax}, {"brand", in.Brand, productBrandMax}} {
		if strings.TrimSpace(f.v) == "" || utf8.RuneCountInString(f.v) > f.max {
			add(f.name, fmt.Sprintf("is required, at most %d characters", f.max))
		}
	}
	if in.PriceMinor < 1 || in.PriceMinor > order.MaxUnitPriceMinor {
		add("price_minor", fmt.Sprintf("must be an integer amount in minor units (cents) from 1 to %d", order.MaxUnitPriceMinor))
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

// productProblem types a product body's invalid fields as invalid-product; other errors pass.
func productProblem(err error) error {
	if p, ok := invalidFields(err, "invalid-product", "product"); ok {
		return p
	}
	return err
}

func handlePutProduct(cfg Config, cat *catalog.Cache, save func(context.Context, catalog.Product) (catalog.Product, error), repriced func(context.Context, string) error) echo.HandlerFunc {
	return func(c echo.Context) error {
		body, err := readLimited(c, cfg.MaxBodyBytes)
		if err != nil {
			return err
		}
		sku := c.Param("sku")
		var in productInput
		if err := cardFirst(screenText("sku", sku), decodeStrict(c, body, &in)); err != nil {
			return productProblem(err)
		}
		if err := in.validate(sku); err != nil {
			return productProblem(err)
		}
		p, err := save(c.Request().Context(), catalog.Product{
			SKU: sku, Name: in.Name, Category: in.Category, Brand: in.Brand,
			PriceMinor: in.PriceMinor, Currency: in.Currency, Active: *in.Active,
		})
		if err != nil {
			return fmt.Errorf("save product %s: %w", sku, err)
		}
		cat.Put(p)
		if repriced != nil {
			// A new base price changes the promotional prices derived from it; a new category
			// may bring the SKU into or out of a category promotion.
			if err := repriced(c.Request().Context(), sku); err != nil {
				return unavailable("The product was saved, but its promotional prices could not be republished yet; the promotion scheduler does it within PROMO_REPUBLISH_INTERVAL.", 2*time.Second, err)
			}
		}
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

// etagMatches compares If-None-Match with etag weakly (RFC 9110: W/ prefixes are ignored).
func etagMatches(header, etag string) bool {
	etag = strings.TrimPrefix(etag, "W/")
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == etag || t == "*" {
			return true
		}
	}
	return false
}

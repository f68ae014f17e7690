package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/orderpipe/orderpipe/internal/order"
	"github.com/orderpipe/orderpipe/internal/postgres"
	"github.com/orderpipe/orderpipe/internal/pricing"
	"github.com/orderpipe/orderpipe/internal/promotion"
)

// Promotions creates, changes, ends and reports promotions (pricing.Service).
type Promotions interface {
	Create(ctx context.Context, p promotion.Promotion) (promotion.Promotion, error)
	Update(ctx context.Context, p promotion.Promotion) (promotion.Promotion, error)
	End(ctx context.Context, id string) (promotion.Promotion, error)
	Get(ctx context.Context, id string) (promotion.Promotion, error)
	List(ctx context.Context, live bool) ([]promotion.Promotion, error)
	Sales(ctx context.Context, id string) ([]postgres.PromotionSales, error)
}

// PromotionDoc is a promotion as the API shows it: instants in UTC, and again in the
// promotion's own time zone (the *_local fields).
type PromotionDoc struct {
	ID               string     `json:"id"`
	Name             string     `json:"name"`
	Kind             string     `json:"kind"`
	PercentOff       int        `json:"percent_off,omitempty"`
	FixedPriceMinor  int64      `json:"fixed_price_minor,omitempty"`
	SKUs             []string   `json:"skus,omitempty"`
	Category         string     `json:"category,omitempty"`
	StartsAt         time.Time  `json:"starts_at"`
	EndsAt           time.Time  `json:"ends_at"`
	TimeZone         string     `json:"time_zone"`
	StartsAtLocal    string     `json:"starts_at_local"`
	EndsAtLocal      string     `json:"ends_at_local"`
	StockCap         int64      `json:"stock_cap,omitempty"`
	OverCap          string     `json:"over_cap"`
	PerCustomerLimit int64      `json:"per_customer_limit,omitempty"`
	EndedAt          *time.Time `json:"ended_at,omitempty"`
	Status           string     `json:"status"`
	CreatedAt        time.Time  `json:"created_at"`
	UpdatedAt        time.Time  `json:"updated_at"`
}

// DocOf renders p at now.
func DocOf(p promotion.Promotion, now time.Time) PromotionDoc {
	loc, err := time.LoadLocation(p.TimeZone)
	if err != nil {
		loc = time.UTC
	}
	const layout = "2006-01-02T15:04:05.000Z07:00"
	return PromotionDoc{
		ID: p.ID, Name: p.Name, Kind: string(p.Kind), PercentOff: p.PercentOff, FixedPriceMinor: p.FixedPriceMinor,
		SKUs: p.SKUs, Category: p.Category, StartsAt: p.StartsAt.UTC(), EndsAt: p.EndsAt.UTC(), TimeZone: p.TimeZone,
		StartsAtLocal: p.StartsAt.In(loc).Format(layout), EndsAtLocal: p.EndsAt.In(loc).Format(layout),
		StockCap: p.StockCap, OverCap: string(p.OverCap), PerCustomerLimit: p.PerCustomerLimit, EndedAt: p.EndedAt,
		Status: p.Status(now), CreatedAt: p.CreatedAt.UTC(), UpdatedAt: p.UpdatedAt.UTC(),
	}
}

// promotionInput is the body of POST (every field) and PATCH (any of them) /v1/promotions.
// Instants are RFC 3339 with a zone offset; 0 for stock_cap or per_customer_limit means none.
type promotionInput struct {
	ID               *string   `json:"id"`
	Name             *string   `json:"name"`
	Kind             *string   `json:"kind"`
	PercentOff       *int      `json:"percent_off"`
	FixedPriceMinor  *int64    `json:"fixed_price_minor"`
	SKUs             *[]string `json:"skus"`
	Category         *string   `json:"category"`
	StartsAt         *string   `json:"starts_at"`
	EndsAt           *string   `json:"ends_at"`
	TimeZone         *string   `json:"time_zone"`
	StockCap         *int64    `json:"stock_cap"`
	OverCap          *string   `json:"over_cap"`
	PerCustomerLimit *int64    `json:"per_customer_limit"`
}

// apply sets the given fields of in on p. Setting skus clears category and the other way round;
// setting kind clears the other kind's price. Instants that do not parse are a 422.
func (in promotionInput) apply(p *promotion.Promotion) error {
	set := func(dst *string, v *string) {
		if v != nil {
			*dst = *v
		}
	}
	set(&p.Name, in.Name)
	set(&p.TimeZone, in.TimeZone)
	if in.Kind != nil {
		p.Kind = promotion.Kind(*in.Kind)
		p.PercentOff, p.FixedPriceMinor = 0, 0
	}
	if in.PercentOff != nil {
		p.PercentOff = *in.PercentOff
	}
	if in.FixedPriceMinor != nil {
		p.FixedPriceMinor = *in.FixedPriceMinor
	}
	if in.SKUs != nil {
		p.SKUs, p.Category = *in.SKUs, ""
	}
	if in.Category != nil {
		p.Category = *in.Category
		if in.SKUs == nil {
			p.SKUs = nil
		}
	}
	var probs []order.FieldError
	for _, f := range []struct {
		name string
		in   *string
		dst  *time.Time
	}{{"starts_at", in.StartsAt, &p.StartsAt}, {"ends_at", in.EndsAt, &p.EndsAt}} {
		if f.in == nil {
			continue
		}
		t, err := time.Parse(time.RFC3339Nano, *f.in)
		if err != nil {
			probs = append(probs, order.FieldError{Field: f.name, Detail: "must be an RFC 3339 instant with a zone offset, such as 2026-12-01T08:00:00+01:00"})
			continue
		}
		*f.dst = t.UTC()
	}
	if in.StockCap != nil {
		p.StockCap = *in.StockCap
	}
	if in.OverCap != nil {
		p.OverCap = promotion.OverCap(*in.OverCap)
	}
	if in.PerCustomerLimit != nil {
		p.PerCustomerLimit = *in.PerCustomerLimit
	}
	if len(probs) > 0 {
		return &order.InvalidError{Problems: probs}
	}
	return nil
}

// NewPromotionID makes an id for a promotion created without one.
func NewPromotionID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "promo-" + hex.EncodeToString(b[:])
}

func promotionProblem(err error) error {
	if p, ok := invalidFields(err, "invalid-promotion", "promotion"); ok {
		return p
	}
	switch {
	case errors.Is(err, postgres.ErrNotFound):
		return newProblem(http.StatusNotFound, "not-found", "Promotion not found", "No promotion has this id.")
	case errors.Is(err, postgres.ErrConflict):
		return newProblem(http.StatusConflict, "promotion-exists", "Promotion exists", "A promotion with this id exists; change it with PATCH.")
	case errors.Is(err, pricing.ErrNotPublished):
		return unavailable("The promotion was saved, but its prices could not be published yet; the scheduler publishes them within PROMO_REPUBLISH_INTERVAL. Read it back with GET.", 2*time.Second, err)
	}
	return err
}

// promotionID is the {id} path parameter; one that no promotion can have (ValidID) is a 404
// without a query, so no stray byte (a NUL) reaches Postgres.
func promotionID(c echo.Context) (string, error) {
	id := c.Param("id")
	if !promotion.ValidID(id) {
		return "", promotionProblem(postgres.ErrNotFound)
	}
	return id, nil
}

func decodePromotion(c echo.Context, cfg Config) (promotionInput, error) {
	body, err := readLimited(c, cfg.MaxBodyBytes)
	if err != nil {
		return promotionInput{}, err
	}
	var in promotionInput
	if err := decodeStrict(c, body, &in); err != nil {
		return promotionInput{}, promotionProblem(err)
	}
	return in, nil
}

func handleCreatePromotion(cfg Config, ps Promotions) echo.HandlerFunc {
	return func(c echo.Context) error {
		in, err := decodePromotion(c, cfg)
		if err != nil {
			return err
		}
		var p promotion.Promotion
		if err := in.apply(&p); err != nil {
			return promotionProblem(err)
		}
		p.ID = NewPromotionID()
		if in.ID != nil {
			p.ID = *in.ID
		}
		stored, err := ps.Create(c.Request().Context(), p)
		if err != nil {
			return promotionProblem(err)
		}
		c.Response().Header().Set(echo.HeaderLocation, "/v1/promotions/"+stored.ID)
		return c.JSON(http.StatusCreated, DocOf(stored, time.Now()))
	}
}

func handleUpdatePromotion(cfg Config, ps Promotions) echo.HandlerFunc {
	return func(c echo.Context) error {
		in, err := decodePromotion(c, cfg)
		if err != nil {
			return err
		}
		id, err := promotionID(c)
		if err != nil {
			return err
		}
		if in.ID != nil && *in.ID != id {
			return badRequest("id cannot be changed; leave it out of the body.")
		}
		p, err := ps.Get(c.Request().Context(), id)
		if err != nil {
			return promotionProblem(err)
		}
		if err := in.apply(&p); err != nil {
			return promotionProblem(err)
		}
		stored, err := ps.Update(c.Request().Context(), p)
		if err != nil {
			return promotionProblem(err)
		}
		return c.JSON(http.StatusOK, DocOf(stored, time.Now()))
	}
}

func handleEndPromotion(ps Promotions) echo.HandlerFunc {
	return func(c echo.Context) error {
		id, err := promotionID(c)
		if err != nil {
			return err
		}
		p, err := ps.End(c.Request().Context(), id)
		if err != nil {
			return promotionProblem(err)
		}
		return c.JSON(http.StatusOK, DocOf(p, time.Now()))
	}
}

func handleGetPromotion(ps Promotions) echo.HandlerFunc {
	return func(c echo.Context) error {
		id, err := promotionID(c)
		if err != nil {
			return err
		}
		p, err := ps.Get(c.Request().Context(), id)
		if err != nil {
			return promotionProblem(err)
		}
		return c.JSON(http.StatusOK, DocOf(p, time.Now()))
	}
}

type promotionList struct {
	Items []PromotionDoc `json:"items"`
}

func handleListPromotions(ps Promotions) echo.HandlerFunc {
	return func(c echo.Context) error {
		live := false
		switch c.QueryParam("status") {
		case "", "all":
		case "live":
			live = true
		default:
			return badRequest("status must be live or all.")
		}
		list, err := ps.List(c.Request().Context(), live)
		if err != nil {
			return err
		}
		now := time.Now()
		out := promotionList{Items: make([]PromotionDoc, len(list))}
		for i, p := range list {
			out.Items[i] = DocOf(p, now)
		}
		return c.JSON(http.StatusOK, out)
	}
}

// PromotionSalesRow is one row of GET /v1/reports/promotions.
type PromotionSalesRow struct {
	PromotionID  string `json:"promotion_id"`
	Name         string `json:"name"`
	Currency     string `json:"currency"`
	Orders       int64  `json:"orders"`
	Units        int64  `json:"units"`
	RevenueMinor int64  `json:"revenue_minor"`
}

type promotionSalesPage struct {
	Items []PromotionSalesRow `json:"items"`
}

// handlePromotionReport answers units and revenue per promotion over confirmed and shipped
// orders, from the price each order line was sold at (recorded when the api accepted it).
func handlePromotionReport(ps Promotions) echo.HandlerFunc {
	return func(c echo.Context) error {
		id := c.QueryParam("promotion_id")
		if id != "" && !promotion.ValidID(id) {
			return badRequest("promotion_id is not a promotion id.")
		}
		rows, err := ps.Sales(c.Request().Context(), id)
		if err != nil {
			return err
		}
		out := promotionSalesPage{Items: make([]PromotionSalesRow, len(rows))}
		for i, r := range rows {
			out.Items[i] = PromotionSalesRow{PromotionID: r.PromotionID, Name: r.Name, Currency: r.Currency, Orders: r.Orders, Units: r.Units, RevenueMinor: r.RevenueMinor}
		}
		return c.JSON(http.StatusOK, out)
	}
}

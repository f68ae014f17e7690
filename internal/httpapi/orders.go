package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/mail"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/orderpipe/orderpipe/internal/event"
	"github.com/orderpipe/orderpipe/internal/intake"
	"github.com/orderpipe/orderpipe/internal/order"
)

// placeOrderRequest is the body of POST /v1/orders (schemas/openapi.yaml, PlaceOrderRequest).
type placeOrderRequest struct {
	CustomerID      string            `json:"customer_id"`
	Email           string            `json:"email"`
	Priority        string            `json:"priority"`
	Lines           []placeOrderLine  `json:"lines"`
	Payment         placeOrderPayment `json:"payment"`
	ShippingAddress placeOrderAddress `json:"shipping_address"`
}

type placeOrderLine struct {
	SKU      string `json:"sku"`
	Quantity int64  `json:"quantity"`
}

type placeOrderPayment struct {
	Method string `json:"method"`
	Token  string `json:"token"`
}

type placeOrderAddress struct {
	Name       string `json:"name"`
	Line1      string `json:"line1"`
	Line2      string `json:"line2"`
	City       string `json:"city"`
	PostalCode string `json:"postal_code"`
	Country    string `json:"country"`
}

var (
	skuPattern     = regexp.MustCompile(`^[A-Z0-9][A-Z0-9-]{2,39}$`)
	countryPattern = regexp.MustCompile(`^[A-Z]{2}$`)
	paymentMethods = map[string]bool{"card": true, "paypal": true, "sepa_debit": true, "apple_pay": true, "google_pay": true}
)

// Limits of an order's fields. schemas/openapi.yaml (PlaceOrderRequest, Payment, Address) states
// them and the OrderPlaced schema carries the same; a test compares.
const (
	emailMax       = 254
	tokenMin       = 8
	tokenMax       = 256
	addressNameMax = 200
	addressLineMax = 200
	addressCityMax = 100
	postalCodeMax  = 20
)

// validate checks every field and reports all problems at once, mirroring the OrderPlaced
// schema so a request that passes here produces a valid event.
func (r *placeOrderRequest) validate(maxLines int, maxQty int64) error {
	var p []order.FieldError
	add := func(field, format string, args ...any) {
		p = append(p, order.FieldError{Field: field, Detail: fmt.Sprintf(format, args...)})
	}
	text := func(field, v string, maxLen int, required bool) {
		switch {
		case strings.TrimSpace(v) == "" && required:
			add(field, "is required")
		case utf8.RuneCountInString(v) > maxLen:
			add(field, "must be at most %d characters", maxLen)
		}
	}
	if d := order.CustomerIDProblem(r.CustomerID); d != "" {
		add("customer_id", "%s", d)
	}
	switch a, err := mail.ParseAddress(r.Email); {
	case r.Email == "":
		add("email", "is required")
	case err != nil || a.Address != r.Email || len(r.Email) > emailMax:
		add("email", "must be a plain e-mail address such as buyer@example.com")
	}
	if r.Priority != "" && !order.Priority(r.Priority).Valid() {
		add("priority", "must be standard or express")
	}
	switch {
	case len(r.Lines) == 0:
		add("lines", "must have at least one line")
	case len(r.Lines) > maxLines:
		add("lines", "must have at most %d lines", maxLines)
	}
	seen := map[string]int{}
	for i, l := range r.Lines {
		f := fmt.Sprintf("lines[%d]", i)
		switch {
		case l.SKU == "":
			add(f+".sku", "is required")
		case !skuPattern.MatchString(l.SKU):
			add(f+".sku", "must be an upper-case SKU such as BRK-PAD-1042")
		default:
			if j, dup := seen[l.SKU]; dup {
				add(f+".sku", "repeats the SKU of lines[%d]; put the whole quantity in one line", j)
			}
			seen[l.SKU] = i
		}
		switch {
		case l.Quantity < 1:
			add(f+".quantity", "must be at least 1")
		case l.Quantity > maxQty:
			add(f+".quantity", "must be at most %d", maxQty)
		}
	}
	switch {
	case r.Payment.Method == "":
		add("payment.method", "is required")
	case !paymentMethods[r.Payment.Method]:
		add("payment.method", "must be one of card, paypal, sepa_debit, apple_pay, google_pay")
	}
	switch tok := r.Payment.Token; {
	case tok == "":
		add("payment.token", "is required")
	case len(tok) < tokenMin || len(tok) > tokenMax:
		add("payment.token", "must be %d to %d characters", tokenMin, tokenMax)
	}
	a := r.ShippingAddress
	text("shipping_address.name", a.Name, addressNameMax, true)
	text("shipping_address.line1", a.Line1, addressLineMax, true)
	text("shipping_address.line2", a.Line2, addressLineMax, false)
	text("shipping_address.city", a.City, addressCityMax, true)
	text("shipping_address.postal_code", a.PostalCode, postalCodeMax, true)
	if !countryPattern.MatchString(a.Country) {
		add("shipping_address.country", "must be an ISO 3166-1 alpha-2 code such as DE")
	}
	if len(p) > 0 {
		return &order.InvalidError{Problems: p}
	}
	return nil
}

func handlePlaceOrder(cfg Config, svc *intake.Service) echo.HandlerFunc {
	return func(c echo.Context) error {
		body, _ := c.Get(bodyCtxKey).([]byte)
		var req placeOrderRequest
		if err := decodeStrict(c, body, &req); err != nil {
			return err
		}
		if err := req.validate(cfg.MaxLines, cfg.MaxQuantity); err != nil {
			return err
		}
		prio := order.Priority(req.Priority)
		if prio == "" {
			prio = order.PriorityStandard
		}
		in := intake.Request{
			OrderID:    orderIDOf(c),
			APIKeyID:   keyOf(c).ID,
			CustomerID: req.CustomerID,
			Email:      req.Email,
			Priority:   prio,
			Payment:    event.Payment{Method: req.Payment.Method, Token: req.Payment.Token},
			Address: event.Address{
				Name: req.ShippingAddress.Name, Line1: req.ShippingAddress.Line1, Line2: req.ShippingAddress.Line2,
				City: req.ShippingAddress.City, PostalCode: req.ShippingAddress.PostalCode, Country: req.ShippingAddress.Country,
			},
		}
		// The idempotency middleware has checked the header.
		in.IdempotencyFingerprint = event.IdempotencyFingerprint(in.APIKeyID, c.Request().Header.Get("Idempotency-Key"))
		for _, l := range req.Lines {
			in.Lines = append(in.Lines, intake.LineRequest{SKU: l.SKU, Quantity: l.Quantity})
		}
		acc, err := svc.Place(c.Request().Context(), in)
		if err != nil {
			return err
		}
		// The idempotency middleware stores the pending snapshot with the answer (one round trip).
		c.Set(snapshotCtxKey, acc.Doc)
		c.Response().Header().Set(echo.HeaderLocation, "/v1/orders/"+acc.View.OrderID)
		return c.Blob(http.StatusAccepted, echo.MIMEApplicationJSON, acc.Doc)
	}
}

// handleGetOrder answers from Postgres (the truth, once the worker wrote the order) and falls
// back to the pending snapshot the intake path left in Redis, so an accepted order is never 404.
func handleGetOrder(byID func(context.Context, string) (intake.View, bool, error), deadLetter func(context.Context, string) (*intake.DeadLetter, error), store Store) echo.HandlerFunc {
	return func(c echo.Context) error {
		id := c.Param("id")
		if _, err := uuid.Parse(id); err != nil {
			return newProblem(http.StatusNotFound, "not-found", "Order not found", "No order has this id.")
		}
		ctx := c.Request().Context()
		view, found, pgErr := byID(ctx, id)
		if pgErr == nil && found {
			return c.JSON(http.StatusOK, view)
		}
		doc, ok, err := store.PendingOrder(ctx, id)
		switch {
		case err == nil && ok:
			var v intake.View
			if err := json.Unmarshal(doc, &v); err != nil {
				return fmt.Errorf("decode pending order %s: %w", id, err)
			}
			if deadLetter != nil && pgErr == nil {
				if v.DeadLetter, err = deadLetter(ctx, id); err != nil {
					return unavailable("Order status cannot be read right now.", time.Second, err)
				}
			}
			return c.JSON(http.StatusOK, v)
		case pgErr != nil || err != nil:
			return unavailable("Order status cannot be read right now.", time.Second, fmt.Errorf("postgres: %v; redis: %v", pgErr, err))
		}
		return newProblem(http.StatusNotFound, "not-found", "Order not found", "No order has this id.")
	}
}

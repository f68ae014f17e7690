package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/orderpipe/orderpipe/internal/input"
	"github.com/orderpipe/orderpipe/internal/order"
)

// Problem is an RFC 9457 problem document.
type Problem struct {
	Type     string         `json:"type"`
	Title    string         `json:"title"`
	Status   int            `json:"status"`
	Detail   string         `json:"detail,omitempty"`
	Instance string         `json:"instance,omitempty"`
	Errors   []ProblemField `json:"errors,omitempty"`
	Short    []ProblemShort `json:"short,omitempty"`
	Limits   []ProblemLimit `json:"limits,omitempty"`

	retryAfter time.Duration
	cause      error
}

// ProblemField names one invalid field.
type ProblemField struct {
	Field  string `json:"field"`
	Detail string `json:"detail"`
}

// ProblemShort is one out-of-stock line.
type ProblemShort struct {
	SKU       string `json:"sku"`
	Requested int64  `json:"requested"`
	Available int64  `json:"available"`
}

// ProblemLimit is one line refused by its promotion's limits.
type ProblemLimit struct {
	SKU         string `json:"sku"`
	PromotionID string `json:"promotion_id"`
	Requested   int64  `json:"requested"`
	Promotional int64  `json:"promotional"`
}

func (p *Problem) Error() string {
	if p.cause != nil {
		return fmt.Sprintf("%d %s: %s: %v", p.Status, p.Title, p.Detail, p.cause)
	}
	return fmt.Sprintf("%d %s: %s", p.Status, p.Title, p.Detail)
}

func (p *Problem) Unwrap() error { return p.cause }

// problemType builds the type URI of a problem; the documentation of each lives in
// docs/errors.md under the same anchor.
func problemType(slug string) string { return "https://orderpipe.dev/problems/" + slug }

func newProblem(status int, slug, title, detail string) *Problem {
	return &Problem{Type: problemType(slug), Title: title, Status: status, Detail: detail}
}

func badRequest(detail string) *Problem {
	return newProblem(http.StatusBadRequest, "bad-request", "Bad request", detail)
}

func unavailable(detail string, retry time.Duration, cause error) *Problem {
	p := newProblem(http.StatusServiceUnavailable, "unavailable", "Service temporarily unavailable", detail)
	p.retryAfter, p.cause = retry, cause
	return p
}

// problemFrom maps any error a handler returns to a problem document. Handlers just return
// errors; this is the one place that decides their status.
func problemFrom(err error) *Problem {
	var p *Problem
	if errors.As(err, &p) {
		return p
	}
	if p, ok := invalidFields(err, "invalid-order", "order"); ok {
		return p
	}
	var oos *order.OutOfStockError
	if errors.As(err, &oos) {
		p := newProblem(http.StatusConflict, "out-of-stock", "Out of stock", "Some lines cannot be fulfilled; see short for what is available.")
		for _, s := range oos.Short {
			p.Short = append(p.Short, ProblemShort{SKU: s.SKU, Requested: s.Requested, Available: s.Available})
		}
		return p
	}
	var pl *order.PromotionLimitError
	if errors.As(err, &pl) {
		p := newProblem(http.StatusConflict, "promotion-limit", "Promotion limit reached",
			"Some lines ask for more units than can still be sold at their promotional price (stock cap or your allowance); see limits.")
		for _, l := range pl.Lines {
			p.Limits = append(p.Limits, ProblemLimit{SKU: l.SKU, PromotionID: l.PromotionID, Requested: l.Requested, Promotional: l.Promotional})
		}
		return p
	}
	if errors.Is(err, order.ErrUnavailable) {
		return unavailable("A dependency is unavailable; nothing was held or charged. Retry with the same Idempotency-Key.", 2*time.Second, err)
	}
	var he *echo.HTTPError
	if errors.As(err, &he) {
		p := newProblem(he.Code, slugForStatus(he.Code), http.StatusText(he.Code), fmt.Sprint(he.Message))
		p.cause = he.Internal
		return p
	}
	p = newProblem(http.StatusInternalServerError, "internal", "Internal server error", "An unexpected error occurred; it has been logged.")
	p.cause = err
	return p
}

// invalidFields is the 422 for a body with invalid fields (an order.InvalidError, from decoding
// or from validation), typed for what the body describes: an order, a promotion, a product.
func invalidFields(err error, slug, what string) (*Problem, bool) {
	var invalid *order.InvalidError
	if !errors.As(err, &invalid) {
		return nil, false
	}
	p := newProblem(http.StatusUnprocessableEntity, slug, "Invalid "+what, "The "+what+" has invalid fields; see errors.")
	for _, f := range invalid.Problems {
		p.Errors = append(p.Errors, ProblemField{Field: f.Field, Detail: f.Detail})
	}
	return p, true
}

// cardDataRejected is the 422 for a request with something that looks like a payment card number
// in any field: errors names each such field, and nothing quotes the value. Card data never
// enters orderpipe (PCI DSS scope stays with the payment provider); the refusal is not stored
// with the Idempotency-Key, and nothing of the request is logged.
func cardDataRejected(problems []input.Problem) *Problem {
	p := newProblem(http.StatusUnprocessableEntity, "card-data-rejected", "Card data rejected",
		"A field looks like a payment card number. Card data never enters orderpipe: send the payment provider's token instead. Nothing of this request was stored.")
	for _, f := range problems {
		if f.Kind == input.KindCardData {
			p.Errors = append(p.Errors, ProblemField{Field: f.Field(), Detail: f.Detail})
		}
	}
	return p
}

// screenText checks path parameters (and other single texts) with the input gate: card data is
// a card-data-rejected problem, other text problems are invalid fields of the request.
func screenText(fields ...string) error {
	var all []input.Problem
	for i := 0; i+1 < len(fields); i += 2 {
		all = append(all, input.Text(fields[i], fields[i+1], false)...)
	}
	if input.HasCard(all) {
		return cardDataRejected(all)
	}
	if len(all) > 0 {
		return &order.InvalidError{Problems: fieldErrors(all)}
	}
	return nil
}

// cardFirst returns the first card-data-rejected problem among errs, else the first error: a
// request with card data anywhere (path or body) is always answered as such.
func cardFirst(errs ...error) error {
	for _, err := range errs {
		var p *Problem
		if errors.As(err, &p) && p.Type == problemType("card-data-rejected") {
			return err
		}
	}
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// fieldErrors turns the gate's problems into invalid fields.
func fieldErrors(ps []input.Problem) []order.FieldError {
	out := make([]order.FieldError, len(ps))
	for i, p := range ps {
		out[i] = order.FieldError{Field: p.Field(), Detail: p.Detail}
	}
	return out
}

func slugForStatus(code int) string {
	switch code {
	case http.StatusNotFound:
		return "not-found"
	case http.StatusMethodNotAllowed:
		return "method-not-allowed"
	case http.StatusRequestEntityTooLarge:
		return "body-too-large"
	case http.StatusUnsupportedMediaType:
		return "unsupported-media-type"
	}
	return "http-" + strconv.Itoa(code)
}

// errorHandler writes every error as application/problem+json and logs server errors once.
func errorHandler(log *slog.Logger) echo.HTTPErrorHandler {
	return func(err error, c echo.Context) {
		if c.Response().Committed {
			return
		}
		p := problemFrom(err)
		if p.Instance == "" {
			p.Instance = c.Request().URL.Path
		}
		if input.HasCardNumber(p.Instance) {
			p.Instance = c.Path() // the route template: a card number in the path is not echoed
		}
		if p.Status >= 500 {
			log.LogAttrs(c.Request().Context(), slog.LevelError, "request failed",
				slog.String("method", c.Request().Method), slog.String("route", c.Path()),
				slog.Int("status", p.Status), slog.String("order_id", orderIDOf(c)),
				slog.String("request_id", c.Response().Header().Get(echo.HeaderXRequestID)),
				slog.String("err", p.Error()))
		}
		if p.retryAfter > 0 {
			c.Response().Header().Set("Retry-After", strconv.Itoa(int((p.retryAfter+time.Second-1)/time.Second)))
		}
		b, mErr := json.Marshal(p)
		if mErr != nil {
			b = []byte(`{"type":"about:blank","title":"Internal server error","status":500}`)
		}
		if c.Request().Method == http.MethodHead {
			// The GET's headers without its body.
			c.Response().Header().Set(echo.HeaderContentType, "application/problem+json")
			c.Response().WriteHeader(p.Status)
			return
		}
		_ = c.Blob(p.Status, "application/problem+json", b)
	}
}

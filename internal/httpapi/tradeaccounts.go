package httpapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/orderpipe/orderpipe/internal/order"
	"github.com/orderpipe/orderpipe/internal/postgres"
)

// TradeAccounts is what the /v1/trade-accounts routes need: the store (postgres) and Changed,
// which reloads this instance's in-memory set at once (other instances within
// CATALOG_REFRESH_INTERVAL).
type TradeAccounts struct {
	Add     func(ctx context.Context, customerID, name string) (postgres.TradeAccount, error)
	Remove  func(ctx context.Context, customerID string) error
	All     func(ctx context.Context) ([]postgres.TradeAccount, error)
	Changed func(ctx context.Context) error
}

// tradeAccountView is a trade account in answers.
type tradeAccountView struct {
	CustomerID string    `json:"customer_id"`
	Name       string    `json:"name"`
	CreatedAt  time.Time `json:"created_at"`
}

// tradeAccountNameMax is the longest trade account name, in characters (schemas/openapi.yaml,
// TradeAccountInput; a test compares).
const tradeAccountNameMax = 200

type tradeAccountInput struct {
	Name string `json:"name"`
}

func viewOfTradeAccount(a postgres.TradeAccount) tradeAccountView {
	return tradeAccountView{CustomerID: a.CustomerID, Name: a.Name, CreatedAt: a.CreatedAt.UTC()}
}

func tradeAccountProblem(err error) error {
	if p, ok := invalidFields(err, "invalid-trade-account", "trade account"); ok {
		return p
	}
	if errors.Is(err, postgres.ErrNotFound) {
		return newProblem(http.StatusNotFound, "not-found", "Trade account not found", "This customer has no trade account.")
	}
	return err
}

// changed reloads this instance's set after a write. The write is done and answered as such; a
// failed reload only leaves this instance on the old set until its next periodic refresh.
func (ta TradeAccounts) changed(c echo.Context, log *slog.Logger) {
	if err := ta.Changed(c.Request().Context()); err != nil {
		log.Warn("reload trade accounts after a change; the next periodic refresh will", "err", err)
	}
}

// PUT /v1/trade-accounts/{customer_id}: make the customer a trade account (or rename it).
func handlePutTradeAccount(cfg Config, ta TradeAccounts, log *slog.Logger) echo.HandlerFunc {
	return func(c echo.Context) error {
		body, err := readLimited(c, cfg.MaxBodyBytes)
		if err != nil {
			return err
		}
		pathErr := screenText("customer_id", c.Param("customer_id"))
		var in tradeAccountInput
		var bodyErr error
		if len(body) > 0 {
			bodyErr = decodeStrict(c, body, &in)
		}
		if err := cardFirst(pathErr, bodyErr); err != nil {
			return tradeAccountProblem(err)
		}
		id := c.Param("customer_id")
		var problems []order.FieldError
		if d := order.CustomerIDProblem(id); d != "" {
			problems = append(problems, order.FieldError{Field: "customer_id", Detail: d})
		}
		if utf8.RuneCountInString(in.Name) > tradeAccountNameMax {
			problems = append(problems, order.FieldError{Field: "name", Detail: fmt.Sprintf("must be at most %d characters", tradeAccountNameMax)})
		}
		if len(problems) > 0 {
			return tradeAccountProblem(&order.InvalidError{Problems: problems})
		}
		a, err := ta.Add(c.Request().Context(), id, in.Name)
		if err != nil {
			return fmt.Errorf("add trade account %s: %w", id, err)
		}
		ta.changed(c, log)
		return c.JSON(http.StatusOK, viewOfTradeAccount(a))
	}
}

// DELETE /v1/trade-accounts/{customer_id}: end the trade account; orders already placed keep
// their lane.
func handleDeleteTradeAccount(ta TradeAccounts, log *slog.Logger) echo.HandlerFunc {
	return func(c echo.Context) error {
		id := c.Param("customer_id")
		if order.CustomerIDProblem(id) != "" || screenText("customer_id", id) != nil {
			return tradeAccountProblem(postgres.ErrNotFound) // no account can have this id
		}
		if err := ta.Remove(c.Request().Context(), id); err != nil {
			return tradeAccountProblem(err)
		}
		ta.changed(c, log)
		return c.NoContent(http.StatusNoContent)
	}
}

// GET /v1/trade-accounts: every trade account, by customer id.
func handleListTradeAccounts(ta TradeAccounts) echo.HandlerFunc {
	return func(c echo.Context) error {
		as, err := ta.All(c.Request().Context())
		if err != nil {
			return fmt.Errorf("list trade accounts: %w", err)
		}
		items := make([]tradeAccountView, len(as))
		for i, a := range as {
			items[i] = viewOfTradeAccount(a)
		}
		return c.JSON(http.StatusOK, map[string]any{"items": items})
	}
}

// Package order holds the order domain: priorities, statuses and their transitions, cancel
// reasons, money in integer minor units, and the rules that price an order. It imports only the
// standard library, so its rules are tested without any server.
package order

import (
	"errors"
	"fmt"
	"math"
)

// Priority selects the lane an order travels in.
type Priority string

// Priorities (shipping speed). Express orders use the priority lane, drained first; so do trade
// accounts' orders of either priority (intake decides the lane).
const (
	PriorityStandard Priority = "standard"
	PriorityExpress  Priority = "express"
)

// Valid reports whether p is a known priority.
func (p Priority) Valid() bool { return p == PriorityStandard || p == PriorityExpress }

// Status is where an order is in its life.
type Status string

// Statuses: pending -> confirmed -> shipped; pending -> cancelled (with a reason).
const (
	StatusPending   Status = "pending"
	StatusConfirmed Status = "confirmed"
	StatusShipped   Status = "shipped"
	StatusCancelled Status = "cancelled"
)

// CancelReason says why an order was cancelled.
type CancelReason string

// Cancel reasons.
const (
	ReasonPaymentDeclined CancelReason = "payment_declined"
	ReasonOutOfStock      CancelReason = "out_of_stock"
	ReasonExpired         CancelReason = "expired"
	ReasonInvalid         CancelReason = "invalid"
	// ReasonDuplicate: a second order for an Idempotency-Key whose first order was already
	// claimed (the api lost its idempotency record); nothing was charged.
	ReasonDuplicate CancelReason = "duplicate"
)

// ErrTransition is returned for a status change the life cycle does not allow.
var ErrTransition = errors.New("status transition not allowed")

// Transition checks that an order may move from one status to another.
func Transition(from, to Status) error {
	switch {
	case from == StatusPending && (to == StatusConfirmed || to == StatusCancelled):
		return nil
	case from == StatusConfirmed && to == StatusShipped:
		return nil
	}
	return fmt.Errorf("%s -> %s: %w", from, to, ErrTransition)
}

// Terminal reports whether s ends the order's processing (I2: every accepted order reaches one).
func (s Status) Terminal() bool {
	return s == StatusConfirmed || s == StatusShipped || s == StatusCancelled
}

// ErrOverflow is returned when money arithmetic would overflow int64 minor units, or an amount
// is above the bounds below.
var ErrOverflow = errors.New("amount overflows")

// Upper bounds of what an order can carry. Every consumer stores and adds these up in Postgres
// bigint (sales aggregates sum line totals per hour and SKU) and int (order_lines.quantity), so
// the bounds keep every sum far from overflow: a line is at most MaxQuantity * MaxUnitPriceMinor
// (about 1e11), an order at most MaxTotalMinor, and a bigint holds 9.2e18. The OpenAPI document
// (schemas/openapi.yaml) states the same limits; a test compares them.
const (
	// MaxUnitPriceMinor is the highest price of one unit: 1,000,000.00 in a two-decimal currency.
	MaxUnitPriceMinor = 100_000_000
	// MaxQuantity is the most units of one line.
	MaxQuantity = 999
	// MaxTotalMinor is the highest total of one order: 10,000,000.00 in a two-decimal currency.
	MaxTotalMinor = 1_000_000_000
)

// Line is one priced line of an order.
type Line struct {
	SKU            string
	Name           string
	Quantity       int64
	UnitPriceMinor int64
	PromotionID    string // the promotion that priced the line; empty: the base price
}

// TotalMinor is quantity times unit price, in minor units.
func (l Line) TotalMinor() (int64, error) {
	if l.Quantity != 0 && l.UnitPriceMinor > math.MaxInt64/l.Quantity {
		return 0, fmt.Errorf("line %s: %w", l.SKU, ErrOverflow)
	}
	if l.UnitPriceMinor > MaxUnitPriceMinor || l.Quantity > MaxQuantity {
		return 0, fmt.Errorf("line %s: more than %d units or a unit price above %d: %w", l.SKU, MaxQuantity, MaxUnitPriceMinor, ErrOverflow)
	}
	return l.Quantity * l.UnitPriceMinor, nil
}

// Totals are an order's amounts, in minor units of one currency.
type Totals struct {
	SubtotalMinor int64
	ShippingMinor int64
	TotalMinor    int64
}

// Price sums the lines and adds shipping. Prices always come from the catalog, never from the
// client.
func Price(lines []Line, shippingMinor int64) (Totals, error) {
	var t Totals
	for _, l := range lines {
		lt, err := l.TotalMinor()
		if err != nil {
			return Totals{}, err
		}
		if t.SubtotalMinor > math.MaxInt64-lt {
			return Totals{}, fmt.Errorf("subtotal: %w", ErrOverflow)
		}
		t.SubtotalMinor += lt
	}
	if t.SubtotalMinor > math.MaxInt64-shippingMinor {
		return Totals{}, fmt.Errorf("total: %w", ErrOverflow)
	}
	t.ShippingMinor = shippingMinor
	t.TotalMinor = t.SubtotalMinor + shippingMinor
	if t.TotalMinor > MaxTotalMinor {
		return Totals{}, fmt.Errorf("total %d above the highest order total %d: %w", t.TotalMinor, int64(MaxTotalMinor), ErrOverflow)
	}
	return t, nil
}

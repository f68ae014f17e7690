package order

import (
	"errors"
	"fmt"
	"strings"
)

// FieldError names one bad field of a request with a message a developer can act on. Field is a
// dotted path with indexes, such as "lines[1].quantity".
type FieldError struct {
	Field  string
	Detail string
}

// InvalidError lists every problem of an invalid order request.
type InvalidError struct {
	Problems []FieldError
}

func (e *InvalidError) Error() string {
	parts := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		parts[i] = p.Field + ": " + p.Detail
	}
	return "invalid order: " + strings.Join(parts, "; ")
}

// Shortage is one line that cannot be held: what was asked and what is available now.
type Shortage struct {
	SKU       string
	Requested int64
	Available int64
}

// OutOfStockError refuses an order because at least one line is short. It lists every short line.
type OutOfStockError struct {
	Short []Shortage
}

func (e *OutOfStockError) Error() string {
	parts := make([]string, len(e.Short))
	for i, s := range e.Short {
		parts[i] = fmt.Sprintf("%s (requested %d, available %d)", s.SKU, s.Requested, s.Available)
	}
	return "out of stock: " + strings.Join(parts, ", ")
}

// ErrUnavailable means a dependency needed to answer (Redis, Kafka) cannot be reached; the client
// should retry later. Nothing is held when it is returned.
var ErrUnavailable = errors.New("temporarily unavailable")

// PromotionLimit is one line refused by its promotion: fewer of its units than requested could
// be sold at the promotional price (stock cap reached, or the customer's allowance used up), and
// the promotion refuses over-cap units instead of selling them at the base price.
type PromotionLimit struct {
	SKU         string
	PromotionID string
	Requested   int64
	Promotional int64 // units that could still be bought at the promotional price
}

// PromotionLimitError refuses an order because at least one line exceeds its promotion's limits.
type PromotionLimitError struct {
	Lines []PromotionLimit
}

func (e *PromotionLimitError) Error() string {
	parts := make([]string, len(e.Lines))
	for i, l := range e.Lines {
		parts[i] = fmt.Sprintf("%s under promotion %s (requested %d, promotional units left %d)", l.SKU, l.PromotionID, l.Requested, l.Promotional)
	}
	return "promotion limit: " + strings.Join(parts, ", ")
}

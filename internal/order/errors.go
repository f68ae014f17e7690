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

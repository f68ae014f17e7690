package event

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// OrderConfirmed is the data of a [TypeOrderConfirmed] event, schema [DataSchemaOrderConfirmed].
type OrderConfirmed struct {
	OrderID         string      `json:"order_id"`
	CustomerID      string      `json:"customer_id"`
	Email           string      `json:"email"`
	Priority        string      `json:"priority"`
	Currency        string      `json:"currency"`
	Lines           []OrderLine `json:"lines"`
	SubtotalMinor   int64       `json:"subtotal_minor"`
	ShippingMinor   int64       `json:"shipping_minor"`
	TotalMinor      int64       `json:"total_minor"`
	ShippingAddress Address     `json:"shipping_address"`
	PlacedAt        time.Time   `json:"placed_at"`
	ConfirmedAt     time.Time   `json:"confirmed_at"`
	PaymentID       string      `json:"payment_id"`
}

// EventType returns [TypeOrderConfirmed].
func (OrderConfirmed) EventType() string { return TypeOrderConfirmed }

// OrderCancelled is the data of a [TypeOrderCancelled] event, schema [DataSchemaOrderCancelled].
type OrderCancelled struct {
	OrderID         string      `json:"order_id"`
	CustomerID      string      `json:"customer_id"`
	Email           string      `json:"email"`
	Priority        string      `json:"priority"`
	Currency        string      `json:"currency"`
	Lines           []OrderLine `json:"lines"`
	SubtotalMinor   int64       `json:"subtotal_minor"`
	ShippingMinor   int64       `json:"shipping_minor"`
	TotalMinor      int64       `json:"total_minor"`
	ShippingAddress Address     `json:"shipping_address"`
	PlacedAt        time.Time   `json:"placed_at"`
	CancelledAt     time.Time   `json:"cancelled_at"`
	Reason          string      `json:"reason"` // payment_declined, out_of_stock, expired, invalid
	Refunded        bool        `json:"refunded"`
}

// EventType returns [TypeOrderCancelled].
func (OrderCancelled) EventType() string { return TypeOrderCancelled }

// NewEnvelope wraps data about subject (an order id) as an event of source at time t. The event id
// is [ID](type, subject): publishing the same outcome again yields the same event, so consumers
// deduplicate it. The data is not validated here; use [Validator.Validate].
func NewEnvelope(source, subject string, t time.Time, d Data) (Envelope, error) {
	if source == "" || subject == "" {
		return Envelope{}, errors.New("new envelope: empty source or subject")
	}
	schema, ok := currentSchemas()[d.EventType()]
	if !ok {
		return Envelope{}, fmt.Errorf("new envelope %s: %w", d.EventType(), ErrUnknownType)
	}
	data, err := json.Marshal(d)
	if err != nil {
		return Envelope{}, fmt.Errorf("new %s %s: %w", d.EventType(), subject, err)
	}
	return Envelope{
		ID: ID(d.EventType(), subject), Type: d.EventType(), Source: source,
		DataSchema: schema, Time: t, Data: data,
	}, nil
}

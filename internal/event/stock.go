package event

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Warehouse stock events (topic [TopicInventoryStock], keyed by SKU) and OrderShipped (topic
// [TopicOrderEvents], keyed by order id).
//
// Stock events are written by warehouse systems (directly, with any Kafka client such as kcat, or
// through the api's webhook bridge), so their event ids are the producer's, not deterministic.
// Idempotency and ordering come from the data instead: (warehouse_id, sku, seq), where seq grows
// with every event a warehouse publishes. An event whose seq is not larger than the last one
// applied for its warehouse and SKU changes nothing (invariant I7).
const (
	// TypeStockLevel is a warehouse's absolute on-hand of one SKU; data is [StockLevel].
	TypeStockLevel = "com.orderpipe.stock.level"
	// TypeStockAdjusted is a signed change of a warehouse's on-hand; data is [StockAdjusted].
	TypeStockAdjusted = "com.orderpipe.stock.adjusted"
	// TypeStockShipped is units of a confirmed order leaving a warehouse; data is [StockShipped].
	TypeStockShipped = "com.orderpipe.stock.shipped"
	// TypeOrderShipped is an order whose every allocated unit has shipped; data is [OrderShipped].
	TypeOrderShipped = "com.orderpipe.order.shipped"
)

// Data schemas of the stock events and OrderShipped.
const (
	DataSchemaStockLevel    = "https://schemas.orderpipe.dev/stock-level.v1.json"
	DataSchemaStockAdjusted = "https://schemas.orderpipe.dev/stock-adjusted.v1.json"
	DataSchemaStockShipped  = "https://schemas.orderpipe.dev/stock-shipped.v1.json"
	DataSchemaOrderShipped  = "https://schemas.orderpipe.dev/order-shipped.v1.json"
)

// Adjustment reasons of [StockAdjusted].
const (
	ReasonReceived = "received"
	ReasonDamaged  = "damaged"
	ReasonReturned = "returned"
	ReasonCounted  = "counted"
)

// IsStockType reports whether t is one of the warehouse stock event types.
func IsStockType(t string) bool {
	return t == TypeStockLevel || t == TypeStockAdjusted || t == TypeStockShipped
}

// StockHeader is what every stock event carries: who reports, about what, and in which order.
type StockHeader struct {
	WarehouseID string    `json:"warehouse_id"`
	SKU         string    `json:"sku"`
	Seq         int64     `json:"seq"` // grows with every event of the warehouse, across its SKUs
	OccurredAt  time.Time `json:"occurred_at"`
}

// Header returns h; the stock event types embed it.
func (h StockHeader) Header() StockHeader { return h }

// StockLevel is the data of a [TypeStockLevel] event: how many units of SKU the warehouse has.
type StockLevel struct {
	StockHeader
	OnHand int64 `json:"on_hand"`
}

// EventType returns [TypeStockLevel].
func (StockLevel) EventType() string { return TypeStockLevel }

// StockAdjusted is the data of a [TypeStockAdjusted] event: a signed change of the warehouse's
// units of SKU, with its reason (received, damaged, returned, counted).
type StockAdjusted struct {
	StockHeader
	Delta  int64  `json:"delta"`
	Reason string `json:"reason"`
}

// EventType returns [TypeStockAdjusted].
func (StockAdjusted) EventType() string { return TypeStockAdjusted }

// StockShipped is the data of a [TypeStockShipped] event: Quantity units of SKU left the warehouse
// for the confirmed order OrderID.
type StockShipped struct {
	StockHeader
	OrderID  string `json:"order_id"`
	Quantity int64  `json:"quantity"`
}

// EventType returns [TypeStockShipped].
func (StockShipped) EventType() string { return TypeStockShipped }

// OrderShipped is the data of a [TypeOrderShipped] event, schema [DataSchemaOrderShipped]: every
// allocated unit of the order has left the warehouses. It mirrors [OrderConfirmed], with the time
// of the last shipment instead of the confirmation and payment.
type OrderShipped struct {
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
	ShippedAt       time.Time   `json:"shipped_at"`
}

// EventType returns [TypeOrderShipped].
func (OrderShipped) EventType() string { return TypeOrderShipped }

// StockData is the data of a warehouse stock event.
type StockData interface {
	Data
	Header() StockHeader
}

// NewStockEnvelope wraps the data of a warehouse stock event as an event with the producer's id
// and source; its time is the data's occurred_at. The data is not validated here.
func NewStockEnvelope(id, source string, d StockData) (Envelope, error) {
	if id == "" || source == "" {
		return Envelope{}, errors.New("new stock event: empty id or source")
	}
	data, err := json.Marshal(d)
	if err != nil {
		return Envelope{}, fmt.Errorf("new %s %s: %w", d.EventType(), id, err)
	}
	return StockEnvelope(id, source, d.EventType(), data, d.Header().OccurredAt)
}

// StockEnvelope wraps already-encoded data of a stock event of type typ (one of the stock types)
// with the producer's id and source, at time t. The data is not validated here.
func StockEnvelope(id, source, typ string, data []byte, t time.Time) (Envelope, error) {
	if !IsStockType(typ) {
		return Envelope{}, fmt.Errorf("stock event %s: type %q: %w", id, typ, ErrUnknownType)
	}
	return Envelope{ID: id, Type: typ, Source: source, DataSchema: currentSchemas()[typ], Time: t, Data: data}, nil
}

// StockEvent is any warehouse stock event, decoded and validated: the header plus the fields of
// its type (the others are zero).
type StockEvent struct {
	ID   string // ce_id, the producer's
	Type string // TypeStockLevel, TypeStockAdjusted or TypeStockShipped
	StockHeader
	OnHand   int64  // level
	Delta    int64  // adjusted
	Reason   string // adjusted
	OrderID  string // shipped
	Quantity int64  // shipped
}

// DecodeStock validates env's data against the schema of its stock event type and decodes it. A
// type that is not a stock event yields an error wrapping [ErrUnknownType]; invalid data one
// wrapping [ErrInvalid].
func DecodeStock(v *Validator, env Envelope) (StockEvent, error) {
	out := StockEvent{ID: env.ID, Type: env.Type}
	switch env.Type {
	case TypeStockLevel:
		d, err := Decode[StockLevel](v, env)
		if err != nil {
			return StockEvent{}, err
		}
		out.StockHeader, out.OnHand = d.StockHeader, d.OnHand
	case TypeStockAdjusted:
		d, err := Decode[StockAdjusted](v, env)
		if err != nil {
			return StockEvent{}, err
		}
		out.StockHeader, out.Delta, out.Reason = d.StockHeader, d.Delta, d.Reason
	case TypeStockShipped:
		d, err := Decode[StockShipped](v, env)
		if err != nil {
			return StockEvent{}, err
		}
		out.StockHeader, out.OrderID, out.Quantity = d.StockHeader, d.OrderID, d.Quantity
	default:
		return StockEvent{}, fmt.Errorf("decode stock event %s: type %q: %w", env.ID, env.Type, ErrUnknownType)
	}
	return out, nil
}

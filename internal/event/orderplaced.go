package event

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// OrderPlaced is the data of a [TypeOrderPlaced] event, schema [DataSchemaOrderPlaced]: an order
// the api accepted after holding its stock. Amounts are integer minor units of Currency.
type OrderPlaced struct {
	OrderID         string      `json:"order_id"`
	PlacedAt        time.Time   `json:"placed_at"`
	CustomerID      string      `json:"customer_id"`
	Email           string      `json:"email"`
	Priority        string      `json:"priority"` // "standard" or "express"
	Currency        string      `json:"currency"` // ISO 4217
	Lines           []OrderLine `json:"lines"`
	SubtotalMinor   int64       `json:"subtotal_minor"`
	ShippingMinor   int64       `json:"shipping_minor"`
	TotalMinor      int64       `json:"total_minor"`
	Payment         Payment     `json:"payment"`
	ShippingAddress Address     `json:"shipping_address"`
	HoldDeadline    time.Time   `json:"hold_deadline"`
	APIKeyID        string      `json:"api_key_id"`
	// IdempotencyFingerprint identifies the request's Idempotency-Key within its API key
	// ([IdempotencyFingerprint]); empty in events produced before it existed.
	IdempotencyFingerprint string `json:"idempotency_fingerprint,omitempty"`
}

// IdempotencyFingerprint is the fingerprint of an Idempotency-Key sent with apiKeyID: the
// lowercase hex SHA-256 of the API key id, a NUL byte and the key. order-worker claims it in
// Postgres before any money moves, so one key never yields two charged orders, whatever Redis
// forgot. The key itself (chosen by the client) never travels.
func IdempotencyFingerprint(apiKeyID, idempotencyKey string) string {
	h := sha256.New()
	h.Write([]byte(apiKeyID))
	h.Write([]byte{0})
	h.Write([]byte(idempotencyKey))
	return hex.EncodeToString(h.Sum(nil))
}

// EventType returns [TypeOrderPlaced].
func (OrderPlaced) EventType() string { return TypeOrderPlaced }

// OrderLine is one line of an order, priced from the catalog.
type OrderLine struct {
	LineNo         int    `json:"line_no"` // 1-based
	SKU            string `json:"sku"`
	Name           string `json:"name"`
	Quantity       int    `json:"quantity"`
	UnitPriceMinor int64  `json:"unit_price_minor"`
	LineTotalMinor int64  `json:"line_total_minor"`
	PromotionID    string `json:"promotion_id,omitempty"` // the promotion that priced the line; empty: the base price
}

// Payment is a payment-provider token; card data never enters orderpipe.
type Payment struct {
	Method string `json:"method"` // card, paypal, sepa_debit, apple_pay or google_pay
	Token  string `json:"token"`
}

// Address is a shipping address.
type Address struct {
	Name       string `json:"name"`
	Line1      string `json:"line1"`
	Line2      string `json:"line2,omitempty"`
	City       string `json:"city"`
	PostalCode string `json:"postal_code"`
	Country    string `json:"country"` // ISO 3166-1 alpha-2
}

// NewOrderPlaced returns the envelope of the OrderPlaced event of p, produced by source. The event
// id is [ID](TypeOrderPlaced, p.OrderID) and the event time is p.PlacedAt, so publishing the same
// order again yields the same event. The data is not validated here; use [Validator.Validate].
func NewOrderPlaced(source string, p OrderPlaced) (Envelope, error) {
	if source == "" {
		return Envelope{}, errors.New("new OrderPlaced: empty source")
	}
	if p.OrderID == "" {
		return Envelope{}, errors.New("new OrderPlaced: empty order id")
	}
	data, err := json.Marshal(p)
	if err != nil {
		return Envelope{}, fmt.Errorf("new OrderPlaced %s: %w", p.OrderID, err)
	}
	return Envelope{
		ID:         ID(TypeOrderPlaced, p.OrderID),
		Type:       TypeOrderPlaced,
		Source:     source,
		DataSchema: DataSchemaOrderPlaced,
		Time:       p.PlacedAt,
		Data:       data,
	}, nil
}

package event

import "time"

// TypeHoldExpired records that an order's hold on one SKU passed its deadline unpaid and its
// units went back to available-to-promise (exactly once: invariant I6); data is [HoldExpired].
// It travels on [TopicOrderEvents] keyed by order id. Consumers that do not handle it skip it.
const TypeHoldExpired = "com.orderpipe.hold.expired"

// DataSchemaHoldExpired is the current schema of [TypeHoldExpired] data.
const DataSchemaHoldExpired = "https://schemas.orderpipe.dev/hold-expired.v1.json"

// HoldExpired is the data of a [TypeHoldExpired] event, schema [DataSchemaHoldExpired].
type HoldExpired struct {
	OrderID      string    `json:"order_id"`
	SKU          string    `json:"sku"`
	Quantity     int64     `json:"quantity"`
	HoldDeadline time.Time `json:"hold_deadline"`
	ExpiredAt    time.Time `json:"expired_at"`
}

// EventType returns [TypeHoldExpired].
func (HoldExpired) EventType() string { return TypeHoldExpired }

// HoldSubject is the subject of the [TypeHoldExpired] event of one order's hold on one SKU: its
// event id is ID(TypeHoldExpired, HoldSubject(order, sku)), the same however often it is
// published.
func HoldSubject(orderID, sku string) string { return orderID + "/" + sku }

// Package event owns orderpipe's Kafka event contract in Go: topic names, event types, the wire
// types of event data, the CloudEvents binary-mode headers that carry them on Kafka records,
// encoding and decoding, and validation against the JSON Schemas in the schemas package (the
// source of truth).
//
// A producer builds an [Envelope] (for example with [NewOrderPlaced]), validates its data with a
// [Validator] and turns it into a record with [Envelope.Record]. A consumer reads the envelope back
// with [FromRecord] and gets typed, validated data with [Decode].
package event

import (
	"strconv"

	"github.com/google/uuid"
)

// Topics. Their names are part of the external contract.
const (
	// TopicOrdersPlaced carries OrderPlaced events of standard orders, keyed by order id.
	TopicOrdersPlaced = "orders.placed"
	// TopicOrdersPlacedPriority carries OrderPlaced events of express orders, keyed by order id.
	TopicOrdersPlacedPriority = "orders.placed.priority"
	// TopicOrderEvents carries order lifecycle events (confirmed, cancelled, shipped), keyed by
	// order id.
	TopicOrderEvents = "orders.events"
	// TopicInventoryStock carries warehouse stock events, keyed by SKU.
	TopicInventoryStock = "inventory.stock"
)

// RetryTopic names the n-th retry topic (n starts at 1) of a consumer group: "<group>.retry.<n>".
func RetryTopic(group string, n int) string {
	return group + ".retry." + strconv.Itoa(n)
}

// DeadLetterTopic names the dead-letter topic of a consumer group: "<group>.dlq".
func DeadLetterTopic(group string) string {
	return group + ".dlq"
}

// SpecVersion is the CloudEvents specification version of every event.
const SpecVersion = "1.0"

// Event types (CloudEvents "type").
const (
	// TypeOrderPlaced is an order the api accepted; data is [OrderPlaced].
	TypeOrderPlaced = "com.orderpipe.order.placed"
	// TypeOrderConfirmed is an order whose payment was captured and stock allocated; data is
	// [OrderConfirmed].
	TypeOrderConfirmed = "com.orderpipe.order.confirmed"
	// TypeOrderCancelled is an order that ended without a sale; data is [OrderCancelled].
	TypeOrderCancelled = "com.orderpipe.order.cancelled"
)

// Data schemas (CloudEvents "dataschema"): the $id of the JSON Schema of an event's data.
const (
	// DataSchemaOrderPlaced is the current schema of [TypeOrderPlaced] data.
	DataSchemaOrderPlaced = "https://schemas.orderpipe.dev/order-placed.v1.json"
	// DataSchemaOrderConfirmed is the current schema of [TypeOrderConfirmed] data.
	DataSchemaOrderConfirmed = "https://schemas.orderpipe.dev/order-confirmed.v1.json"
	// DataSchemaOrderCancelled is the current schema of [TypeOrderCancelled] data.
	DataSchemaOrderCancelled = "https://schemas.orderpipe.dev/order-cancelled.v1.json"
)

// currentSchemas maps every known event type to the $id of its current data schema. Adding an
// event type means adding a constant pair above and an entry here.
func currentSchemas() map[string]string {
	return map[string]string{
		TypeOrderPlaced:    DataSchemaOrderPlaced,
		TypeOrderConfirmed: DataSchemaOrderConfirmed,
		TypeOrderCancelled: DataSchemaOrderCancelled,
		// Stock events and OrderShipped: stock.go.
		TypeStockLevel:    DataSchemaStockLevel,
		TypeStockAdjusted: DataSchemaStockAdjusted,
		TypeStockShipped:  DataSchemaStockShipped,
		TypeOrderShipped:  DataSchemaOrderShipped,
		// HoldExpired: hold.go.
		TypeHoldExpired: DataSchemaHoldExpired,
	}
}

// ID returns the deterministic event id of the event of type eventType about subject (an order id,
// or whatever makes the event unique for its type): a UUIDv5 over both, so replaying or
// re-publishing the same event yields the same id and consumers can deduplicate by it.
func ID(eventType, subject string) string {
	return uuid.NewSHA1(uuid.NameSpaceURL, []byte("https://orderpipe.dev/events/"+eventType+"/"+subject)).String()
}

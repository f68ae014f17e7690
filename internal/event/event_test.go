package event_test

import (
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/orderpipe/orderpipe/internal/event"
)

// sampleOrder returns a valid three-line OrderPlaced.
func sampleOrder(t testing.TB) event.OrderPlaced {
	t.Helper()
	placed := time.Date(2025, 11, 3, 8, 15, 42, 123456789, time.UTC)
	return event.OrderPlaced{
		OrderID:    "0b6f2c9e-4d1a-4c53-9a8e-3f1d2b7c6a10",
		PlacedAt:   placed,
		CustomerID: "cust-10042",
		Email:      "anna.berger@example.com",
		Priority:   "express",
		Currency:   "EUR",
		Lines: []event.OrderLine{
			{LineNo: 1, SKU: "BRK-PAD-4411", Name: "Brake pad set, front axle", Quantity: 2, UnitPriceMinor: 3499, LineTotalMinor: 6998},
			{LineNo: 2, SKU: "BAT-70AH-EFB", Name: "Starter battery 12V 70Ah EFB", Quantity: 1, UnitPriceMinor: 11990, LineTotalMinor: 11990},
			{LineNo: 3, SKU: "FLT-OIL-0099", Name: "Oil filter", Quantity: 3, UnitPriceMinor: 899, LineTotalMinor: 2697},
		},
		SubtotalMinor: 21685,
		ShippingMinor: 990,
		TotalMinor:    22675,
		Payment:       event.Payment{Method: "card", Token: "tok_1PqR7sT8uV9wX0yZ"},
		ShippingAddress: event.Address{
			Name: "Anna Berger", Line1: "Hauptstrasse 12", City: "Leipzig", PostalCode: "04109", Country: "DE",
		},
		HoldDeadline: placed.Add(15 * time.Minute),
		APIKeyID:     "k_checkout01",
	}
}

func TestTopicNames(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, got, want string
	}{
		{"orders placed", event.TopicOrdersPlaced, "orders.placed"},
		{"orders placed priority", event.TopicOrdersPlacedPriority, "orders.placed.priority"},
		{"order events", event.TopicOrderEvents, "orders.events"},
		{"inventory stock", event.TopicInventoryStock, "inventory.stock"},
		{"retry 1", event.RetryTopic("order-worker", 1), "order-worker.retry.1"},
		{"retry 12", event.RetryTopic("notifier", 12), "notifier.retry.12"},
		{"dead letter", event.DeadLetterTopic("inventory-sync"), "inventory-sync.dlq"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, tt.got, tt.want)
		}
	}
}

func TestIDDeterministic(t *testing.T) {
	t.Parallel()
	const order = "0b6f2c9e-4d1a-4c53-9a8e-3f1d2b7c6a10"
	first := event.ID(event.TypeOrderPlaced, order)
	if got := event.ID(event.TypeOrderPlaced, order); got != first {
		t.Fatalf("second id: got %s, want %s", got, first)
	}
	u, err := uuid.Parse(first)
	if err != nil {
		t.Fatalf("parse id %q: %v", first, err)
	}
	if got, want := u.Version(), uuid.Version(5); got != want {
		t.Fatalf("uuid version: got %d, want %d", got, want)
	}
	if other := event.ID(event.TypeOrderPlaced, "9f0e4a57-2c3b-4e8d-b1a6-5d7c8e9f0a21"); other == first {
		t.Fatalf("id of another order: got %s, want different from %s", other, first)
	}
	if other := event.ID("com.orderpipe.order.confirmed", order); other == first {
		t.Fatalf("id of another type: got %s, want different from %s", other, first)
	}
}

func TestNewOrderPlacedDeterministic(t *testing.T) {
	t.Parallel()
	p := sampleOrder(t)
	a, err := event.NewOrderPlaced("/orderpipe/api", p)
	if err != nil {
		t.Fatalf("NewOrderPlaced: %v", err)
	}
	b, err := event.NewOrderPlaced("/orderpipe/api", p)
	if err != nil {
		t.Fatalf("NewOrderPlaced again: %v", err)
	}
	if a.ID != b.ID || string(a.Data) != string(b.Data) || !a.Time.Equal(b.Time) {
		t.Fatalf("republished event: got %+v, want %+v", b, a)
	}
	if got, want := a.ID, event.ID(event.TypeOrderPlaced, p.OrderID); got != want {
		t.Fatalf("id: got %s, want %s", got, want)
	}
	if got, want := a.Type, event.TypeOrderPlaced; got != want {
		t.Fatalf("type: got %s, want %s", got, want)
	}
	if got, want := a.DataSchema, event.DataSchemaOrderPlaced; got != want {
		t.Fatalf("dataschema: got %s, want %s", got, want)
	}
	if !a.Time.Equal(p.PlacedAt) {
		t.Fatalf("time: got %v, want %v", a.Time, p.PlacedAt)
	}
}

func TestNewOrderPlacedRejectsMissingIdentity(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, source, orderID string
	}{
		{"no source", "", "0b6f2c9e-4d1a-4c53-9a8e-3f1d2b7c6a10"},
		{"no order id", "/orderpipe/api", ""},
	}
	for _, tt := range tests {
		p := sampleOrder(t)
		p.OrderID = tt.orderID
		if _, err := event.NewOrderPlaced(tt.source, p); err == nil {
			t.Errorf("%s: got nil error, want one", tt.name)
		}
	}
}

package notifier

import (
	"testing"
	"time"

	"github.com/orderpipe/orderpipe/internal/event"
)

// An order cancelled as duplicate is a second copy of an order the buyer placed once: the sales
// report counts the first one and neither sells nor cancels anything for the copy. Every other
// cancellation is a fact.
func TestReportsSkipDuplicateCancellations(t *testing.T) {
	t.Parallel()
	v, err := event.NewValidator()
	if err != nil {
		t.Fatal(err)
	}
	r := &Reports{validator: v}
	for reason, want := range map[string]bool{"duplicate": false, "invalid": true, "out_of_stock": true} {
		c := event.OrderCancelled{
			OrderID: "0b6f2c9e-4d1a-4c53-9a8e-3f1d2b7c6a10", CustomerID: "c-1", Email: "a@example.com", Priority: "standard", Currency: "EUR",
			Lines:         []event.OrderLine{{LineNo: 1, SKU: "BRK-1", Name: "Pads", Quantity: 1, UnitPriceMinor: 1000, LineTotalMinor: 1000}},
			SubtotalMinor: 1000, TotalMinor: 1000,
			ShippingAddress: event.Address{Name: "A", Line1: "Street 1", City: "Berlin", PostalCode: "10115", Country: "DE"},
			PlacedAt:        time.Now().UTC(), CancelledAt: time.Now().UTC(), Reason: reason,
		}
		env, err := event.NewEnvelope("/test", c.OrderID, c.CancelledAt, c)
		if err != nil {
			t.Fatal(err)
		}
		_, ok, err := r.fact(env)
		if err != nil || ok != want {
			t.Errorf("reason %s: fact %v (%v), want %v", reason, ok, err, want)
		}
	}
}

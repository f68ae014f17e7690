package event_test

import (
	"testing"
	"time"

	"github.com/orderpipe/orderpipe/internal/event"
)

// Every frozen example of HoldExpired still validates and decodes without losing a field.
func TestHoldExpiredBackwardCompatible(t *testing.T) {
	t.Parallel()
	compat[event.HoldExpired](t, newValidator(t), "hold-expired")
}

// The event id depends on order and SKU only, so a re-published expiry is the same event, and two
// SKUs of one order are two events.
func TestHoldExpiredIDIsPerOrderAndSKU(t *testing.T) {
	t.Parallel()
	v := newValidator(t)
	const order = "01936f4e-6b1c-7a4e-9c2b-3f1e2d4c5b6b"
	h := event.HoldExpired{OrderID: order, SKU: "BRK-PAD-1001", Quantity: 2,
		HoldDeadline: time.Date(2026, 11, 26, 9, 46, 0, 0, time.UTC), ExpiredAt: time.Date(2026, 11, 26, 9, 46, 1, 0, time.UTC)}
	a, err := event.NewEnvelope("/r", event.HoldSubject(order, h.SKU), h.ExpiredAt, h)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Validate(a.Type, a.Data); err != nil {
		t.Fatalf("validate: %v", err)
	}
	b, _ := event.NewEnvelope("/other", event.HoldSubject(order, h.SKU), h.ExpiredAt.Add(time.Hour), h)
	h2 := h
	h2.SKU = "FLT-OIL-2001"
	c, _ := event.NewEnvelope("/r", event.HoldSubject(order, h2.SKU), h.ExpiredAt, h2)
	if a.ID != b.ID || a.ID == c.ID {
		t.Fatalf("ids %s %s %s: want the first two equal and the third different", a.ID, b.ID, c.ID)
	}
	if a.Type != event.TypeHoldExpired || a.DataSchema != event.DataSchemaHoldExpired {
		t.Fatalf("type %s schema %s", a.Type, a.DataSchema)
	}
	bad := h
	bad.Quantity = 0
	x, _ := event.NewEnvelope("/r", "s", h.ExpiredAt, bad)
	if err := v.Validate(x.Type, x.Data); err == nil {
		t.Fatalf("quantity 0 validated, want an error")
	}
}

package intake_test

import (
	"log/slog"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderpipe/orderpipe/internal/catalog"
	"github.com/orderpipe/orderpipe/internal/event"
	"github.com/orderpipe/orderpipe/internal/intake"
	"github.com/orderpipe/orderpipe/internal/kafka"
	"github.com/orderpipe/orderpipe/internal/order"
	"github.com/orderpipe/orderpipe/internal/redisstore"
	"github.com/orderpipe/orderpipe/internal/testenv"
)

// panicOnBuffer is a bug between the reservation and the broker's acknowledgement: franz-go calls
// the hook in Produce, on the request's goroutine.
type panicOnBuffer struct{}

func (panicOnBuffer) OnProduceRecordBuffered(*kgo.Record) { panic("a bug after the reservation") }

// A panic after the units were held refuses the order, so its holds go back at once (I5), not
// at their deadline.
func TestPanicAfterReservationGivesTheHoldsBack(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	rdb, prefix := testenv.Redis(t)
	store := redisstore.New(rdb, prefix)
	const sku = "BRK-PAD-1001"
	if _, err := store.SeedStock(ctx, map[string]int64{sku: 5}); err != nil {
		t.Fatal(err)
	}
	cluster := testenv.Kafka(t)
	cl, err := kafka.NewClient(kafka.ClientConfig{Brokers: cluster.ListenAddrs(), ClientID: "panic-test"}, kgo.WithHooks(panicOnBuffer{}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	cat := catalog.New(nil)
	cat.Put(catalog.Product{SKU: sku, Name: "Brake pads", Category: "brakes", Brand: "Brembo", PriceMinor: 4990, Currency: "EUR", Active: true})
	v, err := event.NewValidator()
	if err != nil {
		t.Fatal(err)
	}
	svc := intake.New(intake.Config{HoldTTL: time.Hour, ProduceTimeout: 5 * time.Second, Currency: "EUR", ShippingStandardMinor: 490, Source: "/orderpipe/test"},
		store, cl, cat, v, slog.New(slog.DiscardHandler), prometheus.NewRegistry())

	req := intake.Request{
		OrderID: uuid.NewString(), APIKeyID: "k", CustomerID: "c-1", Email: "buyer@example.com", Priority: order.PriorityStandard,
		Lines:   []intake.LineRequest{{SKU: sku, Quantity: 2}},
		Payment: event.Payment{Method: "card", Token: "tok_visa"},
		Address: event.Address{Name: "A Buyer", Line1: "1 Main St", City: "Berlin", PostalCode: "10115", Country: "DE"},
	}
	panicked := func() (p any) {
		defer func() { p = recover() }()
		_, _ = svc.Place(ctx, req)
		return nil
	}()
	if panicked == nil {
		t.Fatal("Place did not reach the produce (no panic): the test proves nothing")
	}
	st, err := store.Availability(ctx, sku)
	if err != nil {
		t.Fatal(err)
	}
	if st.ATP != 5 || st.Held != 0 {
		t.Fatalf("after a panic past the reservation: atp %d held %d, want 5 and 0 (the holds given back)", st.ATP, st.Held)
	}
}

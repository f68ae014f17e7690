package postgres_test

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/orderpipe/orderpipe/internal/postgres"
)

func testOrder(id string) postgres.Order {
	placed := time.Date(2025, 11, 3, 9, 30, 15, 123456000, time.UTC)
	return postgres.Order{
		ID: id, Status: "pending", CustomerID: "cus_42", Email: "jana@example.com",
		Priority: "express", Currency: "EUR",
		SubtotalMinor: 3*3990 + 11990, ShippingMinor: 690, TotalMinor: 3*3990 + 11990 + 690,
		ShippingAddress: json.RawMessage(
			`{"name": "Jana Novak", "street": "Hauptstr. 1", "city": "Berlin", "postal_code": "10115", "country": "DE"}`),
		PlacedAt:     placed,
		HoldDeadline: placed.Add(15 * time.Minute),
		UpdatedAt:    placed,
		Lines: []postgres.OrderLine{
			{LineNo: 1, SKU: "BRK-PAD-1001", Name: "Brake Pad Set, Front", Quantity: 3,
				UnitPriceMinor: 3990},
			{LineNo: 2, SKU: "BAT-5001", Name: "Varta Blue Dynamic E11", Quantity: 1,
				UnitPriceMinor: 11990},
		},
	}
}

func TestOrderInsertIsIdempotent(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	const id = "0f8fad5b-d9cb-469f-a165-70867728950e"
	want := testOrder(id)

	inserted, err := b.orders.Insert(ctx, want)
	if err != nil || !inserted {
		t.Fatalf("insert: got %v, %v, want true, nil", inserted, err)
	}
	again := testOrder(id)
	again.Status, again.CancelReason = "cancelled", "expired"
	again.Lines = again.Lines[:1]
	inserted, err = b.orders.Insert(ctx, again)
	if err != nil || inserted {
		t.Fatalf("insert again: got %v, %v, want false, nil", inserted, err)
	}

	var orders, lines int
	if err := b.pool.QueryRow(ctx,
		"SELECT (SELECT count(*) FROM orders), (SELECT count(*) FROM order_lines)",
	).Scan(&orders, &lines); err != nil {
		t.Fatalf("count: %v", err)
	}
	if orders != 1 || lines != 2 {
		t.Fatalf("got %d orders and %d lines, want 1 and 2", orders, lines)
	}

	got, found, err := b.orders.Get(ctx, id)
	if err != nil || !found {
		t.Fatalf("get: got found %v, %v, want found", found, err)
	}
	assertOrder(t, got, want)
}

func TestOrderCancelled(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	o := testOrder("6ba7b810-9dad-11d1-80b4-00c04fd430c8")
	o.Status, o.CancelReason = "cancelled", "payment_declined"
	if inserted, err := b.orders.Insert(ctx, o); err != nil || !inserted {
		t.Fatalf("insert: got %v, %v, want true, nil", inserted, err)
	}
	got, found, err := b.orders.Get(ctx, o.ID)
	if err != nil || !found {
		t.Fatalf("get: got found %v, %v, want found", found, err)
	}
	assertOrder(t, got, o)
}

func TestOrderRejectsInvalid(t *testing.T) {
	t.Parallel()
	b := setup(t)
	tests := []struct {
		name       string
		id         string
		change     func(*postgres.Order)
		constraint string
	}{
		{"cancelled without reason", "a0000000-0000-4000-8000-000000000001",
			func(o *postgres.Order) { o.Status = "cancelled" }, "orders_cancel_reason_iff_cancelled"},
		{"reason while pending", "a0000000-0000-4000-8000-000000000002",
			func(o *postgres.Order) { o.CancelReason = "expired" }, "orders_cancel_reason_iff_cancelled"},
		{"unknown status", "a0000000-0000-4000-8000-000000000003",
			func(o *postgres.Order) { o.Status = "lost" }, "orders_status_check"},
		{"unknown priority", "a0000000-0000-4000-8000-000000000004",
			func(o *postgres.Order) { o.Priority = "overnight" }, "orders_priority_check"},
		{"zero quantity", "a0000000-0000-4000-8000-000000000005",
			func(o *postgres.Order) { o.Lines[1].Quantity = 0 }, "order_lines_quantity_check"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			o := testOrder(tt.id)
			tt.change(&o)
			_, err := b.orders.Insert(t.Context(), o)
			wantPgError(t, err, "23514", tt.constraint)
			if _, found, err := b.orders.Get(t.Context(), tt.id); err != nil || found {
				t.Fatalf("get after a failed insert: got found %v, %v, want nothing stored", found,
					err)
			}
		})
	}
	if _, err := b.orders.Insert(t.Context(), testOrder("not-a-uuid")); err == nil {
		t.Fatalf("insert with a non-UUID id: got no error, want one")
	}
}

func TestOrderGetMissing(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, id := range []string{"7d444840-9dc0-11d1-b245-5ffdce74fad2", "not-a-uuid", ""} {
		o, found, err := b.orders.Get(t.Context(), id)
		if err != nil || found || o.ID != "" {
			t.Fatalf("get %q: got %+v, %v, %v, want not found and no error", id, o, found, err)
		}
	}
}

func assertOrder(t *testing.T, got, want postgres.Order) {
	t.Helper()
	var gotAddr, wantAddr any
	if err := json.Unmarshal(got.ShippingAddress, &gotAddr); err != nil {
		t.Fatalf("stored address %s: %v", got.ShippingAddress, err)
	}
	if err := json.Unmarshal(want.ShippingAddress, &wantAddr); err != nil {
		t.Fatalf("address %s: %v", want.ShippingAddress, err)
	}
	if !reflect.DeepEqual(gotAddr, wantAddr) {
		t.Fatalf("got address %s, want %s", got.ShippingAddress, want.ShippingAddress)
	}
	for _, ts := range []struct {
		name      string
		got, want time.Time
	}{
		{"placed_at", got.PlacedAt, want.PlacedAt},
		{"hold_deadline", got.HoldDeadline, want.HoldDeadline},
		{"updated_at", got.UpdatedAt, want.UpdatedAt},
	} {
		if !ts.got.Equal(ts.want) {
			t.Fatalf("got %s %v, want %v", ts.name, ts.got, ts.want)
		}
	}
	got.ShippingAddress, want.ShippingAddress = nil, nil
	got.PlacedAt, got.HoldDeadline, got.UpdatedAt = want.PlacedAt, want.HoldDeadline, want.UpdatedAt
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
}

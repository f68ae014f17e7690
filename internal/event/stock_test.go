package event_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/orderpipe/orderpipe/internal/event"
)

// Every frozen example of the stock events and OrderShipped still validates, decodes without
// losing a field, and re-encodes to valid data with the same content.
func TestStockEventsBackwardCompatible(t *testing.T) {
	t.Parallel()
	v := newValidator(t)
	t.Run("stock-level", func(t *testing.T) { compat[event.StockLevel](t, v, "stock-level") })
	t.Run("stock-adjusted", func(t *testing.T) { compat[event.StockAdjusted](t, v, "stock-adjusted") })
	t.Run("stock-shipped", func(t *testing.T) { compat[event.StockShipped](t, v, "stock-shipped") })
	t.Run("order-shipped", func(t *testing.T) { compat[event.OrderShipped](t, v, "order-shipped") })
}

func TestDecodeStock(t *testing.T) {
	t.Parallel()
	v := newValidator(t)
	at := time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)
	h := event.StockHeader{WarehouseID: "WH-BER-1", SKU: "BRK-PAD-1001", Seq: 7, OccurredAt: at}
	tests := []struct {
		name string
		data event.StockData
		want event.StockEvent
	}{
		{"level", event.StockLevel{StockHeader: h, OnHand: 12},
			event.StockEvent{ID: "e-1", Type: event.TypeStockLevel, StockHeader: h, OnHand: 12}},
		{"adjusted", event.StockAdjusted{StockHeader: h, Delta: -3, Reason: event.ReasonDamaged},
			event.StockEvent{ID: "e-1", Type: event.TypeStockAdjusted, StockHeader: h, Delta: -3, Reason: event.ReasonDamaged}},
		{"shipped", event.StockShipped{StockHeader: h, OrderID: "01936f4e-6b1c-7a4e-9c2b-3f1e2d4c5b6a", Quantity: 2},
			event.StockEvent{ID: "e-1", Type: event.TypeStockShipped, StockHeader: h, OrderID: "01936f4e-6b1c-7a4e-9c2b-3f1e2d4c5b6a", Quantity: 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			env, err := event.NewStockEnvelope("e-1", "warehouse/WH-BER-1", tt.data)
			if err != nil {
				t.Fatal(err)
			}
			if !env.Time.Equal(at) || env.DataSchema == "" || env.Type != tt.data.EventType() {
				t.Fatalf("envelope: got time %v schema %q type %q, want %v, a schema, %s", env.Time, env.DataSchema, env.Type, at, tt.data.EventType())
			}
			// The header is flattened into the data, as the schema wants.
			var flat map[string]any
			if err := json.Unmarshal(env.Data, &flat); err != nil || flat["warehouse_id"] != "WH-BER-1" || flat["seq"] != 7.0 {
				t.Fatalf("data: got %s, want warehouse_id and seq at the top level", env.Data)
			}
			got, err := event.DecodeStock(v, env)
			if err != nil {
				t.Fatalf("DecodeStock: %v", err)
			}
			if !got.OccurredAt.Equal(tt.want.OccurredAt) {
				t.Fatalf("occurred_at: got %v, want %v", got.OccurredAt, tt.want.OccurredAt)
			}
			got.OccurredAt = tt.want.OccurredAt
			if got != tt.want {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestDecodeStockRejects(t *testing.T) {
	t.Parallel()
	v := newValidator(t)
	good := `{"warehouse_id":"WH-1","sku":"BRK-PAD-1001","seq":3,"occurred_at":"2026-11-26T09:00:00Z","on_hand":4}`
	tests := []struct {
		name, typ, data string
		want            error
		field           string
	}{
		{"not a stock type", event.TypeOrderPlaced, good, event.ErrUnknownType, ""},
		{"unknown type", "com.example.stock", good, event.ErrUnknownType, ""},
		{"negative level", event.TypeStockLevel, strings.Replace(good, `"on_hand":4`, `"on_hand":-1`, 1), event.ErrInvalid, "/on_hand"},
		{"seq zero", event.TypeStockLevel, strings.Replace(good, `"seq":3`, `"seq":0`, 1), event.ErrInvalid, "/seq"},
		{"lowercase sku", event.TypeStockLevel, strings.Replace(good, `BRK-PAD-1001`, `brk-pad`, 1), event.ErrInvalid, "/sku"},
		{"unknown field", event.TypeStockLevel, strings.Replace(good, `"on_hand":4`, `"on_hand":4,"bin":"A1"`, 1), event.ErrInvalid, "/bin"},
		{"adjustment without reason", event.TypeStockAdjusted, strings.Replace(good, `"on_hand":4`, `"delta":4`, 1), event.ErrInvalid, "/reason"},
		{"adjustment with unknown reason", event.TypeStockAdjusted, strings.Replace(good, `"on_hand":4`, `"delta":4,"reason":"stolen"`, 1), event.ErrInvalid, "/reason"},
		{"shipment of a non-uuid order", event.TypeStockShipped, strings.Replace(good, `"on_hand":4`, `"order_id":"o-1","quantity":1`, 1), event.ErrInvalid, "/order_id"},
		{"shipment of nothing", event.TypeStockShipped, strings.Replace(good, `"on_hand":4`, `"order_id":"01936f4e-6b1c-7a4e-9c2b-3f1e2d4c5b6a","quantity":0`, 1), event.ErrInvalid, "/quantity"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := event.DecodeStock(v, event.Envelope{ID: "e", Type: tt.typ, Source: "s", Data: []byte(tt.data)})
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			if tt.field == "" {
				return
			}
			var ve *event.ValidationError
			if !errors.As(err, &ve) || len(ve.Problems) == 0 || ve.Problems[0].Field != tt.field {
				t.Fatalf("problems: got %v, want one at %s", err, tt.field)
			}
		})
	}
}

func TestStockEnvelopeRefusesOtherTypes(t *testing.T) {
	t.Parallel()
	if _, err := event.StockEnvelope("e", "s", event.TypeOrderConfirmed, []byte(`{}`), time.Now()); !errors.Is(err, event.ErrUnknownType) {
		t.Fatalf("got %v, want ErrUnknownType", err)
	}
	if _, err := event.NewStockEnvelope("", "s", event.StockLevel{}); err == nil {
		t.Fatalf("empty id: got nil error, want one")
	}
}

func TestOrderShippedIDIsDeterministic(t *testing.T) {
	t.Parallel()
	a, err := event.NewEnvelope("/inventory-sync", "o-1", time.Unix(1, 0), event.OrderShipped{OrderID: "o-1"})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := event.NewEnvelope("/inventory-sync", "o-1", time.Unix(5, 0), event.OrderShipped{OrderID: "o-1"})
	c, _ := event.NewEnvelope("/inventory-sync", "o-1", time.Unix(1, 0), event.OrderConfirmed{OrderID: "o-1"})
	if a.ID != b.ID || a.ID == c.ID || a.Type != event.TypeOrderShipped || a.DataSchema != event.DataSchemaOrderShipped {
		t.Fatalf("ids %s %s %s, type %s schema %s", a.ID, b.ID, c.ID, a.Type, a.DataSchema)
	}
}

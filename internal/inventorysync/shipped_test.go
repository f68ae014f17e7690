package inventorysync_test

import (
	"testing"
	"time"

	"github.com/orderpipe/orderpipe/internal/event"
	"github.com/orderpipe/orderpipe/internal/postgres"
)

// OrderShipped lists each line as it was sold: a line priced by a promotion names it, as in
// OrderPlaced and OrderConfirmed, so consumers of the shipment see what was sold at which price.
func TestOrderShippedCarriesEachLinesPromotion(t *testing.T) {
	t.Parallel()
	s := setup(t, []string{"BRK-PAD-1001", "FLT-OIL-2001"}, map[string]int64{"BRK-PAD-1001": 10, "FLT-OIL-2001": 10})
	id := s.confirmLines(t,
		postgres.OrderLine{LineNo: 1, SKU: "BRK-PAD-1001", Name: "Brake pads", Quantity: 2, UnitPriceMinor: 800, PromotionID: "brakes-20"},
		postgres.OrderLine{LineNo: 2, SKU: "FLT-OIL-2001", Name: "Oil filter", Quantity: 1, UnitPriceMinor: 1000})
	s.sync(t, nil)
	s.kcat(t, shipMsg("ship-1", "WH-1", "BRK-PAD-1001", 1, id, 2))
	s.kcat(t, shipMsg("ship-2", "WH-1", "FLT-OIL-2001", 1, id, 1))

	v, err := event.NewValidator()
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		for _, r := range s.records(t, event.TopicOrderEvents) {
			env, err := event.FromRecord(r)
			if err != nil {
				t.Fatal(err)
			}
			if env.Type != event.TypeOrderShipped || string(r.Key) != id {
				continue
			}
			d, err := event.Decode[event.OrderShipped](v, env)
			if err != nil {
				t.Fatal(err)
			}
			if len(d.Lines) != 2 || d.Lines[0].PromotionID != "brakes-20" || d.Lines[0].UnitPriceMinor != 800 || d.Lines[1].PromotionID != "" {
				t.Fatalf("OrderShipped lines %+v, want line 1 under brakes-20 at 800 and line 2 at the base price", d.Lines)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no OrderShipped for order %s within 30s (status %s)", id, s.orderStatus(t, id))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

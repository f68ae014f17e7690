package intake

import (
	"time"

	"github.com/orderpipe/orderpipe/internal/event"
)

// View is an order as the HTTP API shows it: the 202 answer to POST /v1/orders and the answer
// to GET /v1/orders/{id}.
type View struct {
	OrderID       string      `json:"order_id"`
	Status        string      `json:"status"`
	CancelReason  string      `json:"cancel_reason,omitempty"`
	Priority      string      `json:"priority"`
	Currency      string      `json:"currency"`
	Lines         []ViewLine  `json:"lines"`
	SubtotalMinor int64       `json:"subtotal_minor"`
	ShippingMinor int64       `json:"shipping_minor"`
	TotalMinor    int64       `json:"total_minor"`
	PlacedAt      time.Time   `json:"placed_at"`
	HoldDeadline  time.Time   `json:"hold_deadline"`
	UpdatedAt     *time.Time  `json:"updated_at,omitempty"`
	DeadLetter    *DeadLetter `json:"dead_letter,omitempty"`
}

// DeadLetter says that a pending order's record is parked in the dead-letter topic.
type DeadLetter struct {
	ErrorClass string    `json:"error_class"`
	Error      string    `json:"error"`
	At         time.Time `json:"at"`
}

// ViewLine is one line of a View.
type ViewLine struct {
	LineNo         int    `json:"line_no"`
	SKU            string `json:"sku"`
	Name           string `json:"name"`
	Quantity       int    `json:"quantity"`
	UnitPriceMinor int64  `json:"unit_price_minor"`
	LineTotalMinor int64  `json:"line_total_minor"`
	PromotionID    string `json:"promotion_id,omitempty"` // the promotion that priced the line; empty: the base price
}

func viewOf(p event.OrderPlaced) View {
	v := View{
		OrderID: p.OrderID, Status: "pending", Priority: p.Priority, Currency: p.Currency,
		SubtotalMinor: p.SubtotalMinor, ShippingMinor: p.ShippingMinor, TotalMinor: p.TotalMinor,
		PlacedAt: p.PlacedAt, HoldDeadline: p.HoldDeadline,
	}
	for _, l := range p.Lines {
		v.Lines = append(v.Lines, ViewLine{LineNo: l.LineNo, SKU: l.SKU, Name: l.Name, Quantity: l.Quantity, UnitPriceMinor: l.UnitPriceMinor, LineTotalMinor: l.LineTotalMinor, PromotionID: l.PromotionID})
	}
	return v
}

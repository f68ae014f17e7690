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

// DeadLetter says that a pending order's record is parked in the dead-letter topic: a stable
// class and a short public message. The error itself (a Postgres error, a provider's answer)
// names internals and never reaches the client; the worker logged it when it parked the record,
// and ops read it with `orderctl dlq inspect`. Build it with NewDeadLetter.
type DeadLetter struct {
	ErrorClass string    `json:"error_class"`
	Message    string    `json:"error"`
	At         time.Time `json:"at"`
}

// Classes of a dead-lettered order, as clients see them.
const (
	DeadLetterTransient = "transient" // a failure outlasted the retries (an outage)
	DeadLetterPermanent = "permanent" // the record cannot be processed as it is
)

// NewDeadLetter is the public note of an order parked at at with the worker's error class. A
// class this version does not know reads as permanent: the order waits for a person either way.
func NewDeadLetter(class string, at time.Time) *DeadLetter {
	if class == DeadLetterTransient {
		return &DeadLetter{ErrorClass: DeadLetterTransient, At: at,
			Message: "Processing failed for longer than its retries allow (a temporary outage). The order is kept and will be processed again; it ends confirmed or cancelled."}
	}
	return &DeadLetter{ErrorClass: DeadLetterPermanent, At: at,
		Message: "The order could not be processed as it is and waits for review by the shop. It ends confirmed or cancelled; nothing is charged twice."}
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

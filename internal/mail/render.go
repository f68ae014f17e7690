package mail

import (
	"bytes"
	"embed"
	"fmt"
	htmltemplate "html/template"
	"net/mail"
	"strings"
	texttemplate "text/template"
	"time"
)

//go:embed templates/*.txt templates/*.html
var templateFiles embed.FS

// Order is what an order e-mail shows. Amounts are integer minor units of Currency.
type Order struct {
	ID            string
	Name          string // the buyer's name, from the shipping address
	Email         string
	Currency      string
	Lines         []Line
	SubtotalMinor int64
	ShippingMinor int64
	TotalMinor    int64
	Express       bool
	Address       Address
	PlacedAt      time.Time
	Reason        string   // cancelled: the cancel reason (payment_declined, out_of_stock, expired, invalid, duplicate)
	Refunded      bool     // cancelled: the payment was captured and has been refunded
	Shipment      Shipment // shipped
}

// Line is one order line.
type Line struct {
	SKU            string
	Name           string
	Quantity       int
	UnitPriceMinor int64
	LineTotalMinor int64
}

// Address is a postal address.
type Address struct {
	Name, Line1, Line2, City, PostalCode, Country string
}

// Shipment is what a shipping e-mail says about the parcel; every field is optional.
type Shipment struct {
	Carrier        string
	TrackingNumber string
	TrackingURL    string
}

// Summary is the daily sales summary sent to ops.
type Summary struct {
	Day        string // 2006-01-02
	Location   string // time zone of the day's boundaries
	Totals     []SummaryTotal
	TopSKUs    []SummaryRow
	Categories []SummaryRow
}

// SummaryTotal is the day's figures in one currency.
type SummaryTotal struct {
	Currency        string
	Orders          int64
	Units           int64
	RevenueMinor    int64
	CancelledOrders int64
	Cancellations   []ReasonCount
}

// ReasonCount is how many orders were cancelled for one reason.
type ReasonCount struct {
	Reason string
	Orders int64
}

// SummaryRow is one SKU or category of the summary.
type SummaryRow struct {
	Key          string
	Category     string
	Currency     string
	Orders       int64
	Units        int64
	RevenueMinor int64
}

// Reason is how a cancel reason is explained to the buyer.
type Reason struct {
	Headline    string
	Explanation string
}

// CancelReason explains a cancel reason in words a buyer understands; an unknown reason gets a
// general explanation.
func CancelReason(code string) Reason {
	switch code {
	case "payment_declined":
		return Reason{"Your payment was declined",
			"Your bank or payment provider declined the payment, so we could not complete the order. You are welcome to order again with another card or payment method."}
	case "out_of_stock":
		return Reason{"An item sold out",
			"One or more items sold out before we could set them aside for you."}
	case "expired":
		return Reason{"The payment was not confirmed in time",
			"We did not receive confirmation of your payment in time, so the items reserved for you were released."}
	case "invalid":
		return Reason{"We could not process the order",
			"Some details of the order could not be verified. Please place the order again, or contact our customer service if this happens again."}
	case "duplicate":
		return Reason{"You had already placed this order",
			"This order repeated one you had placed before with the same request, so we kept the first one and cancelled this copy."}
	}
	return Reason{"We could not complete the order", "Please contact our customer service if you have questions."}
}

// Shop is what the e-mails say about the sender.
type Shop struct {
	Name         string // the shop's name, in greetings and signatures
	From         string // sender address, e.g. "Auto Parts <orders@shop.example>"
	OrderBaseURL string // the link to an order is this followed by the order id
}

// Renderer renders e-mails from the embedded templates. It is safe for concurrent use.
type Renderer struct {
	shop Shop
	text map[string]*texttemplate.Template
	html map[string]*htmltemplate.Template
}

var funcs = map[string]any{
	"money": Money,
	"date":  func(t time.Time) string { return t.UTC().Format("2 January 2006, 15:04 UTC") },
	"short": func(id string) string {
		s := strings.ToUpper(strings.ReplaceAll(id, "-", ""))
		return s[:min(8, len(s))]
	},
}

// NewRenderer parses every template pair and checks the shop settings.
func NewRenderer(shop Shop) (*Renderer, error) {
	if _, err := mail.ParseAddress(shop.From); err != nil {
		return nil, fmt.Errorf("sender address %q: %w", shop.From, err)
	}
	r := &Renderer{shop: shop, text: map[string]*texttemplate.Template{}, html: map[string]*htmltemplate.Template{}}
	for _, kind := range []string{KindOrderConfirmed, KindOrderCancelled, KindOrderShipped, KindDailySummary} {
		t, err := texttemplate.New(kind).Funcs(funcs).ParseFS(templateFiles, "templates/_order.txt", "templates/"+kind+".txt")
		if err != nil {
			return nil, fmt.Errorf("parse %s text template: %w", kind, err)
		}
		h, err := htmltemplate.New(kind).Funcs(funcs).ParseFS(templateFiles, "templates/_layout.html", "templates/"+kind+".html")
		if err != nil {
			return nil, fmt.Errorf("parse %s html template: %w", kind, err)
		}
		r.text[kind], r.html[kind] = t, h
	}
	return r, nil
}

type view struct {
	Shop    string
	Link    string
	Order   Order
	Reason  Reason
	Summary Summary
}

// Order renders the e-mail of kind (KindOrderConfirmed, KindOrderCancelled or KindOrderShipped)
// about o, dated now, with its deterministic Message-ID.
func (r *Renderer) Order(kind string, o Order, now time.Time) (Message, error) {
	if kind != KindOrderConfirmed && kind != KindOrderCancelled && kind != KindOrderShipped {
		return Message{}, fmt.Errorf("render order e-mail: unknown kind %q", kind)
	}
	v := view{Shop: r.shop.Name, Link: r.shop.OrderBaseURL + o.ID, Order: o, Reason: CancelReason(o.Reason)}
	m, err := r.render(kind, v)
	if err != nil {
		return Message{}, fmt.Errorf("render %s of order %s: %w", kind, o.ID, err)
	}
	m.To = o.Email
	if o.Name != "" && !strings.ContainsAny(o.Name, "\r\n") {
		m.To = (&mail.Address{Name: o.Name, Address: o.Email}).String()
	}
	m.MessageID = MessageID(kind, o.ID, r.shop.From)
	m.Date = now
	m.Headers = map[string]string{"X-Orderpipe-Kind": kind, "X-Orderpipe-Order": o.ID}
	return m, nil
}

// MessageID is the Message-ID of the e-mail of kind about subject from this shop.
func (r *Renderer) MessageID(kind, subject string) string {
	return MessageID(kind, subject, r.shop.From)
}

// DailySummary renders the daily sales summary for ops, addressed to to.
func (r *Renderer) DailySummary(to string, s Summary, now time.Time) (Message, error) {
	m, err := r.render(KindDailySummary, view{Shop: r.shop.Name, Summary: s})
	if err != nil {
		return Message{}, fmt.Errorf("render daily summary %s: %w", s.Day, err)
	}
	m.To, m.MessageID, m.Date = to, MessageID(KindDailySummary, s.Day, r.shop.From), now
	m.Headers = map[string]string{"X-Orderpipe-Kind": KindDailySummary}
	return m, nil
}

func (r *Renderer) render(kind string, v view) (Message, error) {
	var subject, text, html bytes.Buffer
	t := r.text[kind]
	if err := t.ExecuteTemplate(&subject, "subject", v); err != nil {
		return Message{}, err
	}
	if err := t.ExecuteTemplate(&text, "body", v); err != nil {
		return Message{}, err
	}
	if err := r.html[kind].ExecuteTemplate(&html, "layout", v); err != nil {
		return Message{}, err
	}
	return Message{
		From:    r.shop.From,
		Subject: strings.Join(strings.Fields(subject.String()), " "),
		Text:    text.String(),
		HTML:    html.String(),
	}, nil
}

// Package promotion owns the rules of flash-sale promotions: what a promotion is and when it is
// valid, the promotional price of a SKU, and the price timeline published for every affected
// SKU (Entry), from which the api picks the price in effect at an order's acceptance time.
//
// The boundary rule, to the millisecond: a promotion applies to an order accepted at instant t
// (the api's acceptance time, truncated to the millisecond, the order's placed_at) when
// starts_at <= t < ends_at. Start inclusive, end exclusive. A promotion ended early applies while
// t < ended_at as well.
package promotion

import (
	"cmp"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/orderpipe/orderpipe/internal/order"
)

// Kind is how a promotion prices.
type Kind string

// Kinds.
const (
	KindPercent Kind = "percent" // PercentOff percent off the base price
	KindFixed   Kind = "fixed"   // FixedPriceMinor per unit
)

// OverCap says what happens to units beyond the stock cap or a customer's allowance.
type OverCap string

// Over-cap rules.
const (
	OverCapBase   OverCap = "base"   // the units are sold at the base price
	OverCapRefuse OverCap = "refuse" // the order is refused (409 promotion-limit)
)

// Promotion is one promotion. Times are UTC instants; TimeZone is only for showing them.
type Promotion struct {
	ID               string
	Name             string
	Kind             Kind
	PercentOff       int   // KindPercent: 1..99
	FixedPriceMinor  int64 // KindFixed: > 0
	SKUs             []string
	Category         string // instead of SKUs: every SKU of this category
	StartsAt         time.Time
	EndsAt           time.Time
	TimeZone         string // IANA name, "UTC" by default
	StockCap         int64  // promotional units per SKU; 0: no cap
	OverCap          OverCap
	PerCustomerLimit int64 // promotional units per customer and SKU; 0: no limit
	EndedAt          *time.Time
	CreatedAt        time.Time
	UpdatedAt        time.Time
}

var (
	skuPattern = regexp.MustCompile(`^[A-Z0-9][A-Z0-9-]{2,39}$`)
	idPattern  = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,63}$`)
)

// Limits of a promotion's fields; schemas/openapi.yaml (PromotionInput) states them, and a test
// compares.
const (
	// MaxSKUs is the most SKUs one promotion may list.
	MaxSKUs = 500
	// NameMax and CategoryMax are lengths in characters.
	NameMax     = 200
	CategoryMax = 64
	// PercentOffMin and PercentOffMax bound a percent promotion's discount.
	PercentOffMin = 1
	PercentOffMax = 99
)

// MinWindow is the shortest promotion: a window must be at least this long. Instants are stored
// at microseconds and prices are published at milliseconds, so a window of nanoseconds would
// become empty (ends_at = starts_at) on the way; a second is the shortest window any part keeps
// intact (flash-sale tests use windows of two seconds).
const MinWindow = time.Second

// ValidID reports whether id is a usable promotion id (lower-case letters, digits and dashes;
// it becomes part of Redis keys and is echoed in events).
func ValidID(id string) bool { return idPattern.MatchString(id) }

// Validate lists every problem of p, with JSON field names.
func (p Promotion) Validate() error {
	var probs []order.FieldError
	add := func(f, format string, args ...any) {
		probs = append(probs, order.FieldError{Field: f, Detail: fmt.Sprintf(format, args...)})
	}
	if !ValidID(p.ID) {
		add("id", "must be 1-64 lower-case letters, digits or dashes, starting with a letter or digit")
	}
	if n := len(strings.TrimSpace(p.Name)); n == 0 || utf8.RuneCountInString(p.Name) > NameMax {
		add("name", "is required, at most %d characters", NameMax)
	}
	switch p.Kind {
	case KindPercent:
		if p.PercentOff < PercentOffMin || p.PercentOff > PercentOffMax {
			add("percent_off", "must be an integer from %d to %d for kind percent", PercentOffMin, PercentOffMax)
		}
		if p.FixedPriceMinor != 0 {
			add("fixed_price_minor", "must be absent for kind percent")
		}
	case KindFixed:
		if p.FixedPriceMinor < 1 || p.FixedPriceMinor > order.MaxUnitPriceMinor {
			add("fixed_price_minor", "must be an amount in minor units from 1 to %d for kind fixed", order.MaxUnitPriceMinor)
		}
		if p.PercentOff != 0 {
			add("percent_off", "must be absent for kind fixed")
		}
	default:
		add("kind", "must be percent or fixed")
	}
	switch {
	case len(p.SKUs) == 0 && p.Category == "":
		add("skus", "name the SKUs, or a category instead")
	case len(p.SKUs) > 0 && p.Category != "":
		add("category", "give SKUs or a category, not both")
	case len(p.SKUs) > MaxSKUs:
		add("skus", "at most %d SKUs", MaxSKUs)
	}
	seen := map[string]bool{}
	for i, s := range p.SKUs {
		if !skuPattern.MatchString(s) {
			add(fmt.Sprintf("skus[%d]", i), "must be an upper-case SKU such as BRK-PAD-1042")
		}
		if seen[s] {
			add(fmt.Sprintf("skus[%d]", i), "%s is listed twice", s)
		}
		seen[s] = true
	}
	if utf8.RuneCountInString(p.Category) > CategoryMax {
		add("category", "at most %d characters", CategoryMax)
	}
	if p.StartsAt.IsZero() {
		add("starts_at", "is required (RFC 3339 with a zone offset)")
	}
	if p.EndsAt.IsZero() {
		add("ends_at", "is required (RFC 3339 with a zone offset)")
	}
	if !p.StartsAt.IsZero() && !p.EndsAt.IsZero() && p.EndsAt.Sub(p.StartsAt) < MinWindow {
		add("ends_at", "must be at least 1 second after starts_at (the shortest promotion window)")
	}
	if _, err := time.LoadLocation(p.TimeZone); err != nil || p.TimeZone == "" {
		add("time_zone", "must be an IANA time zone such as Europe/Berlin or UTC")
	}
	if p.StockCap < 0 {
		add("stock_cap", "must be positive, or absent for no cap")
	}
	if p.PerCustomerLimit < 0 {
		add("per_customer_limit", "must be positive, or absent for no limit")
	}
	if p.OverCap != OverCapBase && p.OverCap != OverCapRefuse {
		add("over_cap", "must be base or refuse")
	}
	if len(probs) > 0 {
		return &order.InvalidError{Problems: probs}
	}
	return nil
}

// End is the instant the promotion stops applying: EndsAt, or EndedAt when it was ended earlier.
func (p Promotion) End() time.Time {
	if p.EndedAt != nil && p.EndedAt.Before(p.EndsAt) {
		return *p.EndedAt
	}
	return p.EndsAt
}

// Start is the instant the promotion starts applying.
func (p Promotion) Start() time.Time { return p.StartsAt }

// Status is scheduled, active or ended at now.
func (p Promotion) Status(now time.Time) string {
	switch {
	case !now.Before(p.End()):
		return "ended"
	case now.Before(p.StartsAt):
		return "scheduled"
	default:
		return "active"
	}
}

// AppliesTo reports whether the promotion covers a product of sku and category.
func (p Promotion) AppliesTo(sku, category string) bool {
	if p.Category != "" {
		return p.Category == category
	}
	return slices.Contains(p.SKUs, sku)
}

// PriceFor is the promotional unit price for a base price: percent off rounded to the nearest
// minor unit (halves up), or the fixed price. A promotion never raises a price and never makes
// it free: the result is at least 1 and at most base.
func (p Promotion) PriceFor(base int64) int64 {
	var price int64
	switch p.Kind {
	case KindPercent:
		price = (base*int64(100-p.PercentOff) + 50) / 100
	case KindFixed:
		price = p.FixedPriceMinor
	default:
		return base
	}
	return max(1, min(price, base))
}

// Window is one stretch of time in which one promotion prices a SKU: StartMs <= t < EndMs (unix
// milliseconds). It carries what the reservation needs to enforce the promotion's limits.
type Window struct {
	PromotionID string  `json:"id"`
	PriceMinor  int64   `json:"price"`
	StartMs     int64   `json:"start"`
	EndMs       int64   `json:"end"`
	StockCap    int64   `json:"cap,omitempty"`
	Limit       int64   `json:"limit,omitempty"`
	OverCap     OverCap `json:"over"`
}

// Ends returns the window's end as a time.
func (w Window) Ends() time.Time { return time.UnixMilli(w.EndMs).UTC() }

// Entry is the published price timeline of one SKU: its base price and the promotion windows
// from now on, sorted and not overlapping. Pricing an order is At(acceptance time).
type Entry struct {
	SKU       string   `json:"sku"`
	BaseMinor int64    `json:"base"`
	Windows   []Window `json:"windows,omitempty"`
}

// At returns the window in effect at t (start inclusive, end exclusive, milliseconds).
func (e Entry) At(t time.Time) (Window, bool) {
	ms := t.UnixMilli()
	for _, w := range e.Windows {
		if ms < w.StartMs {
			return Window{}, false
		}
		if ms < w.EndMs {
			return w, true
		}
	}
	return Window{}, false
}

// NextBoundary returns the first window start or end after t; false when there is none.
func (e Entry) NextBoundary(t time.Time) (time.Time, bool) {
	ms := t.UnixMilli()
	for _, w := range e.Windows {
		if w.StartMs > ms {
			return time.UnixMilli(w.StartMs).UTC(), true
		}
		if w.EndMs > ms {
			return time.UnixMilli(w.EndMs).UTC(), true
		}
	}
	return time.Time{}, false
}

// Stale reports whether a window of the entry has ended by now: the entry should be recomputed
// (published again without it). Pricing stays exact meanwhile, since At looks at the time.
func (e Entry) Stale(now time.Time) bool {
	return len(e.Windows) > 0 && e.Windows[0].EndMs <= now.UnixMilli()
}

// Build computes the timeline of one SKU from the promotions that apply to it, dropping what
// ended before now. Where promotions overlap, the lowest price wins; on a tie, the promotion that
// started first, then the smaller id. Promotions that do not apply to the SKU are ignored.
func Build(sku, category string, base int64, promos []Promotion, now time.Time) Entry {
	e := Entry{SKU: sku, BaseMinor: base}
	nowMs := now.UnixMilli()
	var live []Promotion
	cuts := []int64{}
	for _, p := range promos {
		if !p.AppliesTo(sku, category) {
			continue
		}
		s, en := p.StartsAt.UnixMilli(), p.End().UnixMilli()
		if en <= nowMs || en <= s {
			continue
		}
		live = append(live, p)
		cuts = append(cuts, s, en)
	}
	if len(live) == 0 {
		return e
	}
	slices.Sort(cuts)
	cuts = slices.Compact(cuts)
	for i := 0; i+1 < len(cuts); i++ {
		from, to := cuts[i], cuts[i+1]
		if to <= nowMs {
			continue
		}
		var best *Promotion
		for j := range live {
			p := &live[j]
			if p.StartsAt.UnixMilli() > from || p.End().UnixMilli() < to {
				continue
			}
			if best == nil || better(*p, *best, base) {
				best = p
			}
		}
		if best == nil {
			continue
		}
		w := Window{
			PromotionID: best.ID, PriceMinor: best.PriceFor(base), StartMs: from, EndMs: to,
			StockCap: best.StockCap, Limit: best.PerCustomerLimit, OverCap: best.OverCap,
		}
		if n := len(e.Windows); n > 0 && e.Windows[n-1].PromotionID == w.PromotionID && e.Windows[n-1].EndMs == w.StartMs {
			e.Windows[n-1].EndMs = w.EndMs
			continue
		}
		e.Windows = append(e.Windows, w)
	}
	return e
}

func better(a, b Promotion, base int64) bool {
	if c := cmp.Compare(a.PriceFor(base), b.PriceFor(base)); c != 0 {
		return c < 0
	}
	if !a.StartsAt.Equal(b.StartsAt) {
		return a.StartsAt.Before(b.StartsAt)
	}
	return a.ID < b.ID
}

package loadgen

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/orderpipe/orderpipe/internal/demo"
	"github.com/orderpipe/orderpipe/internal/postgres"
)

// Product is one SKU of the scenario's catalog with its starting stock.
type Product struct {
	postgres.Product
	Stock int64
	Hot   bool
}

// Products is the scenario's catalog: the hot SKUs first, then the background SKUs in
// popularity order (the first is the most bought). Demo SKUs keep their demo name and price.
func (s *Scenario) Products() []Product {
	demoBySKU := map[string]demo.Product{}
	var demoOrder []string
	for _, p := range demo.Catalog() {
		demoBySKU[p.SKU] = p
		demoOrder = append(demoOrder, p.SKU)
	}
	product := func(sku string, i int, hot bool, stock int64) Product {
		p := postgres.Product{SKU: sku, Currency: demo.Currency, Active: true}
		if d, ok := demoBySKU[sku]; ok {
			p.Name, p.Category, p.Brand, p.PriceMinor = d.Name, d.Category, d.Brand, d.PriceMinor
		} else {
			p.Name = fmt.Sprintf("Load-test part %s", sku)
			p.Category, p.Brand = "load-test", "Loadgen"
			p.PriceMinor = 990 + int64(i%97)*100
		}
		return Product{Product: p, Stock: stock, Hot: hot}
	}
	var out []Product
	hot := map[string]bool{}
	for i, h := range s.Catalog.Hot {
		out = append(out, product(h.SKU, i, true, h.Stock))
		hot[h.SKU] = true
	}
	bg := s.Catalog.Background
	if bg.FromDemo {
		n := 0
		for _, sku := range demoOrder {
			if n == bg.Count {
				break
			}
			if !hot[sku] {
				out = append(out, product(sku, n, false, bg.Stock))
				n++
			}
		}
		return out
	}
	for i := range bg.Count {
		out = append(out, product(fmt.Sprintf("LG-BG-%04d", i+1), i, false, bg.Stock))
	}
	return out
}

// Stock is the starting stock (units available at the start) of every SKU of the scenario.
func (s *Scenario) Stock() map[string]int64 {
	out := map[string]int64{}
	for _, p := range s.Products() {
		out[p.SKU] = p.Stock
	}
	return out
}

// Line is one order line.
type Line struct {
	SKU string `json:"sku"`
	Qty int    `json:"qty"`
}

// Buyer is one intended order, derived deterministically from the scenario's seed and the
// buyer's number, whatever the timing of the run.
type Buyer struct {
	N          int
	CustomerID string
	Email      string
	Key        string // Idempotency-Key
	Express    bool
	Lines      []Line
	Token      string
	Duplicate  bool          // submits a second time with the same key
	DupDelay   time.Duration // after the first submission was sent; 0 is concurrent
	Body       []byte
}

// planner derives buyers.
type planner struct {
	s     *Scenario
	runID string
	hot   []string
	bg    []string
}

func newPlanner(s *Scenario, runID string) *planner {
	p := &planner{s: s, runID: runID}
	for _, pr := range s.Products() {
		if pr.Hot {
			p.hot = append(p.hot, pr.SKU)
		} else {
			p.bg = append(p.bg, pr.SKU)
		}
	}
	return p
}

// buyer returns buyer n.
func (p *planner) buyer(n int) Buyer {
	s := p.s
	rng := rand.New(rand.NewPCG(uint64(s.Seed), uint64(n)))
	id := p.runID + "-" + strconv.Itoa(n)
	b := Buyer{N: n, CustomerID: "lg-" + id, Email: "buyer-" + strconv.Itoa(n) + "@load.example", Key: "lg-" + id}
	b.Express = rng.Float64() < s.Mix.ExpressShare
	lines := 1 + rng.IntN(s.Mix.MaxLines)
	used := map[string]bool{}
	if len(p.hot) > 0 && rng.Float64() < s.Mix.HotShare {
		sku := p.hot[rng.IntN(len(p.hot))]
		used[sku] = true
		b.Lines = append(b.Lines, Line{SKU: sku, Qty: 1 + rng.IntN(s.Mix.HotMaxQty)})
		lines--
	}
	if len(p.bg) > 0 {
		z := rand.NewZipf(rng, s.Mix.ZipfS, 1, uint64(len(p.bg)-1))
		for tries := 0; lines > 0 && tries < 8*s.Mix.MaxLines; tries++ {
			sku := p.bg[z.Uint64()]
			if used[sku] {
				continue
			}
			used[sku] = true
			b.Lines = append(b.Lines, Line{SKU: sku, Qty: 1 + rng.IntN(s.Mix.MaxQty)})
			lines--
		}
	}
	switch u := rng.Float64(); {
	case u < s.Payment.Decline:
		b.Token = "tok_decline_" + id
	case u < s.Payment.Decline+s.Payment.Slow:
		b.Token = "tok_slow_" + id
	case u < s.Payment.Decline+s.Payment.Slow+s.Payment.Hang:
		b.Token = "tok_hang_" + id
	default:
		b.Token = "tok_visa_" + id
	}
	if rng.Float64() < s.Duplicates {
		b.Duplicate = true
		if rng.IntN(2) == 1 {
			b.DupDelay = 50*time.Millisecond + time.Duration(rng.Int64N(int64(1950*time.Millisecond)))
		}
	}
	b.Body = orderBody(b)
	return b
}

// orderBody is the POST /v1/orders body of b (schemas/openapi.yaml, PlaceOrderRequest).
func orderBody(b Buyer) []byte {
	type line struct {
		SKU      string `json:"sku"`
		Quantity int    `json:"quantity"`
	}
	ls := make([]line, len(b.Lines))
	for i, l := range b.Lines {
		ls[i] = line{SKU: l.SKU, Quantity: l.Qty}
	}
	prio := "standard"
	if b.Express {
		prio = "express"
	}
	body, err := json.Marshal(map[string]any{
		"customer_id": b.CustomerID, "email": b.Email, "priority": prio, "lines": ls,
		"payment":          map[string]string{"method": "card", "token": b.Token},
		"shipping_address": map[string]string{"name": "Load Buyer " + strconv.Itoa(b.N), "line1": "Hauptstr. 1", "city": "Berlin", "postal_code": "10115", "country": "DE"},
	})
	if err != nil {
		panic("loadgen: encode order body: " + err.Error()) // only plain strings and ints: cannot fail
	}
	return body
}

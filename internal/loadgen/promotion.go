package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/orderpipe/orderpipe/internal/promotion"
)

// Promotion is one promotion of a scenario (docs/promotions.md), created through the api's
// POST /v1/promotions before the load. Its window is relative to that moment: Starts 0s means
// it prices the first order of the run. Hot covers the scenario's hot SKUs; SKUs lists others
// (both must be SKUs of the scenario's catalog).
type Promotion struct {
	ID               string   `yaml:"id"`
	Name             string   `yaml:"name"` // default: the id
	Kind             string   `yaml:"kind"` // percent or fixed
	PercentOff       int      `yaml:"percent_off"`
	FixedPriceMinor  int64    `yaml:"fixed_price_minor"`
	SKUs             []string `yaml:"skus"`
	Hot              bool     `yaml:"hot"`
	StockCap         int64    `yaml:"stock_cap"`          // promotional units per SKU; 0: no cap
	PerCustomerLimit int64    `yaml:"per_customer_limit"` // promotional units per customer and SKU; 0: none
	OverCap          string   `yaml:"over_cap"`           // base (default) or refuse
	Starts           Duration `yaml:"starts"`
	Ends             Duration `yaml:"ends"`
}

// PromotionSKUs is the SKUs promotion p covers in s: the hot SKUs with Hot, then SKUs.
func (s *Scenario) PromotionSKUs(p Promotion) []string {
	var out []string
	if p.Hot {
		for _, h := range s.Catalog.Hot {
			out = append(out, h.SKU)
		}
	}
	for _, sku := range p.SKUs {
		if !slices.Contains(out, sku) {
			out = append(out, sku)
		}
	}
	return out
}

// PromotionIDs lists the ids of the scenario's promotions, in file order.
func (s *Scenario) PromotionIDs() []string {
	var out []string
	for _, p := range s.Promotions {
		out = append(out, p.ID)
	}
	return out
}

func (s *Scenario) validatePromotions(bad func(field, format string, args ...any)) {
	inCatalog := map[string]bool{}
	for _, p := range s.Products() {
		inCatalog[p.SKU] = true
	}
	ids := map[string]int{}
	pricedBy := map[string]int{} // SKU -> index of the promotion pricing it
	length := s.Length()
	for i, p := range s.Promotions {
		f := fmt.Sprintf("promotions[%d]", i)
		switch j, dup := ids[p.ID]; {
		case !promotion.ValidID(p.ID):
			bad(f+".id", "want 1-64 lower-case letters, digits or dashes, got %q", p.ID)
		case dup:
			bad(f+".id", "%s is also the id of promotions[%d]", p.ID, j)
		}
		ids[p.ID] = i
		if n := len(strings.TrimSpace(p.Name)); n == 0 || len(p.Name) > 200 {
			bad(f+".name", "want 1-200 characters, got %q", p.Name)
		}
		switch promotion.Kind(p.Kind) {
		case promotion.KindPercent:
			if p.PercentOff < 1 || p.PercentOff > 99 {
				bad(f+".percent_off", "want 1..99 for kind percent, got %d", p.PercentOff)
			}
			if p.FixedPriceMinor != 0 {
				bad(f+".fixed_price_minor", "not used by kind percent")
			}
		case promotion.KindFixed:
			if p.FixedPriceMinor < 1 {
				bad(f+".fixed_price_minor", "want a positive price in minor units for kind fixed, got %d", p.FixedPriceMinor)
			}
			if p.PercentOff != 0 {
				bad(f+".percent_off", "not used by kind fixed")
			}
		default:
			bad(f+".kind", "want percent or fixed, got %q", p.Kind)
		}
		if !p.Hot && len(p.SKUs) == 0 {
			bad(f+".skus", "want at least one SKU, or hot: true")
		}
		if p.Hot && len(s.Catalog.Hot) == 0 {
			bad(f+".hot", "is true but catalog.hot is empty")
		}
		for j, sku := range p.SKUs {
			switch {
			case !inCatalog[sku]:
				bad(fmt.Sprintf("%s.skus[%d]", f, j), "%q is not a SKU of the scenario's catalog", sku)
			case slices.Index(p.SKUs, sku) != j:
				bad(fmt.Sprintf("%s.skus[%d]", f, j), "%s is listed twice", sku)
			}
		}
		for _, sku := range s.PromotionSKUs(p) {
			if j, ok := pricedBy[sku]; ok && j != i {
				bad(f+".skus", "%s is also priced by promotions[%d]; give each SKU at most one promotion", sku, j)
			}
			pricedBy[sku] = i
		}
		if p.StockCap < 0 {
			bad(f+".stock_cap", "want > 0, or 0/absent for no cap, got %d", p.StockCap)
		}
		if p.PerCustomerLimit < 0 {
			bad(f+".per_customer_limit", "want > 0, or 0/absent for no limit, got %d", p.PerCustomerLimit)
		}
		if p.OverCap != string(promotion.OverCapBase) && p.OverCap != string(promotion.OverCapRefuse) {
			bad(f+".over_cap", "want base or refuse, got %q", p.OverCap)
		}
		if p.Starts.Duration < 0 || p.Starts.Duration >= length {
			bad(f+".starts", "want a time within the load (0s..%s, excluded), so the promotion is active during it, got %s", length, p.Starts.Duration)
		}
		if p.Ends.Duration <= p.Starts.Duration {
			bad(f+".ends", "want a time after starts (%s), got %s", p.Starts.Duration, p.Ends.Duration)
		}
	}
}

// promotionBody is the POST /v1/promotions (or PATCH) body of p with its window from now.
func (s *Scenario) promotionBody(p Promotion, now time.Time, withID bool) []byte {
	m := map[string]any{
		"name": p.Name, "kind": p.Kind, "skus": s.PromotionSKUs(p), "time_zone": "UTC",
		"starts_at":          now.Add(p.Starts.Duration).UTC().Truncate(time.Millisecond).Format(time.RFC3339Nano),
		"ends_at":            now.Add(p.Ends.Duration).UTC().Truncate(time.Millisecond).Format(time.RFC3339Nano),
		"stock_cap":          p.StockCap,
		"over_cap":           p.OverCap,
		"per_customer_limit": p.PerCustomerLimit,
	}
	if withID {
		m["id"] = p.ID
	}
	if p.Kind == string(promotion.KindFixed) {
		m["fixed_price_minor"] = p.FixedPriceMinor
	} else {
		m["percent_off"] = p.PercentOff
	}
	b, err := json.Marshal(m)
	if err != nil {
		panic("loadgen: encode promotion body: " + err.Error()) // strings and ints only: cannot fail
	}
	return b
}

// SetUpPromotions creates the scenario's promotions through the api at baseURL with token, an
// API key with catalog:write, their windows starting from now, and waits until the api prices
// orders with them: a catalog read of each SKU of a promotion that starts at 0s names it
// (GET /v1/products/{sku}, promotion_id).
//
// A promotion whose id exists already (a re-run against the same stack) is updated with PATCH
// to the scenario's definition and new window instead; its Redis counters and its sales in
// Postgres carry over (the cap counts every unit sold under the id, which is what the checker
// checks), so it may price nothing when an earlier run used up its cap, and a promotion ended
// with DELETE stays ended. For such a promotion the wait is shortened and only noted on
// progress when the catalog does not show it. A new promotion that the api does not price
// within is an error.
func SetUpPromotions(ctx context.Context, baseURL, token string, s *Scenario, within time.Duration, progress io.Writer) error {
	if len(s.Promotions) == 0 {
		return nil
	}
	if progress == nil {
		progress = io.Discard
	}
	client := &http.Client{Timeout: 10 * time.Second}
	base := strings.TrimRight(baseURL, "/")
	now := time.Now()
	existed := map[string]bool{}
	for _, p := range s.Promotions {
		created, err := upsertPromotion(ctx, client, base, token, s, p, now, within)
		if err != nil {
			return err
		}
		existed[p.ID] = !created
		verb := "created"
		if !created {
			verb = "existed; updated"
		}
		fmt.Fprintf(progress, "promotion %s %s: %s on %s from +%s to +%s\n", p.ID, verb, promoTerms(p), strings.Join(s.PromotionSKUs(p), ", "), p.Starts, p.Ends)
	}
	for _, p := range s.Promotions {
		if p.Starts.Duration > 0 {
			continue // not visible before it starts; its timeline was published before the answer
		}
		wait := within
		if existed[p.ID] {
			wait = min(within, 10*time.Second)
		}
		for _, sku := range s.PromotionSKUs(p) {
			err := waitPriced(ctx, client, base, sku, p.ID, wait)
			if err != nil && existed[p.ID] {
				fmt.Fprintf(progress, "promotion %s (kept from an earlier run): %v; its cap may be used up or it was ended\n", p.ID, err)
				break
			}
			if err != nil {
				return fmt.Errorf("wait for promotion %s: %w", p.ID, err)
			}
		}
	}
	return nil
}

// upsertPromotion creates p, or updates it when its id exists (created false). A 401 (a key
// created just before is known to the api after its next key refresh) and a 503 (saved but not
// published yet: the next attempt finds it and updates it) are retried until within.
func upsertPromotion(ctx context.Context, client *http.Client, base, token string, s *Scenario, p Promotion, now time.Time, within time.Duration) (created bool, err error) {
	deadline := time.Now().Add(within)
	saved := false // a 503 to the POST: created by this run, not published yet
	for {
		status, body, err := send(ctx, client, http.MethodPost, base+"/v1/promotions", token, s.promotionBody(p, now, true))
		created = status == http.StatusCreated || saved
		saved = saved || status == http.StatusServiceUnavailable
		if err == nil && status == http.StatusConflict {
			status, body, err = send(ctx, client, http.MethodPatch, base+"/v1/promotions/"+p.ID, token, s.promotionBody(p, now, false))
		}
		switch {
		case err == nil && (status == http.StatusCreated || status == http.StatusOK):
			return created, nil
		case err == nil && status != http.StatusUnauthorized && status != http.StatusServiceUnavailable:
			return false, fmt.Errorf("create promotion %s: the api answered %d: %s", p.ID, status, bytes.TrimSpace(body))
		case time.Now().After(deadline):
			if err == nil {
				err = fmt.Errorf("the api answered %d: %s", status, bytes.TrimSpace(body))
			}
			return false, fmt.Errorf("create promotion %s after %s: %w", p.ID, within, err)
		}
		select {
		case <-ctx.Done():
			return false, fmt.Errorf("create promotion %s: %w", p.ID, ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func promoTerms(p Promotion) string {
	terms := fmt.Sprintf("%d%% off", p.PercentOff)
	if p.Kind == string(promotion.KindFixed) {
		terms = fmt.Sprintf("fixed %d", p.FixedPriceMinor)
	}
	if p.StockCap > 0 {
		terms += fmt.Sprintf(", cap %d per SKU", p.StockCap)
	}
	if p.PerCustomerLimit > 0 {
		terms += fmt.Sprintf(", %d per customer", p.PerCustomerLimit)
	}
	return terms + ", over cap " + p.OverCap
}

// waitPriced waits until a catalog read of sku names promotion id.
func waitPriced(ctx context.Context, client *http.Client, base, sku, id string, within time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	var seen string
	for {
		status, body, err := send(ctx, client, http.MethodGet, base+"/v1/products/"+sku, "", nil)
		if err == nil && status == http.StatusOK {
			var v struct {
				PromotionID string `json:"promotion_id"`
			}
			if json.Unmarshal(body, &v) == nil {
				if v.PromotionID == id {
					return nil
				}
				seen = v.PromotionID
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the api at %s does not price %s with it after %s (catalog promotion_id %q)", base, sku, within, seen)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func send(ctx context.Context, client *http.Client, method, url, token string, body []byte) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, b, err
}

package httpapi

import (
	"context"
	"encoding/base64"
	"encoding/csv"
	"encoding/json"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
)

// Report dimensions of GET /v1/reports/sales.
var salesDims = []string{"hour", "sku", "category"}

// Reasons of the cancellations object, in column order of the CSV.
var salesReasons = []string{"payment_declined", "out_of_stock", "expired", "invalid"}

// SalesQuery asks for one page of the sales report: hours in [From, To) grouped by GroupBy, in
// (key, currency) order after (AfterKey, AfterCurrency), at most Limit rows.
type SalesQuery struct {
	GroupBy       string
	From, To      time.Time
	AfterKey      string
	AfterCurrency string
	Limit         int
}

// SalesRow is one group of the sales report.
type SalesRow struct {
	Key             string           `json:"key"`
	Currency        string           `json:"currency"`
	Category        string           `json:"category,omitempty"`
	Orders          int64            `json:"orders"`
	Units           int64            `json:"units"`
	RevenueMinor    int64            `json:"revenue_minor"`
	CancelledOrders int64            `json:"cancelled_orders"`
	CancelledUnits  int64            `json:"cancelled_units"`
	Cancellations   map[string]int64 `json:"cancellations"`
}

type salesPage struct {
	GroupBy    string     `json:"group_by"`
	From       time.Time  `json:"from"`
	To         time.Time  `json:"to"`
	Items      []SalesRow `json:"items"`
	NextCursor string     `json:"next_cursor,omitempty"`
}

const (
	salesDefaultLimit = 100
	salesMaxLimit     = 1000
	salesMaxRange     = 366 * 24 * time.Hour
)

// handleSalesReport answers GET /v1/reports/sales: JSON by default, CSV when the client prefers
// text/csv. Pages follow next_cursor (JSON) or the Link rel="next" header (both).
func handleSalesReport(report func(context.Context, SalesQuery) ([]SalesRow, error)) echo.HandlerFunc {
	return func(c echo.Context) error {
		q, err := parseSalesQuery(c.QueryParams(), time.Now())
		if err != nil {
			return err
		}
		limit := q.Limit
		q.Limit++ // one more tells whether there is a next page
		rows, err := report(c.Request().Context(), q)
		if err != nil {
			return unavailable("The sales report cannot be read right now.", 2*time.Second, err)
		}
		page := salesPage{GroupBy: q.GroupBy, From: q.From, To: q.To, Items: rows}
		if len(rows) > limit {
			page.Items = rows[:limit]
			last := page.Items[limit-1]
			page.NextCursor = salesCursor(last.Key, last.Currency)
			next := c.QueryParams()
			next.Set("cursor", page.NextCursor)
			c.Response().Header().Set("Link", "<"+c.Request().URL.Path+"?"+next.Encode()+`>; rel="next"`)
		}
		if page.Items == nil {
			page.Items = []SalesRow{}
		}
		c.Response().Header().Set(echo.HeaderCacheControl, "private, no-store")
		c.Response().Header().Set("Vary", "Accept")
		if prefersCSV(c.Request().Header.Get(echo.HeaderAccept)) {
			return writeSalesCSV(c, page.Items)
		}
		return c.JSON(http.StatusOK, page)
	}
}

func parseSalesQuery(v url.Values, now time.Time) (SalesQuery, error) {
	q := SalesQuery{GroupBy: v.Get("group_by"), Limit: salesDefaultLimit}
	if q.GroupBy == "" {
		q.GroupBy = "hour"
	}
	valid := false
	for _, d := range salesDims {
		valid = valid || d == q.GroupBy
	}
	if !valid {
		return q, badRequest("group_by must be hour, sku or category.")
	}
	q.To = now.UTC()
	if s := v.Get("to"); s != "" {
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			return q, badRequest("to must be an RFC 3339 time such as 2025-11-03T00:00:00Z.")
		}
		q.To = t.UTC()
	}
	q.From = q.To.Add(-24 * time.Hour)
	if s := v.Get("from"); s != "" {
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			return q, badRequest("from must be an RFC 3339 time such as 2025-11-02T00:00:00Z.")
		}
		q.From = t.UTC()
	}
	if !q.From.Before(q.To) {
		return q, badRequest("from must be before to.")
	}
	if q.To.Sub(q.From) > salesMaxRange {
		return q, badRequest("The range from..to may span at most 366 days.")
	}
	if s := v.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > salesMaxLimit {
			return q, badRequest("limit must be an integer from 1 to 1000.")
		}
		q.Limit = n
	}
	if s := v.Get("cursor"); s != "" {
		key, cur, ok := parseSalesCursor(s)
		if !ok {
			return q, badRequest("cursor is not one this API issued; start again without it.")
		}
		q.AfterKey, q.AfterCurrency = key, cur
	}
	return q, nil
}

// salesCursor encodes the position after (key, currency); it is opaque to clients.
func salesCursor(key, currency string) string {
	b, _ := json.Marshal([2]string{key, currency})
	return base64.RawURLEncoding.EncodeToString(b)
}

func parseSalesCursor(s string) (key, currency string, ok bool) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return "", "", false
	}
	var v [2]string
	if err := json.Unmarshal(b, &v); err != nil || v[0] == "" {
		return "", "", false
	}
	return v[0], v[1], true
}

// prefersCSV reports whether the Accept header ranks text/csv above JSON (q-values honoured; a
// tie, or no Accept header, is JSON).
func prefersCSV(accept string) bool {
	if accept == "" {
		return false
	}
	var csvQ, jsonQ float64
	for part := range strings.SplitSeq(accept, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		qv := 1.0
		if s, ok := params["q"]; ok {
			if f, err := strconv.ParseFloat(s, 64); err == nil {
				qv = f
			}
		}
		switch mt {
		case "text/csv":
			csvQ = max(csvQ, qv)
		case "application/json", "application/*", "*/*":
			jsonQ = max(jsonQ, qv)
		case "text/*":
			csvQ = max(csvQ, qv)
		}
	}
	return csvQ > jsonQ
}

func writeSalesCSV(c echo.Context, rows []SalesRow) error {
	c.Response().Header().Set(echo.HeaderContentType, "text/csv; charset=utf-8")
	c.Response().WriteHeader(http.StatusOK)
	w := csv.NewWriter(c.Response())
	header := []string{"key", "currency", "category", "orders", "units", "revenue_minor", "cancelled_orders", "cancelled_units"}
	for _, r := range salesReasons {
		header = append(header, "cancelled_"+r)
	}
	_ = w.Write(header)
	for _, r := range rows {
		rec := []string{r.Key, r.Currency, r.Category, itoa(r.Orders), itoa(r.Units), itoa(r.RevenueMinor), itoa(r.CancelledOrders), itoa(r.CancelledUnits)}
		for _, reason := range salesReasons {
			rec = append(rec, itoa(r.Cancellations[reason]))
		}
		_ = w.Write(rec)
	}
	w.Flush()
	return w.Error()
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

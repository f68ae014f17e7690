package postgres

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Report dimensions: the dim column of sales_aggregates and the group_by of the sales report.
const (
	DimHour     = "hour"
	DimSKU      = "sku"
	DimCategory = "category"
)

// Uncategorized is the category of a SKU the catalog does not know when its sale is counted.
const Uncategorized = "uncategorized"

// CancelReasons are the cancel reasons the aggregates count separately.
var CancelReasons = []string{"payment_declined", "out_of_stock", "expired", "invalid"}

// HourKey is the key of an hour row: the hour in UTC as 2006-01-02T15:04:05Z, which sorts like
// the time it names.
func HourKey(t time.Time) string { return t.UTC().Truncate(time.Hour).Format(time.RFC3339) }

// SaleLine is one line of an order as the reports count it.
type SaleLine struct {
	SKU            string
	Quantity       int
	LineTotalMinor int64
}

// SaleFact is one order outcome (an OrderConfirmed or OrderCancelled event) to count.
type SaleFact struct {
	EventID   string
	PlacedAt  time.Time // the order counts in the hour it was placed
	Currency  string
	Confirmed bool   // false: cancelled
	Reason    string // cancel reason
	Lines     []SaleLine
}

// SalesQuery selects report rows: hours in [From, To) grouped by GroupBy (DimHour, DimSKU or
// DimCategory), in (key, currency) order after the cursor (AfterKey, AfterCurrency), at most Limit.
type SalesQuery struct {
	GroupBy       string
	From, To      time.Time
	AfterKey      string
	AfterCurrency string
	Limit         int
}

// SalesRow is one group of a sales report.
type SalesRow struct {
	Key             string // the hour (HourKey), SKU or category
	Currency        string
	Category        string // for SKU rows: the category most recently recorded for it
	Orders          int64  // confirmed orders (for SKU and category rows: those containing it)
	Units           int64  // units of confirmed orders
	RevenueMinor    int64  // line totals of confirmed orders, without shipping
	CancelledOrders int64
	CancelledUnits  int64
	Cancellations   map[string]int64 // cancelled orders per reason (every reason of CancelReasons)
}

// ReportStore maintains and reads the sales aggregates.
type ReportStore struct {
	pool *pgxpool.Pool
}

// NewReportStore returns a ReportStore over pool.
func NewReportStore(pool *pgxpool.Pool) *ReportStore { return &ReportStore{pool: pool} }

type aggKey struct {
	dim      string
	hour     time.Time
	key      string
	currency string
}

type aggDelta struct {
	category                                       string
	orders, units, revenue, cancelled, cancelUnits int64
	byReason                                       [4]int64
}

// Apply counts a batch of facts in one transaction: it claims each event id for group in
// processed_events, skips the events claimed before (a redelivery or a replay changes nothing),
// looks up the category of every SKU in the catalog (at write time: a later change of category
// does not move past sales), and adds the new events to their hour, SKU and category rows with
// one upsert, rows locked in key order. It returns how many facts were new.
func (s *ReportStore) Apply(ctx context.Context, group string, facts []SaleFact) (int, error) {
	if len(facts) == 0 {
		return 0, nil
	}
	ids := make([]string, 0, len(facts))
	byID := make(map[string]SaleFact, len(facts))
	for _, f := range facts {
		if _, dup := byID[f.EventID]; dup {
			continue
		}
		byID[f.EventID] = f
		ids = append(ids, f.EventID)
	}
	applied := 0
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `
INSERT INTO processed_events (consumer_group, event_id)
SELECT $1, id FROM unnest($2::uuid[]) AS id ORDER BY id
ON CONFLICT DO NOTHING
RETURNING event_id::text`, group, ids)
		if err != nil {
			return fmt.Errorf("claim events: %w", err)
		}
		fresh, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return fmt.Errorf("claim events: %w", err)
		}
		applied = len(fresh)
		if len(fresh) == 0 {
			return nil
		}
		var skus []string
		for _, id := range fresh {
			for _, l := range byID[id].Lines {
				if !slices.Contains(skus, l.SKU) {
					skus = append(skus, l.SKU)
				}
			}
		}
		categories := make(map[string]string, len(skus))
		rows, err = tx.Query(ctx, `SELECT sku, category FROM products WHERE sku = ANY($1)`, skus)
		if err != nil {
			return fmt.Errorf("categories: %w", err)
		}
		for rows.Next() {
			var sku, cat string
			if err := rows.Scan(&sku, &cat); err != nil {
				rows.Close()
				return fmt.Errorf("categories: %w", err)
			}
			categories[sku] = cat
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("categories: %w", err)
		}
		deltas := map[aggKey]*aggDelta{}
		for _, id := range fresh {
			addFact(deltas, byID[id], categories)
		}
		return upsertAggregates(ctx, tx, deltas)
	})
	if err != nil {
		return 0, fmt.Errorf("apply %d sales events for %s: %w", len(ids), group, err)
	}
	return applied, nil
}

// addFact adds one order's figures to its hour row, to each of its SKUs' rows and to each of its
// categories' rows (an order counts once per SKU and per category, however many lines it has).
func addFact(deltas map[aggKey]*aggDelta, f SaleFact, categories map[string]string) {
	hour := f.PlacedAt.UTC().Truncate(time.Hour)
	type part struct{ units, revenue int64 }
	var total part
	bySKU, byCat := map[string]*part{}, map[string]*part{}
	skuCat := map[string]string{}
	for _, l := range f.Lines {
		cat, ok := categories[l.SKU]
		if !ok {
			cat = Uncategorized
		}
		skuCat[l.SKU] = cat
		if bySKU[l.SKU] == nil {
			bySKU[l.SKU] = &part{}
		}
		if byCat[cat] == nil {
			byCat[cat] = &part{}
		}
		for _, p := range []*part{&total, bySKU[l.SKU], byCat[cat]} {
			p.units += int64(l.Quantity)
			p.revenue += l.LineTotalMinor
		}
	}
	add := func(k aggKey, category string, p part) {
		d := deltas[k]
		if d == nil {
			d = &aggDelta{}
			deltas[k] = d
		}
		d.category = category
		if f.Confirmed {
			d.orders++
			d.units += p.units
			d.revenue += p.revenue
			return
		}
		d.cancelled++
		d.cancelUnits += p.units
		if i := slices.Index(CancelReasons, f.Reason); i >= 0 {
			d.byReason[i]++
		}
	}
	add(aggKey{DimHour, hour, HourKey(hour), f.Currency}, "", total)
	for sku, p := range bySKU {
		add(aggKey{DimSKU, hour, sku, f.Currency}, skuCat[sku], *p)
	}
	for cat, p := range byCat {
		add(aggKey{DimCategory, hour, cat, f.Currency}, "", *p)
	}
}

func upsertAggregates(ctx context.Context, tx pgx.Tx, deltas map[aggKey]*aggDelta) error {
	keys := make([]aggKey, 0, len(deltas))
	for k := range deltas {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b aggKey) int {
		return cmp.Or(cmp.Compare(a.dim, b.dim), a.hour.Compare(b.hour), cmp.Compare(a.key, b.key), cmp.Compare(a.currency, b.currency))
	})
	n := len(keys)
	dims, hkeys, currencies, cats := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	hours := make([]time.Time, n)
	cols := make([][]int64, 9)
	for i := range cols {
		cols[i] = make([]int64, n)
	}
	for i, k := range keys {
		d := deltas[k]
		dims[i], hours[i], hkeys[i], currencies[i], cats[i] = k.dim, k.hour, k.key, k.currency, d.category
		for j, v := range []int64{d.orders, d.units, d.revenue, d.cancelled, d.cancelUnits, d.byReason[0], d.byReason[1], d.byReason[2], d.byReason[3]} {
			cols[j][i] = v
		}
	}
	_, err := tx.Exec(ctx, `
INSERT INTO sales_aggregates AS a (dim, hour, key, currency, category, orders, units, revenue_minor,
    cancelled_orders, cancelled_units, cancelled_payment_declined, cancelled_out_of_stock, cancelled_expired, cancelled_invalid)
SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::bigint[],
    $8::bigint[], $9::bigint[], $10::bigint[], $11::bigint[], $12::bigint[], $13::bigint[], $14::bigint[])
ON CONFLICT (dim, hour, key, currency) DO UPDATE SET
    category = CASE WHEN excluded.category <> '' THEN excluded.category ELSE a.category END,
    orders = a.orders + excluded.orders,
    units = a.units + excluded.units,
    revenue_minor = a.revenue_minor + excluded.revenue_minor,
    cancelled_orders = a.cancelled_orders + excluded.cancelled_orders,
    cancelled_units = a.cancelled_units + excluded.cancelled_units,
    cancelled_payment_declined = a.cancelled_payment_declined + excluded.cancelled_payment_declined,
    cancelled_out_of_stock = a.cancelled_out_of_stock + excluded.cancelled_out_of_stock,
    cancelled_expired = a.cancelled_expired + excluded.cancelled_expired,
    cancelled_invalid = a.cancelled_invalid + excluded.cancelled_invalid,
    updated_at = now()`,
		dims, hours, hkeys, currencies, cats, cols[0], cols[1], cols[2], cols[3], cols[4], cols[5], cols[6], cols[7], cols[8])
	if err != nil {
		return fmt.Errorf("upsert %d aggregate rows: %w", n, err)
	}
	return nil
}

// Sales answers one page of a sales report: the rows of q.GroupBy for the hours in [From, To),
// summed per (key, currency), after the cursor, at most q.Limit of them.
func (s *ReportStore) Sales(ctx context.Context, q SalesQuery) ([]SalesRow, error) {
	if q.GroupBy != DimHour && q.GroupBy != DimSKU && q.GroupBy != DimCategory {
		return nil, fmt.Errorf("sales report: unknown dimension %q", q.GroupBy)
	}
	if q.Limit <= 0 {
		q.Limit = 100
	}
	rows, err := s.pool.Query(ctx, `
SELECT key, currency::text, (array_agg(category ORDER BY hour DESC))[1],
    sum(orders)::bigint, sum(units)::bigint, sum(revenue_minor)::bigint, sum(cancelled_orders)::bigint, sum(cancelled_units)::bigint,
    sum(cancelled_payment_declined)::bigint, sum(cancelled_out_of_stock)::bigint, sum(cancelled_expired)::bigint, sum(cancelled_invalid)::bigint
FROM sales_aggregates
WHERE dim = $1 AND hour >= $2 AND hour < $3 AND (key, currency::text) > ($4::text, $5::text)
GROUP BY key, currency
ORDER BY key, currency
LIMIT $6`, q.GroupBy, q.From.UTC(), q.To.UTC(), q.AfterKey, q.AfterCurrency, q.Limit)
	if err != nil {
		return nil, fmt.Errorf("sales report by %s: %w", q.GroupBy, err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (SalesRow, error) {
		var r SalesRow
		var byReason [4]int64
		err := row.Scan(&r.Key, &r.Currency, &r.Category, &r.Orders, &r.Units, &r.RevenueMinor, &r.CancelledOrders,
			&r.CancelledUnits, &byReason[0], &byReason[1], &byReason[2], &byReason[3])
		r.Cancellations = make(map[string]int64, len(CancelReasons))
		for i, reason := range CancelReasons {
			r.Cancellations[reason] = byReason[i]
		}
		if q.GroupBy != DimSKU {
			r.Category = ""
		}
		return r, err
	})
	if err != nil {
		return nil, fmt.Errorf("sales report by %s: %w", q.GroupBy, err)
	}
	return out, nil
}

package api

import (
	"context"

	"github.com/orderpipe/orderpipe/internal/httpapi"
	"github.com/orderpipe/orderpipe/internal/postgres"
)

// salesReport answers a page of GET /v1/reports/sales from the aggregates the notifier's
// reports group maintains.
func salesReport(ctx context.Context, store *postgres.ReportStore, q httpapi.SalesQuery) ([]httpapi.SalesRow, error) {
	rows, err := store.Sales(ctx, postgres.SalesQuery{GroupBy: q.GroupBy, From: q.From, To: q.To,
		AfterKey: q.AfterKey, AfterCurrency: q.AfterCurrency, Limit: q.Limit})
	if err != nil {
		return nil, err
	}
	out := make([]httpapi.SalesRow, len(rows))
	for i, r := range rows {
		out[i] = httpapi.SalesRow{Key: r.Key, Currency: r.Currency, Category: r.Category, Orders: r.Orders, Units: r.Units,
			RevenueMinor: r.RevenueMinor, CancelledOrders: r.CancelledOrders, CancelledUnits: r.CancelledUnits, Cancellations: r.Cancellations}
	}
	return out, nil
}

package api

import (
	"errors"

	"github.com/orderpipe/orderpipe/internal/catalog"
	"github.com/orderpipe/orderpipe/internal/intake"
	"github.com/orderpipe/orderpipe/internal/postgres"
)

func productFromRow(p postgres.Product) catalog.Product {
	return catalog.Product{SKU: p.SKU, Name: p.Name, Category: p.Category, Brand: p.Brand, PriceMinor: p.PriceMinor, Currency: p.Currency, Active: p.Active, UpdatedAt: p.UpdatedAt}
}

func productToRow(p catalog.Product) postgres.Product {
	return postgres.Product{SKU: p.SKU, Name: p.Name, Category: p.Category, Brand: p.Brand, PriceMinor: p.PriceMinor, Currency: p.Currency, Active: p.Active}
}

func viewFromRow(o postgres.Order) intake.View {
	updated := o.UpdatedAt
	v := intake.View{
		OrderID: o.ID, Status: o.Status, CancelReason: o.CancelReason, Priority: o.Priority, Currency: o.Currency,
		SubtotalMinor: o.SubtotalMinor, ShippingMinor: o.ShippingMinor, TotalMinor: o.TotalMinor,
		PlacedAt: o.PlacedAt, HoldDeadline: o.HoldDeadline, UpdatedAt: &updated,
	}
	for _, l := range o.Lines {
		v.Lines = append(v.Lines, intake.ViewLine{LineNo: l.LineNo, SKU: l.SKU, Name: l.Name, Quantity: l.Quantity, UnitPriceMinor: l.UnitPriceMinor, LineTotalMinor: int64(l.Quantity) * l.UnitPriceMinor, PromotionID: l.PromotionID})
	}
	return v
}

func errorsJoin(errs []error) error { return errors.Join(errs...) }

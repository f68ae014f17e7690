package order

import (
	"errors"
	"math"
	"strings"
	"testing"
)

func TestPrice(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		lines    []Line
		shipping int64
		want     Totals
		wantErr  error
	}{
		{"one line", []Line{{SKU: "A", Quantity: 2, UnitPriceMinor: 1999}}, 0, Totals{3998, 0, 3998}, nil},
		{"lines and shipping", []Line{{SKU: "A", Quantity: 1, UnitPriceMinor: 500}, {SKU: "B", Quantity: 3, UnitPriceMinor: 250}}, 990, Totals{1250, 990, 2240}, nil},
		{"line overflow", []Line{{SKU: "A", Quantity: 3, UnitPriceMinor: math.MaxInt64 / 2}}, 0, Totals{}, ErrOverflow},
		{"subtotal overflow", []Line{{SKU: "A", Quantity: 1, UnitPriceMinor: math.MaxInt64}, {SKU: "B", Quantity: 1, UnitPriceMinor: 1}}, 0, Totals{}, ErrOverflow},
		{"shipping overflow", []Line{{SKU: "A", Quantity: 1, UnitPriceMinor: math.MaxInt64}}, 1, Totals{}, ErrOverflow},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := Price(tt.lines, tt.shipping)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestTransition(t *testing.T) {
	t.Parallel()
	allowed := map[[2]Status]bool{
		{StatusPending, StatusConfirmed}: true,
		{StatusPending, StatusCancelled}: true,
		{StatusConfirmed, StatusShipped}: true,
	}
	all := []Status{StatusPending, StatusConfirmed, StatusShipped, StatusCancelled}
	for _, from := range all {
		for _, to := range all {
			err := Transition(from, to)
			if allowed[[2]Status{from, to}] != (err == nil) {
				t.Errorf("Transition(%s, %s) = %v, want allowed=%v", from, to, err, allowed[[2]Status{from, to}])
			}
			if err != nil && !errors.Is(err, ErrTransition) {
				t.Errorf("Transition(%s, %s) error %v does not wrap ErrTransition", from, to, err)
			}
		}
	}
	if StatusPending.Terminal() || !StatusCancelled.Terminal() || !StatusConfirmed.Terminal() {
		t.Fatal("terminal statuses wrong")
	}
}

func TestErrorsListEveryProblem(t *testing.T) {
	t.Parallel()
	e := &OutOfStockError{Short: []Shortage{{"A", 2, 1}, {"B", 5, 0}}}
	if got, want := e.Error(), "out of stock: A (requested 2, available 1), B (requested 5, available 0)"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	iv := &InvalidError{Problems: []FieldError{{"email", "required"}, {"lines[0].quantity", "must be at least 1"}}}
	if got, want := iv.Error(), "invalid order: email: required; lines[0].quantity: must be at least 1"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

// A customer id is required, not blank, and at most MaxCustomerIDLen characters (not bytes).
func TestCustomerIDProblem(t *testing.T) {
	t.Parallel()
	for id, want := range map[string]string{
		"c-1001":                "",
		strings.Repeat("ü", 64): "",
		"":                      "is required",
		"   ":                   "is required",
		strings.Repeat("c", 65): "must be at most 64 characters",
	} {
		if got := CustomerIDProblem(id); got != want {
			t.Errorf("CustomerIDProblem(%q) = %q, want %q", id, got, want)
		}
	}
}

// Amounts above the bounds every consumer can store are refused, not only int64 overflow.
func TestPriceBounds(t *testing.T) {
	t.Parallel()
	ok := []Line{{SKU: "A", Quantity: MaxQuantity, UnitPriceMinor: 1_000_000}}
	if _, err := Price(ok, 990); err != nil {
		t.Fatalf("an order at the bounds: %v", err)
	}
	for name, c := range map[string]struct {
		lines    []Line
		shipping int64
	}{
		"unit price above the bound": {[]Line{{SKU: "A", Quantity: 1, UnitPriceMinor: MaxUnitPriceMinor + 1}}, 0},
		"unit price MaxInt64":        {[]Line{{SKU: "A", Quantity: 1, UnitPriceMinor: math.MaxInt64}}, 0},
		"quantity above the bound":   {[]Line{{SKU: "A", Quantity: MaxQuantity + 1, UnitPriceMinor: 1}}, 0},
		"total above the bound":      {[]Line{{SKU: "A", Quantity: 11, UnitPriceMinor: MaxUnitPriceMinor}}, 0},
		"shipping above the bound":   {[]Line{{SKU: "A", Quantity: 1, UnitPriceMinor: 1}}, MaxTotalMinor},
	} {
		if _, err := Price(c.lines, c.shipping); !errors.Is(err, ErrOverflow) {
			t.Errorf("%s: err %v, want ErrOverflow", name, err)
		}
	}
}

package httpapi

import (
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/orderpipe/orderpipe/internal/order"
	"github.com/orderpipe/orderpipe/internal/promotion"
	"github.com/orderpipe/orderpipe/schemas"
)

// The OpenAPI document is the single source of the request limits. Go code needs them as
// constants (no YAML is parsed on the request path); this test keeps every constant equal to the
// limit the document states, so changing one without the other fails here.
func TestLimitsMatchTheOpenAPIDocument(t *testing.T) {
	t.Parallel()
	raw, err := schemas.FS.ReadFile("openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := openapi3.NewLoader().LoadFromData(raw)
	if err != nil {
		t.Fatal(err)
	}
	prop := func(schema, property string) *openapi3.Schema {
		t.Helper()
		s := doc.Components.Schemas[schema]
		if s == nil || s.Value.Properties[property] == nil {
			t.Fatalf("openapi.yaml has no %s.%s", schema, property)
		}
		return s.Value.Properties[property].Value
	}
	u := func(p *uint64) int64 {
		if p == nil {
			return -1
		}
		return int64(*p)
	}
	f := func(p *float64) int64 {
		if p == nil {
			return -1
		}
		return int64(*p)
	}
	pathParam := func(path, name string) *openapi3.Schema {
		t.Helper()
		item := doc.Paths.Find(path)
		if item == nil {
			t.Fatalf("openapi.yaml has no path %s", path)
		}
		for _, p := range item.Parameters {
			if p.Value.Name == name {
				return p.Value.Schema.Value
			}
		}
		t.Fatalf("%s has no parameter %s", path, name)
		return nil
	}
	tests := []struct {
		where     string
		got, want int64
	}{
		{"PlaceOrderRequest.customer_id maxLength", u(prop("PlaceOrderRequest", "customer_id").MaxLength), order.MaxCustomerIDLen},
		{"PlaceOrderRequest.email maxLength", u(prop("PlaceOrderRequest", "email").MaxLength), emailMax},
		{"PlaceOrderRequest.lines maxItems (ORDER_MAX_LINES's ceiling)", u(prop("PlaceOrderRequest", "lines").MaxItems), 50},
		{"OrderLineRequest.quantity maximum", f(prop("OrderLineRequest", "quantity").Max), order.MaxQuantity},
		{"Payment.token minLength", int64(prop("Payment", "token").MinLength), tokenMin},
		{"Payment.token maxLength", u(prop("Payment", "token").MaxLength), tokenMax},
		{"Address.name maxLength", u(prop("Address", "name").MaxLength), addressNameMax},
		{"Address.line1 maxLength", u(prop("Address", "line1").MaxLength), addressLineMax},
		{"Address.line2 maxLength", u(prop("Address", "line2").MaxLength), addressLineMax},
		{"Address.city maxLength", u(prop("Address", "city").MaxLength), addressCityMax},
		{"Address.postal_code maxLength", u(prop("Address", "postal_code").MaxLength), postalCodeMax},
		{"ProductInput.name maxLength", u(prop("ProductInput", "name").MaxLength), productNameMax},
		{"ProductInput.category maxLength", u(prop("ProductInput", "category").MaxLength), productCategoryMax},
		{"ProductInput.brand maxLength", u(prop("ProductInput", "brand").MaxLength), productBrandMax},
		{"ProductInput.price_minor maximum", f(prop("ProductInput", "price_minor").Max), order.MaxUnitPriceMinor},
		{"PromotionInput.name maxLength", u(prop("PromotionInput", "name").MaxLength), promotion.NameMax},
		{"PromotionInput.category maxLength", u(prop("PromotionInput", "category").MaxLength), promotion.CategoryMax},
		{"PromotionInput.skus maxItems", u(prop("PromotionInput", "skus").MaxItems), promotion.MaxSKUs},
		{"PromotionInput.percent_off minimum", f(prop("PromotionInput", "percent_off").Min), promotion.PercentOffMin},
		{"PromotionInput.percent_off maximum", f(prop("PromotionInput", "percent_off").Max), promotion.PercentOffMax},
		{"PromotionInput.fixed_price_minor maximum", f(prop("PromotionInput", "fixed_price_minor").Max), order.MaxUnitPriceMinor},
		{"TradeAccountInput.name maxLength", u(prop("TradeAccountInput", "name").MaxLength), tradeAccountNameMax},
		{"/v1/trade-accounts/{customer_id} maxLength", u(pathParam("/v1/trade-accounts/{customer_id}", "customer_id").MaxLength), order.MaxCustomerIDLen},
		{"Idempotency-Key maxLength", u(doc.Components.Parameters["IdempotencyKey"].Value.Schema.Value.MaxLength), 255},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s: openapi.yaml says %d, the code enforces %d", tt.where, tt.got, tt.want)
		}
	}
}

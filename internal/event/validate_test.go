package event_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/orderpipe/orderpipe/internal/event"
)

func newValidator(t testing.TB) *event.Validator {
	t.Helper()
	v, err := event.NewValidator()
	if err != nil {
		t.Fatalf("NewValidator: %v", err)
	}
	return v
}

// orderDoc returns sampleOrder as a generic JSON document, for tests to break.
func orderDoc(t *testing.T) map[string]any {
	t.Helper()
	data, err := json.Marshal(sampleOrder(t))
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	var doc map[string]any
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatalf("unmarshal: %v", err)
	}
	return doc
}

func line(doc map[string]any, i int) map[string]any {
	return doc["lines"].([]any)[i].(map[string]any)
}

func TestValidateAcceptsOrderPlaced(t *testing.T) {
	t.Parallel()
	v := newValidator(t)
	env, err := event.NewOrderPlaced("/orderpipe/api", sampleOrder(t))
	if err != nil {
		t.Fatalf("NewOrderPlaced: %v", err)
	}
	if err := v.Validate(env.Type, env.Data); err != nil {
		t.Fatalf("Validate: got %v, want nil", err)
	}
	got, err := event.Decode[event.OrderPlaced](v, env)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	want := sampleOrder(t)
	if got.OrderID != want.OrderID || len(got.Lines) != 3 || got.Lines[2] != want.Lines[2] ||
		got.ShippingAddress != want.ShippingAddress || !got.HoldDeadline.Equal(want.HoldDeadline) {
		t.Fatalf("Decode: got %+v, want %+v", got, want)
	}
}

func TestValidateRejectsWithFieldPaths(t *testing.T) {
	t.Parallel()
	v := newValidator(t)
	tests := []struct {
		name       string
		mutate     func(doc map[string]any)
		wantFields []string
	}{
		{"order id not a uuid", func(d map[string]any) { d["order_id"] = "order-1" }, []string{"/order_id"}},
		{"missing email", func(d map[string]any) { delete(d, "email") }, []string{"/email"}},
		{"bad email", func(d map[string]any) { d["email"] = "anna at example" }, []string{"/email"}},
		{"bad time", func(d map[string]any) { d["placed_at"] = "03.11.2025 08:15" }, []string{"/placed_at"}},
		{"unknown priority", func(d map[string]any) { d["priority"] = "urgent" }, []string{"/priority"}},
		{"lowercase currency", func(d map[string]any) { d["currency"] = "eur" }, []string{"/currency"}},
		{"no lines", func(d map[string]any) { d["lines"] = []any{} }, []string{"/lines"}},
		{"bad sku", func(d map[string]any) { line(d, 1)["sku"] = "bat 70" }, []string{"/lines/1/sku"}},
		{"quantity too big", func(d map[string]any) { line(d, 2)["quantity"] = 1000 }, []string{"/lines/2/quantity"}},
		{"fractional price", func(d map[string]any) { line(d, 0)["unit_price_minor"] = 34.99 }, []string{"/lines/0/unit_price_minor"}},
		{"line missing name", func(d map[string]any) { delete(line(d, 0), "name") }, []string{"/lines/0/name"}},
		{"negative total", func(d map[string]any) { d["total_minor"] = -1 }, []string{"/total_minor"}},
		{"unknown payment method", func(d map[string]any) { d["payment"].(map[string]any)["method"] = "cash" }, []string{"/payment/method"}},
		{"short token", func(d map[string]any) { d["payment"].(map[string]any)["token"] = "tok" }, []string{"/payment/token"}},
		{"card number smuggled in", func(d map[string]any) { d["payment"].(map[string]any)["pan"] = "4111111111111111" }, []string{"/payment/pan"}},
		{"country name", func(d map[string]any) { d["shipping_address"].(map[string]any)["country"] = "Germany" }, []string{"/shipping_address/country"}},
		{"unknown top-level field", func(d map[string]any) { d["discount"] = 5 }, []string{"/discount"}},
		{"several problems", func(d map[string]any) {
			delete(d, "api_key_id")
			d["currency"] = "euro"
			line(d, 0)["quantity"] = 0
		}, []string{"/api_key_id", "/currency", "/lines/0/quantity"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			doc := orderDoc(t)
			tt.mutate(doc)
			data, err := json.Marshal(doc)
			if err != nil {
				t.Fatalf("marshal: %v", err)
			}
			err = v.Validate(event.TypeOrderPlaced, data)
			if !errors.Is(err, event.ErrInvalid) {
				t.Fatalf("Validate: got %v, want error wrapping ErrInvalid", err)
			}
			var verr *event.ValidationError
			if !errors.As(err, &verr) {
				t.Fatalf("Validate: got %T, want *event.ValidationError", err)
			}
			if got, want := verr.Type, event.TypeOrderPlaced; got != want {
				t.Fatalf("type: got %s, want %s", got, want)
			}
			var fields []string
			for _, p := range verr.Problems {
				if p.Detail == "" {
					t.Errorf("problem at %s: got empty detail, want one", p.Field)
				}
				fields = append(fields, p.Field)
			}
			if !slices.Equal(slices.Compact(fields), tt.wantFields) {
				t.Fatalf("fields: got %v (%v), want %v", fields, err, tt.wantFields)
			}
		})
	}
}

func TestValidateRejectsNonJSON(t *testing.T) {
	t.Parallel()
	v := newValidator(t)
	for _, data := range []string{``, `{"order_id":`, `{} {}`, `[]`} {
		err := v.Validate(event.TypeOrderPlaced, []byte(data))
		if !errors.Is(err, event.ErrInvalid) {
			t.Errorf("Validate(%q): got %v, want error wrapping ErrInvalid", data, err)
		}
	}
}

func TestValidateUnknownType(t *testing.T) {
	t.Parallel()
	v := newValidator(t)
	err := v.Validate("com.orderpipe.order.teleported", []byte(`{}`))
	if !errors.Is(err, event.ErrUnknownType) {
		t.Fatalf("Validate: got %v, want error wrapping ErrUnknownType", err)
	}
	if errors.Is(err, event.ErrInvalid) {
		t.Fatalf("Validate: got %v, want not ErrInvalid", err)
	}
}

func TestDecodeRejects(t *testing.T) {
	t.Parallel()
	v := newValidator(t)
	env, err := event.NewOrderPlaced("/orderpipe/api", sampleOrder(t))
	if err != nil {
		t.Fatalf("NewOrderPlaced: %v", err)
	}

	wrongType := env
	wrongType.Type = "com.orderpipe.stock.changed"
	if _, err := event.Decode[event.OrderPlaced](v, wrongType); err == nil {
		t.Fatalf("Decode of another type: got nil error, want one")
	}

	invalid := env
	invalid.Data = []byte(strings.Replace(string(env.Data), `"priority":"express"`, `"priority":"now"`, 1))
	if _, err := event.Decode[event.OrderPlaced](v, invalid); !errors.Is(err, event.ErrInvalid) {
		t.Fatalf("Decode of invalid data: got %v, want error wrapping ErrInvalid", err)
	}
}

// TestOrderPlacedBackwardCompatible proves that every frozen example of every published version of
// OrderPlaced still validates against the current schema, decodes into the Go type without losing
// a field, and re-encodes into valid data. Never edit or delete the examples: add new ones.
func TestOrderPlacedBackwardCompatible(t *testing.T) {
	t.Parallel()
	v := newValidator(t)
	files, err := filepath.Glob(filepath.Join("..", "..", "schemas", "testdata", "order-placed", "*.json"))
	if err != nil {
		t.Fatalf("glob: %v", err)
	}
	if len(files) == 0 {
		t.Fatalf("examples: got none, want at least one")
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			t.Parallel()
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			env := event.Envelope{ID: "compat", Type: event.TypeOrderPlaced, Source: "/test", Data: data}
			got, err := event.Decode[event.OrderPlaced](v, env)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}

			// Every field of the example must have a home in the Go type.
			dec := json.NewDecoder(strings.NewReader(string(data)))
			dec.DisallowUnknownFields()
			var strict event.OrderPlaced
			if err := dec.Decode(&strict); err != nil {
				t.Fatalf("strict decode: %v", err)
			}

			again, err := event.NewOrderPlaced("/test", got)
			if err != nil {
				t.Fatalf("NewOrderPlaced: %v", err)
			}
			if err := v.Validate(again.Type, again.Data); err != nil {
				t.Fatalf("re-encoded example: got %v, want valid", err)
			}
			var before, after map[string]any
			if err := json.Unmarshal(data, &before); err != nil {
				t.Fatalf("unmarshal example: %v", err)
			}
			if err := json.Unmarshal(again.Data, &after); err != nil {
				t.Fatalf("unmarshal re-encoded: %v", err)
			}
			if got, want := sortedKeys(after), sortedKeys(before); !slices.Equal(got, want) {
				t.Fatalf("re-encoded fields: got %v, want %v", got, want)
			}
		})
	}
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// BenchmarkEncodeValidateOrderPlaced measures the intake hot path: encode a three-line
// OrderPlaced and validate it against its schema.
func BenchmarkEncodeValidateOrderPlaced(b *testing.B) {
	v := newValidator(b)
	p := sampleOrder(b)
	b.ReportAllocs()
	for b.Loop() {
		env, err := event.NewOrderPlaced("/orderpipe/api", p)
		if err != nil {
			b.Fatalf("NewOrderPlaced: %v", err)
		}
		if err := v.Validate(env.Type, env.Data); err != nil {
			b.Fatalf("Validate: %v", err)
		}
	}
}

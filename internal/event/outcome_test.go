package event_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/orderpipe/orderpipe/internal/event"
)

// Every frozen example of OrderConfirmed and OrderCancelled still validates, decodes without
// losing a field, and re-encodes to valid data with the same content (backward compatibility).
func TestOutcomeEventsBackwardCompatible(t *testing.T) {
	t.Parallel()
	v := newValidator(t)
	t.Run("order-confirmed", func(t *testing.T) { compat[event.OrderConfirmed](t, v, "order-confirmed") })
	t.Run("order-cancelled", func(t *testing.T) { compat[event.OrderCancelled](t, v, "order-cancelled") })
}

func compat[T event.Data](t *testing.T, v *event.Validator, dir string) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("..", "..", "schemas", "testdata", dir, "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("examples of %s: %v (%d files)", dir, err, len(files))
	}
	var zero T
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		got, err := event.Decode[T](v, event.Envelope{ID: "compat", Type: zero.EventType(), Source: "/test", Data: data})
		if err != nil {
			t.Fatalf("%s: decode: %v", file, err)
		}
		dec := json.NewDecoder(strings.NewReader(string(data)))
		dec.DisallowUnknownFields()
		var strict T
		if err := dec.Decode(&strict); err != nil {
			t.Fatalf("%s: strict decode: %v", file, err)
		}
		again, err := event.NewEnvelope("/test", "subject", time.Now(), got)
		if err != nil {
			t.Fatal(err)
		}
		if err := v.Validate(again.Type, again.Data); err != nil {
			t.Fatalf("%s: re-encoded: %v", file, err)
		}
		var back T
		if err := json.Unmarshal(again.Data, &back); err != nil || !reflect.DeepEqual(normalize(t, back), normalize(t, got)) {
			t.Fatalf("%s: round trip changed the data: %v", file, err)
		}
	}
}

func normalize(t *testing.T, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestNewEnvelopeIsDeterministicPerOrderAndType(t *testing.T) {
	t.Parallel()
	c := event.OrderConfirmed{OrderID: "o-1"}
	x := event.OrderCancelled{OrderID: "o-1"}
	a, err := event.NewEnvelope("/w", "o-1", time.Unix(1, 0), c)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := event.NewEnvelope("/w", "o-1", time.Unix(2, 0), c)
	d, _ := event.NewEnvelope("/w", "o-1", time.Unix(1, 0), x)
	if a.ID != b.ID || a.ID == d.ID || a.Type != event.TypeOrderConfirmed || a.DataSchema != event.DataSchemaOrderConfirmed {
		t.Fatalf("ids %s %s %s, types %s", a.ID, b.ID, d.ID, a.Type)
	}
}

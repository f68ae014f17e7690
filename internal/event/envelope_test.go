package event_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderpipe/orderpipe/internal/event"
)

func header(r *kgo.Record, key string) (string, bool) {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value), true
		}
	}
	return "", false
}

func TestRecordRoundTrip(t *testing.T) {
	t.Parallel()
	p := sampleOrder(t)
	p.PlacedAt = time.Date(2025, 11, 3, 9, 15, 42, 500, time.FixedZone("CET", 3600))
	env, err := event.NewOrderPlaced("/orderpipe/api", p)
	if err != nil {
		t.Fatalf("NewOrderPlaced: %v", err)
	}
	r := env.Record(event.TopicOrdersPlacedPriority, []byte(p.OrderID))

	if got, want := r.Topic, event.TopicOrdersPlacedPriority; got != want {
		t.Fatalf("topic: got %s, want %s", got, want)
	}
	if got, want := string(r.Key), p.OrderID; got != want {
		t.Fatalf("key: got %s, want %s", got, want)
	}
	wantHeaders := map[string]string{
		"ce_id":          env.ID,
		"ce_type":        "com.orderpipe.order.placed",
		"ce_source":      "/orderpipe/api",
		"ce_specversion": "1.0",
		"ce_time":        "2025-11-03T08:15:42.0000005Z",
		"ce_dataschema":  "https://schemas.orderpipe.dev/order-placed.v1.json",
		"content-type":   "application/json",
	}
	for k, want := range wantHeaders {
		if got, ok := header(r, k); !ok || got != want {
			t.Errorf("header %s: got %q (present %v), want %q", k, got, ok, want)
		}
	}
	if got, want := len(r.Headers), len(wantHeaders); got != want {
		t.Errorf("header count: got %d, want %d", got, want)
	}

	back, err := event.FromRecord(r)
	if err != nil {
		t.Fatalf("FromRecord: %v", err)
	}
	if back.ID != env.ID || back.Type != env.Type || back.Source != env.Source ||
		back.DataSchema != env.DataSchema || !back.Time.Equal(env.Time) || string(back.Data) != string(env.Data) {
		t.Fatalf("round trip: got %+v, want %+v", back, env)
	}
}

func TestRecordOptionalAttributes(t *testing.T) {
	t.Parallel()
	env := event.Envelope{ID: "e-1", Type: "com.example.thing", Source: "/test", Data: []byte(`{}`)}
	r := env.Record(event.TopicInventoryStock, []byte("BRK-PAD-4411"))
	for _, k := range []string{"ce_time", "ce_dataschema"} {
		if _, ok := header(r, k); ok {
			t.Errorf("header %s: got present, want absent for a zero value", k)
		}
	}
	back, err := event.FromRecord(r)
	if err != nil {
		t.Fatalf("FromRecord: %v", err)
	}
	if !back.Time.IsZero() || back.DataSchema != "" {
		t.Fatalf("optional attributes: got time %v dataschema %q, want zero", back.Time, back.DataSchema)
	}
}

func TestFromRecordMalformed(t *testing.T) {
	t.Parallel()
	valid := func() *kgo.Record {
		env := event.Envelope{
			ID: "e-1", Type: event.TypeOrderPlaced, Source: "/test", Time: time.Unix(1, 0),
			DataSchema: event.DataSchemaOrderPlaced, Data: []byte(`{}`),
		}
		return env.Record(event.TopicOrdersPlaced, []byte("k"))
	}
	without := func(key string) func(*kgo.Record) {
		return func(r *kgo.Record) {
			r.Headers = slices.DeleteFunc(r.Headers, func(h kgo.RecordHeader) bool { return h.Key == key })
		}
	}
	set := func(key, value string) func(*kgo.Record) {
		return func(r *kgo.Record) {
			for i := range r.Headers {
				if r.Headers[i].Key == key {
					r.Headers[i].Value = []byte(value)
				}
			}
		}
	}
	tests := []struct {
		name    string
		mutate  func(*kgo.Record)
		wantErr bool
	}{
		{"valid", func(*kgo.Record) {}, false},
		{"content type with charset", set("content-type", "application/json; charset=utf-8"), false},
		{"no content type", without("content-type"), false},
		{"no dataschema", without("ce_dataschema"), false},
		{"no time", without("ce_time"), false},
		{"no id", without("ce_id"), true},
		{"no type", without("ce_type"), true},
		{"no source", without("ce_source"), true},
		{"no specversion", without("ce_specversion"), true},
		{"empty id", set("ce_id", ""), true},
		{"specversion 0.3", set("ce_specversion", "0.3"), true},
		{"bad time", set("ce_time", "yesterday"), true},
		{"xml content", set("content-type", "application/xml"), true},
		{"duplicate id", func(r *kgo.Record) {
			r.Headers = append(r.Headers, kgo.RecordHeader{Key: "ce_id", Value: []byte("e-2")})
		}, true},
		{"no headers", func(r *kgo.Record) { r.Headers = nil }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := valid()
			tt.mutate(r)
			_, err := event.FromRecord(r)
			if !tt.wantErr {
				if err != nil {
					t.Fatalf("FromRecord: got %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, event.ErrMalformed) {
				t.Fatalf("FromRecord: got %v, want error wrapping ErrMalformed", err)
			}
		})
	}

	if _, err := event.FromRecord(nil); !errors.Is(err, event.ErrMalformed) {
		t.Fatalf("FromRecord(nil): got %v, want error wrapping ErrMalformed", err)
	}
}

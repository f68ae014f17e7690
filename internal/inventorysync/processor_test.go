package inventorysync_test

import (
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderpipe/orderpipe/internal/config"
	"github.com/orderpipe/orderpipe/internal/consumer"
	"github.com/orderpipe/orderpipe/internal/event"
	"github.com/orderpipe/orderpipe/internal/inventorysync"
	"github.com/orderpipe/orderpipe/internal/kafka"
	"github.com/orderpipe/orderpipe/internal/redisstore"
	"github.com/orderpipe/orderpipe/internal/testenv"
)

// processor builds a Processor over the stack's Postgres and broker, and over counters (the
// stack's Redis unless given), with its own metrics registry.
func (s *stack) processor(t testing.TB, counters *redisstore.Store) (*inventorysync.Processor, *prometheus.Registry) {
	t.Helper()
	if counters == nil {
		counters = s.redis
	}
	producer, err := kafka.NewClient(kafka.ClientConfig{Brokers: s.kafka.ListenAddrs(), ClientID: "test", ProduceTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(producer.Close)
	v, err := event.NewValidator()
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	return inventorysync.NewProcessor("orderpipe/inventory-sync", s.inv, counters, producer, v, slog.New(slog.DiscardHandler), reg), reg
}

func record(t testing.TB, m msg) *kgo.Record {
	t.Helper()
	return &kgo.Record{Topic: event.TopicInventoryStock, Key: []byte(m.key), Value: []byte(m.data), Headers: []kgo.RecordHeader{
		{Key: "ce_specversion", Value: []byte("1.0")}, {Key: "ce_id", Value: []byte(m.id)}, {Key: "ce_type", Value: []byte(m.typ)},
		{Key: "ce_source", Value: []byte(m.source)}, {Key: "content-type", Value: []byte("application/json")},
	}}
}

func counter(t *testing.T, reg *prometheus.Registry, name, label string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		var sum float64
		for _, m := range mf.GetMetric() {
			if label == "" || (len(m.GetLabel()) > 0 && m.GetLabel()[0].GetValue() == label) {
				sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
			}
		}
		return sum
	}
	t.Fatalf("metric %s not registered", name)
	return 0
}

// Records that can never be applied are permanent (dead letters), everything else is done.
func TestHandleClassifiesRecords(t *testing.T) {
	t.Parallel()
	s := setup(t, []string{"BRK-PAD-1001"}, map[string]int64{"BRK-PAD-1001": 0})
	p, reg := s.processor(t, nil)
	good := levelMsg("ok-1", "WH-1", "BRK-PAD-1001", 1, 7)
	noType := record(t, good)
	noType.Headers = noType.Headers[:2]
	recs := []*kgo.Record{
		noType,
		record(t, msg{id: "x-1", typ: event.TypeOrderPlaced, source: "warehouse/WH-1", key: "BRK-PAD-1001", data: `{}`}),
		record(t, msg{id: "x-2", typ: event.TypeStockLevel, source: "warehouse/WH-1", key: "BRK-PAD-1001", data: `{"warehouse_id":`}),
		record(t, levelMsg("x-3", "WH-1", "BRK-PAD-1001", 0, 7)),                                            // seq 0: schema-invalid
		record(t, msg{id: "x-4", typ: good.typ, source: good.source, key: "FLT-OIL-2001", data: good.data}), // key is not the sku
		record(t, levelMsg("x-5", "WH-1", "NOPE-0001", 2, 7)),                                               // not in the catalog
		record(t, good),
	}
	errs := p.Handle(t.Context(), recs)
	for i, err := range errs[:6] {
		if err == nil || consumer.ClassOf(err) != consumer.ClassPermanent {
			t.Fatalf("record %d: got %v, want a permanent error", i, err)
		}
	}
	if !errors.Is(errs[5], inventorysync.ErrUnknownSKU) {
		t.Fatalf("unknown SKU: got %v, want ErrUnknownSKU", errs[5])
	}
	if errs[6] != nil {
		t.Fatalf("valid record: got %v, want done", errs[6])
	}
	if got := s.stock(t, "BRK-PAD-1001").OnHand; got != 7 {
		t.Fatalf("on_hand: got %d, want 7", got)
	}
	if got := counter(t, reg, "orderpipe_inventory_events_ignored_total", "invalid"); got != 5 {
		t.Fatalf("ignored invalid: got %v, want 5", got)
	}
	if got := counter(t, reg, "orderpipe_inventory_events_ignored_total", "unknown_sku"); got != 1 {
		t.Fatalf("ignored unknown_sku: got %v, want 1", got)
	}
}

// A crash between the Postgres commit and the Redis step (Redis unreachable here): the batch
// fails transiently; redelivered, Postgres sees duplicates, and their recorded deltas move ATP
// once, however often the batch comes again.
func TestRedisStepIsRepeatedOnce(t *testing.T) {
	t.Parallel()
	s := setup(t, []string{"BRK-PAD-1001", "FLT-OIL-2001"}, map[string]int64{"BRK-PAD-1001": 10, "FLT-OIL-2001": 4})
	proxy := testenv.NewProxy(t, s.rdb.Options().Addr)
	viaProxy := redis.NewClient(&redis.Options{Addr: proxy.Addr(), MaxRetries: -1, DialTimeout: 200 * time.Millisecond, ReadTimeout: 500 * time.Millisecond})
	t.Cleanup(func() { _ = viaProxy.Close() })
	p, reg := s.processor(t, redisstore.New(viaProxy, s.prefix))
	recs := []*kgo.Record{
		record(t, levelMsg("a-1", "WH-1", "BRK-PAD-1001", 1, 30)),
		record(t, adjustMsg("a-2", "WH-1", "FLT-OIL-2001", 2, 3, event.ReasonReceived)),
		record(t, adjustMsg("a-3", "WH-1", "BRK-PAD-1001", 3, -4, event.ReasonDamaged)),
	}
	proxy.Cut()
	for i, err := range p.Handle(t.Context(), recs) {
		if err == nil || consumer.ClassOf(err) != consumer.ClassTransient {
			t.Fatalf("record %d with Redis down: got %v, want a transient error", i, err)
		}
	}
	if got := s.stock(t, "BRK-PAD-1001").OnHand; got != 26 {
		t.Fatalf("Postgres committed: got on_hand %d, want 26", got)
	}
	wantATP := func(sku string, atp int64) {
		t.Helper()
		st, err := s.redis.Availability(t.Context(), sku)
		if err != nil || st.ATP != atp {
			t.Fatalf("%s atp: got %+v, %v; want %d", sku, st, err, atp)
		}
	}
	wantATP("BRK-PAD-1001", 10)
	proxy.Restore()
	for range 3 {
		for i, err := range p.Handle(t.Context(), recs) {
			if err != nil {
				t.Fatalf("record %d redelivered: %v", i, err)
			}
		}
		wantATP("BRK-PAD-1001", 26)
		wantATP("FLT-OIL-2001", 3) // the first warehouse event replaces the seeded 4
	}
	if got := counter(t, reg, "orderpipe_inventory_events_applied_total", ""); got != 3 {
		t.Fatalf("applied: got %v, want 3", got)
	}
	if got := counter(t, reg, "orderpipe_inventory_events_ignored_total", "duplicate"); got != 9 {
		t.Fatalf("duplicates: got %v, want 9 (three redeliveries of three events)", got)
	}
}

// A SKU whose Redis counters are gone: Postgres is updated, ATP is not invented, the skip is
// counted; holds of another SKU in the same batch are untouched.
func TestMissingCountersAreSkippedAndCounted(t *testing.T) {
	t.Parallel()
	s := setup(t, []string{"BRK-PAD-1001", "FLT-OIL-2001"}, map[string]int64{"FLT-OIL-2001": 5})
	p, reg := s.processor(t, nil)
	if _, err := s.redis.Reserve(t.Context(), "order-1", []redisstore.Line{{SKU: "FLT-OIL-2001", Qty: 2}}, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	errs := p.Handle(t.Context(), []*kgo.Record{
		record(t, levelMsg("a-1", "WH-1", "BRK-PAD-1001", 1, 30)),
		record(t, levelMsg("a-2", "WH-1", "FLT-OIL-2001", 2, 9)),
	})
	for i, err := range errs {
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
	}
	if got := s.stock(t, "BRK-PAD-1001").OnHand; got != 30 {
		t.Fatalf("Postgres: got on_hand %d, want 30", got)
	}
	if st, _ := s.redis.Availability(t.Context(), "BRK-PAD-1001"); st.Known {
		t.Fatalf("Redis: got %+v, want no counters invented", st)
	}
	if st, _ := s.redis.Availability(t.Context(), "FLT-OIL-2001"); st.ATP != 7 || st.Held != 2 {
		t.Fatalf("FLT-OIL-2001: got %+v, want atp 7 (9 - 2 held), held 2", st)
	}
	if got := counter(t, reg, "orderpipe_inventory_redis_missing_total", ""); got != 1 {
		t.Fatalf("redis missing: got %v, want 1", got)
	}
}

// Poison records published with kcat go to inventory-sync.dlq with their error, and the
// partition moves on: the valid event behind them on the same key is applied.
func TestPoisonRecordsAreDeadLettered(t *testing.T) {
	t.Parallel()
	s := setup(t, []string{"BRK-PAD-1001"}, map[string]int64{"BRK-PAD-1001": 0})
	s.sync(t, nil)
	good := levelMsg("ok-1", "WH-1", "BRK-PAD-1001", 5, 12)
	s.kcatAll(t, map[string][]msg{"BRK-PAD-1001": {
		{id: "bad-1", typ: event.TypeStockLevel, source: "warehouse/WH-1", key: "BRK-PAD-1001", data: `not json`},
		{id: "bad-2", typ: event.TypeStockAdjusted, source: "warehouse/WH-1", key: "BRK-PAD-1001", data: strings.Replace(good.data, `"on_hand":12`, `"delta":1,"reason":"stolen"`, 1)},
		{id: "bad-3", typ: good.typ, source: good.source, key: "BRK-PAD-1001", data: strings.ReplaceAll(good.data, "BRK-PAD-1001", "NOPE-0001")},
		{id: "bad-4", typ: "com.example.stock.level", source: good.source, key: "BRK-PAD-1001", data: good.data},
		good,
	}})
	s.waitSettled(t, "inventory-sync", 30*time.Second)
	if got := s.stock(t, "BRK-PAD-1001").OnHand; got != 12 {
		t.Fatalf("on_hand: got %d, want 12 (the valid event behind the poison ones)", got)
	}
	dead := s.records(t, event.DeadLetterTopic("inventory-sync"))
	if len(dead) != 4 {
		t.Fatalf("dead letters: got %d, want 4", len(dead))
	}
	for _, r := range dead {
		d, err := consumer.ParseDeadLetter(r)
		if err != nil {
			t.Fatal(err)
		}
		if d.Topic != event.TopicInventoryStock || d.Class != consumer.ClassPermanent || d.Error == "" {
			t.Fatalf("dead letter: got %+v, want a permanent one from inventory.stock with its error", d)
		}
	}
}

func TestConfig(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ name, value string }{
		{"INVENTORY_SYNC_START_AT", "middle"},
		{"INVENTORY_SYNC_BATCH_SIZE", "0"},
		{"INVENTORY_SYNC_RETRY_IN_PLACE", "1m"},
		{"INVENTORY_DELTA_RETENTION", "1h"},
		{"INVENTORY_SYNC_MAX_BACKOFF", "1ms"},
	} {
		var cfg inventorysync.Config
		err := config.Load(&cfg, func(k string) string {
			if k == tt.name {
				return tt.value
			}
			return ""
		})
		if err == nil || !strings.Contains(err.Error(), tt.name) {
			t.Errorf("%s=%q: got %v, want an error naming the variable", tt.name, tt.value, err)
		}
	}
	var out strings.Builder
	if err := inventorysync.Run(t.Context(), []string{"-h"}, func(string) string { return "" }, &out); err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"INVENTORY_ADMIN_ADDR", "INVENTORY_SYNC_START_AT", "DATABASE_URL"} {
		if !strings.Contains(out.String(), v) {
			t.Fatalf("-h: got %q, want %s listed", out.String(), v)
		}
	}
	if err := inventorysync.Run(t.Context(), []string{"extra"}, func(string) string { return "" }, &out); err == nil {
		t.Fatalf("an argument: got nil error, want one")
	}
}

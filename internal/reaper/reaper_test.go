package reaper_test

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderpipe/orderpipe/internal/config"
	"github.com/orderpipe/orderpipe/internal/event"
	"github.com/orderpipe/orderpipe/internal/kafka"
	"github.com/orderpipe/orderpipe/internal/postgres"
	"github.com/orderpipe/orderpipe/internal/reaper"
	"github.com/orderpipe/orderpipe/internal/redisstore"
	"github.com/orderpipe/orderpipe/internal/testenv"
)

var skus = []string{"BRK-PAD-1001", "FLT-OIL-2001", "BAT-5001", "WIP-6001", "TYR-WIN-7101"}

type bundle struct {
	stock   *postgres.StockStore
	store   *redisstore.Store
	kafka   *kfake.Cluster
	brokers []string
	v       *event.Validator
}

func setup(t *testing.T, onHand int64) *bundle {
	t.Helper()
	pool, _ := testenv.Postgres(t)
	rdb, prefix := testenv.Redis(t)
	b := &bundle{stock: postgres.NewStockStore(pool), store: redisstore.New(rdb, prefix), kafka: testenv.Kafka(t)}
	b.brokers = b.kafka.ListenAddrs()
	var products []postgres.Product
	levels := map[string]int64{}
	for _, sku := range skus {
		products = append(products, postgres.Product{SKU: sku, Name: "Part " + sku, Category: "parts", Brand: "Bosch", PriceMinor: 1000, Currency: "EUR", Active: true})
		levels[sku] = onHand
	}
	if _, err := postgres.NewCatalogStore(pool).UpsertMany(t.Context(), products); err != nil {
		t.Fatal(err)
	}
	if _, err := b.stock.SeedMissing(t.Context(), levels); err != nil {
		t.Fatal(err)
	}
	if _, err := b.store.SeedStock(t.Context(), levels); err != nil {
		t.Fatal(err)
	}
	v, err := event.NewValidator()
	if err != nil {
		t.Fatal(err)
	}
	b.v = v
	return b
}

func settings() reaper.Settings {
	return reaper.Settings{ReaperEnabled: true, ReaperInterval: 20 * time.Millisecond, ReaperBatchSKUs: 2, ReaperMaxPerSKU: 7, ReaperSKURefresh: time.Minute}
}

func (b *bundle) reaper(t *testing.T, brokers []string, reg prometheus.Registerer) *reaper.Reaper {
	t.Helper()
	cl, err := kafka.NewClient(kafka.ClientConfig{Brokers: brokers, ClientID: "reaper-test", ProduceTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return reaper.New(settings(), reaper.Deps{
		Holds: b.store, Stock: b.stock, Producer: cl, Validator: b.v, Source: "orderpipe/test",
		Log: slog.New(slog.NewJSONHandler(io.Discard, nil)), Registerer: reg,
	})
}

// hold creates n holds with random UUID order ids, spread over the SKUs, with the given deadline,
// and returns how many units each SKU holds and every order+SKU held.
func (b *bundle) hold(t *testing.T, n int, deadline time.Time) (map[string]int64, map[string]int64) {
	t.Helper()
	units := map[string]int64{}
	holds := map[string]int64{}
	for i := range n {
		sku, qty := skus[i%len(skus)], int64(1+i%3)
		id := uuid.NewString()
		res, err := b.store.Reserve(t.Context(), id, []redisstore.Line{{SKU: sku, Qty: qty}}, deadline)
		if err != nil || !res.OK {
			t.Fatalf("reserve %d: %+v %v", i, res, err)
		}
		units[sku] += qty
		holds[id+"/"+sku] = qty
	}
	return units, holds
}

// Two reapers at once over 200 expired holds (and some live ones): every expired unit comes back
// exactly once, the live holds stay, each expiry is published as one event (same id however often
// it is sent), and the gauges and counters add up.
func TestTwoReapersReturnEveryUnitOnce(t *testing.T) {
	t.Parallel()
	b := setup(t, 1000)
	_, expiredHolds := b.hold(t, 200, time.Now().Add(-time.Second))
	liveUnits, _ := b.hold(t, 20, time.Now().Add(time.Hour))

	regs := []*prometheus.Registry{prometheus.NewRegistry(), prometheus.NewRegistry()}
	reapers := []*reaper.Reaper{b.reaper(t, b.brokers, regs[0]), b.reaper(t, b.brokers, regs[1])}
	var mu sync.Mutex
	total := 0
	var wg sync.WaitGroup
	for _, r := range reapers {
		wg.Go(func() {
			for range 5 {
				n, err := r.RunOnce(t.Context())
				if err != nil {
					t.Errorf("RunOnce: %v", err)
				}
				mu.Lock()
				total += n
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if total != 200 {
		t.Fatalf("reapers expired %d holds, want 200", total)
	}
	var expiredMetric float64
	for _, reg := range regs {
		expiredMetric += gather(t, reg, "orderpipe_holds_expired_total")
	}
	if expiredMetric != 200 {
		t.Fatalf("orderpipe_holds_expired_total summed %v, want 200", expiredMetric)
	}
	var liveTotal int64
	for _, sku := range skus {
		st, err := b.store.Availability(t.Context(), sku)
		if err != nil {
			t.Fatal(err)
		}
		if st.Held != liveUnits[sku] || st.ATP != 1000-liveUnits[sku] {
			t.Fatalf("%s: atp %d held %d, want atp %d held %d", sku, st.ATP, st.Held, 1000-liveUnits[sku], liveUnits[sku])
		}
		liveTotal += liveUnits[sku]
	}
	if g := gather(t, regs[0], "orderpipe_holds_active_units"); g != float64(liveTotal) {
		t.Fatalf("orderpipe_holds_active_units %v, want %d", g, liveTotal)
	}
	if left, err := b.store.PendingExpiries(t.Context(), skus); err != nil || len(left) != 0 {
		t.Fatalf("outbox after the runs: %d entries (%v), want none", len(left), err)
	}

	// One event per expired hold: distinct ids, right order, SKU and quantity, keyed by order id.
	byID := map[string]event.HoldExpired{}
	for _, r := range records(t, b.brokers, event.TopicOrderEvents) {
		env, err := event.FromRecord(r)
		if err != nil {
			t.Fatal(err)
		}
		h, err := event.Decode[event.HoldExpired](b.v, env)
		if err != nil {
			t.Fatal(err)
		}
		if string(r.Key) != h.OrderID || env.ID != event.ID(event.TypeHoldExpired, event.HoldSubject(h.OrderID, h.SKU)) {
			t.Fatalf("record key %s id %s for %+v: want the order id and the deterministic id", r.Key, env.ID, h)
		}
		if prev, ok := byID[env.ID]; ok && prev != h {
			t.Fatalf("event %s published with different data: %+v and %+v", env.ID, prev, h)
		}
		byID[env.ID] = h
	}
	if len(byID) != len(expiredHolds) {
		t.Fatalf("%d distinct hold.expired events, want %d", len(byID), len(expiredHolds))
	}
	for _, h := range byID {
		if q, ok := expiredHolds[h.OrderID+"/"+h.SKU]; !ok || q != h.Quantity {
			t.Fatalf("event %+v: want one of the expired holds (qty %d)", h, q)
		}
	}
}

// A reaper that cannot reach the broker still returns the units; the events wait in the outbox
// and the next healthy run publishes them.
func TestExpiryEventsSurviveABrokerOutage(t *testing.T) {
	t.Parallel()
	b := setup(t, 100)
	_, expiredHolds := b.hold(t, 10, time.Now().Add(-time.Second))
	dead, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	deadAddrs := dead.ListenAddrs()
	dead.Close()

	broken := b.reaper(t, deadAddrs, prometheus.NewRegistry())
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	n, err := broken.RunOnce(ctx)
	if n != 10 || err == nil {
		t.Fatalf("run without a broker: expired %d, err %v; want 10 expired and a publish error", n, err)
	}
	for _, sku := range skus {
		if st, _ := b.store.Availability(t.Context(), sku); st.ATP != 100 || st.Held != 0 {
			t.Fatalf("%s after the expiry: %+v, want every unit back", sku, st)
		}
	}
	if left, _ := b.store.PendingExpiries(t.Context(), skus); len(left) != 10 {
		t.Fatalf("outbox: %d entries, want 10 waiting", len(left))
	}

	healthy := b.reaper(t, b.brokers, prometheus.NewRegistry())
	if n, err := healthy.RunOnce(t.Context()); n != 0 || err != nil {
		t.Fatalf("healthy run: expired %d, err %v; want nothing left to expire and no error", n, err)
	}
	if left, _ := b.store.PendingExpiries(t.Context(), skus); len(left) != 0 {
		t.Fatalf("outbox after the healthy run: %d entries, want none", len(left))
	}
	if got := len(records(t, b.brokers, event.TopicOrderEvents)); got != len(expiredHolds) {
		t.Fatalf("%d events published, want %d", got, len(expiredHolds))
	}
}

// Run keeps reaping until its context ends: a hold is returned within a few intervals of its
// deadline.
func TestRunReapsHoldsAsTheyExpire(t *testing.T) {
	t.Parallel()
	b := setup(t, 10)
	r := b.reaper(t, b.brokers, prometheus.NewRegistry())
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx, 20*time.Millisecond) }()
	deadline := time.Now().Add(300 * time.Millisecond)
	if res, err := b.store.Reserve(t.Context(), uuid.NewString(), []redisstore.Line{{SKU: skus[0], Qty: 10}}, deadline); err != nil || !res.OK {
		t.Fatalf("reserve: %+v %v", res, err)
	}
	for {
		st, err := b.store.Availability(t.Context(), skus[0])
		if err != nil {
			t.Fatal(err)
		}
		if st.ATP == 10 {
			break
		}
		if time.Now().After(deadline.Add(5 * time.Second)) {
			t.Fatalf("hold not returned 5s after its deadline: %+v", st)
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run returned %v, want nil", err)
	}
}

func TestSettingsNameTheVariable(t *testing.T) {
	t.Parallel()
	for name, val := range map[string]string{
		"REAPER_INTERVAL": "1ms", "REAPER_BATCH_SKUS": "0", "REAPER_MAX_PER_SKU": "0", "REAPER_SKU_REFRESH": "1ms",
	} {
		var s struct{ reaper.Settings }
		err := config.Load(&s, func(k string) string {
			if k == name {
				return val
			}
			return ""
		})
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Fatalf("%s=%s: got %v, want an error naming %s", name, val, err, name)
		}
	}
	var s struct{ reaper.Settings }
	if err := config.Load(&s, func(string) string { return "" }); err != nil || !s.ReaperEnabled || s.ReaperInterval != time.Second {
		t.Fatalf("defaults: %+v %v", s, err)
	}
}

func gather(t *testing.T, g prometheus.Gatherer, name string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		var sum float64
		for _, m := range mf.GetMetric() {
			switch {
			case m.Counter != nil:
				sum += m.Counter.GetValue()
			case m.Gauge != nil:
				sum += m.Gauge.GetValue()
			}
		}
		return sum
	}
	return 0
}

// records reads every record of topic.
func records(t *testing.T, brokers []string, topic string) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(t.Context(), topic)
	if err != nil {
		t.Fatal(err)
	}
	var want int64
	ends.Each(func(o kadm.ListedOffset) { want += o.Offset })
	var out []*kgo.Record
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	for int64(len(out)) < want {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d records of %s", len(out), want, topic)
		}
		fs.EachRecord(func(r *kgo.Record) { out = append(out, r) })
	}
	return out
}

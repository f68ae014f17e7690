package orderworker_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderpipe/orderpipe/internal/api"
	"github.com/orderpipe/orderpipe/internal/auth"
	"github.com/orderpipe/orderpipe/internal/event"
	"github.com/orderpipe/orderpipe/internal/orderworker"
	"github.com/orderpipe/orderpipe/internal/paysim"
	"github.com/orderpipe/orderpipe/internal/postgres"
	"github.com/orderpipe/orderpipe/internal/redisstore"
	"github.com/orderpipe/orderpipe/internal/testenv"
)

// stack is the pipeline of one test: its own Postgres schema, Redis prefix, broker, payment
// simulator and api, and order-workers started on demand.
type stack struct {
	pool   *pgxpool.Pool
	dbURL  string
	rdb    *redis.Client
	prefix string
	store  *redisstore.Store
	kafka  *kfake.Cluster
	sim    *paysim.Server
	simURL string
	api    *testenv.Proc
	token  string
	stock  map[string]int64
}

var skus = []string{"BRK-PAD-1001", "FLT-OIL-2001", "BAT-5001", "WIP-6001", "TYR-WIN-7101"}

func setup(t *testing.T, sim paysim.Config, stock map[string]int64, brokerOpts ...kfake.Opt) *stack {
	t.Helper()
	s := &stack{stock: stock}
	s.pool, s.dbURL = testenv.Postgres(t)
	s.rdb, s.prefix = testenv.Redis(t)
	s.store = redisstore.New(s.rdb, s.prefix)
	s.kafka = testenv.Kafka(t, brokerOpts...)
	s.sim = paysim.New(sim)
	srv := httptest.NewServer(s.sim.Handler())
	t.Cleanup(srv.Close)
	s.simURL = srv.URL
	ctx := t.Context()
	var products []postgres.Product
	for i, sku := range skus {
		products = append(products, postgres.Product{SKU: sku, Name: "Part " + sku, Category: []string{"brakes", "filters", "batteries", "wipers", "tyres"}[i],
			Brand: "Bosch", PriceMinor: int64(1000 + 250*i), Currency: "EUR", Active: true})
	}
	if _, err := postgres.NewCatalogStore(s.pool).UpsertMany(ctx, products); err != nil {
		t.Fatal(err)
	}
	if _, err := postgres.NewStockStore(s.pool).SeedMissing(ctx, stock); err != nil {
		t.Fatal(err)
	}
	if _, err := s.store.SeedStock(ctx, stock); err != nil {
		t.Fatal(err)
	}
	tok, k, err := auth.Generate("checkout", []string{auth.ScopeOrdersWrite, auth.ScopeOrdersRead})
	if err != nil {
		t.Fatal(err)
	}
	if err := postgres.NewKeyStore(s.pool).Create(ctx, postgres.APIKey{ID: k.ID, Name: k.Name, SecretHash: k.SecretHash, Scopes: k.Scopes}); err != nil {
		t.Fatal(err)
	}
	s.token = tok
	s.api = testenv.Start(t, "api", api.Run, s.env(map[string]string{"API_ADDR": "127.0.0.1:0", "API_DRAIN_DELAY": "0s", "RATE_LIMIT_PER_SECOND": "0"}))
	return s
}

func (s *stack) env(extra map[string]string) map[string]string {
	env := map[string]string{
		"DATABASE_URL":                s.dbURL,
		"DATABASE_MAX_CONNS":          "8",
		"REDIS_ADDRS":                 s.rdb.Options().Addr,
		"REDIS_KEY_PREFIX":            s.prefix,
		"KAFKA_BROKERS":               strings.Join(s.kafka.ListenAddrs(), ","),
		"LOG_LEVEL":                   "info",
		"PAYMENT_URL":                 s.simURL,
		"PAYMENT_TIMEOUT":             "500ms",
		"PAYMENT_MAX_ATTEMPTS":        "2",
		"PAYMENT_BACKOFF_INITIAL":     "20ms",
		"PAYMENT_BACKOFF_MAX":         "100ms",
		"PAYMENT_BREAKER_OPEN_FOR":    "500ms",
		"WORKER_ADMIN_ADDR":           "127.0.0.1:0",
		"ORDER_WORKER_RETRY_IN_PLACE": "2s",
		"ORDER_WORKER_RETRY_TIERS":    "1s,2s",
		"ORDER_WORKER_MAX_STARVE":     "500ms",
	}
	for k, v := range extra {
		env[k] = v
	}
	return env
}

func (s *stack) worker(t *testing.T, extra map[string]string) *testenv.Proc {
	t.Helper()
	return testenv.Start(t, "order-worker", orderworker.Run, s.env(extra))
}

type placed struct {
	id     string
	status int
}

// placeMany posts n orders (each for 1-2 units of a SKU chosen by pick) with concurrency c and
// returns the accepted order ids.
func (s *stack) placeMany(t *testing.T, n, c int, body func(i int) []byte) map[string]bool {
	t.Helper()
	var mu sync.Mutex
	accepted := map[string]bool{}
	sem := make(chan struct{}, c)
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 20 * time.Second}
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			req, _ := http.NewRequest(http.MethodPost, s.api.URL+"/v1/orders", bytes.NewReader(body(i)))
			req.Header.Set("Authorization", "Bearer "+s.token)
			req.Header.Set("Idempotency-Key", uuid.NewString())
			req.Header.Set("Content-Type", "application/json")
			resp, err := client.Do(req)
			if err != nil {
				t.Errorf("order %d: %v", i, err)
				return
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			switch resp.StatusCode {
			case http.StatusAccepted:
				var v struct {
					OrderID string `json:"order_id"`
				}
				_ = json.Unmarshal(b, &v)
				mu.Lock()
				accepted[v.OrderID] = true
				mu.Unlock()
			case http.StatusConflict:
			default:
				t.Errorf("order %d: %d %s", i, resp.StatusCode, b)
			}
		})
	}
	wg.Wait()
	return accepted
}

func orderJSON(token, priority string, lines ...any) []byte {
	type line struct {
		SKU      string `json:"sku"`
		Quantity int    `json:"quantity"`
	}
	var ls []line
	for i := 0; i+1 < len(lines); i += 2 {
		ls = append(ls, line{SKU: lines[i].(string), Quantity: lines[i+1].(int)})
	}
	b, _ := json.Marshal(map[string]any{
		"customer_id": "c-" + uuid.NewString()[:8], "email": "buyer@example.com", "priority": priority, "lines": ls,
		"payment":          map[string]string{"method": "card", "token": token},
		"shipping_address": map[string]string{"name": "Ada Buyer", "line1": "Hauptstr. 1", "city": "Berlin", "postal_code": "10115", "country": "DE"},
	})
	return b
}

// waitDecided waits until every accepted order has a row in Postgres.
func (s *stack) waitDecided(t *testing.T, accepted map[string]bool, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		var n int
		if err := s.pool.QueryRow(t.Context(), `SELECT count(*) FROM orders`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n >= len(accepted) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d accepted orders decided after %s", n, len(accepted), within)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// outcomes counts decided orders by status and reason.
func (s *stack) outcomes(t *testing.T) map[string]int {
	t.Helper()
	rows, err := s.pool.Query(t.Context(), `SELECT status || coalesce('/' || cancel_reason, ''), count(*) FROM orders GROUP BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var k string
		var n int
		if err := rows.Scan(&k, &n); err != nil {
			t.Fatal(err)
		}
		out[k] = n
	}
	return out
}

// snapshot is a checksum of every table order-worker writes, to prove a replay changed nothing.
func (s *stack) snapshot(t *testing.T) string {
	t.Helper()
	var out strings.Builder
	for _, q := range []string{
		`SELECT md5(coalesce(string_agg(id::text || status || coalesce(cancel_reason,'') || coalesce(decided_at::text,''), ',' ORDER BY id), '')) FROM orders`,
		`SELECT md5(coalesce(string_agg(order_id::text || line_no || sku || quantity, ',' ORDER BY order_id, line_no), '')) FROM order_lines`,
		`SELECT md5(coalesce(string_agg(order_id::text || coalesce(provider_id,'') || status, ',' ORDER BY order_id), '')) FROM payments`,
		`SELECT md5(coalesce(string_agg(order_id::text || sku || quantity, ',' ORDER BY order_id, sku), '')) FROM allocations`,
		`SELECT md5(coalesce(string_agg(sku || on_hand || ':' || allocated, ',' ORDER BY sku), '')) FROM stock`,
		`SELECT count(*)::text FROM processed_events`,
	} {
		var v string
		if err := s.pool.QueryRow(t.Context(), q).Scan(&v); err != nil {
			t.Fatal(err)
		}
		out.WriteString(v + ";")
	}
	return out.String()
}

// checkInvariants checks, at rest, the promises I1-I4 and I6 for the accepted orders.
func (s *stack) checkInvariants(t *testing.T, accepted map[string]bool) {
	t.Helper()
	ctx := t.Context()
	// I2: every accepted order is decided, exactly once, and nothing else is.
	rows, err := s.pool.Query(ctx, `SELECT id::text, status FROM orders`)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]string{}
	for rows.Next() {
		var id, st string
		if err := rows.Scan(&id, &st); err != nil {
			t.Fatal(err)
		}
		if !accepted[id] {
			t.Errorf("order %s in Postgres was never accepted", id)
		}
		if st != "confirmed" && st != "cancelled" {
			t.Errorf("order %s is %s, want a terminal status", id, st)
		}
		seen[id] = st
	}
	rows.Close()
	for id := range accepted {
		if _, ok := seen[id]; !ok {
			t.Errorf("I2: accepted order %s has no terminal state", id)
		}
	}
	// I1: no oversell, and allocated is exactly the sum of allocations.
	var bad int
	if err := s.pool.QueryRow(ctx, `
SELECT count(*) FROM stock s
WHERE s.allocated > s.on_hand
   OR s.allocated <> coalesce((SELECT sum(quantity) FROM allocations a WHERE a.sku = s.sku), 0)`).Scan(&bad); err != nil {
		t.Fatal(err)
	}
	if bad != 0 {
		t.Errorf("I1: %d SKUs oversold or with allocations not matching", bad)
	}
	// I3: one capture per order at most; captures match confirmed plus refunded orders.
	st := s.sim.Stats()
	if len(st.DoubleCaptured) > 0 {
		t.Errorf("I3: orders captured twice: %v", st.DoubleCaptured)
	}
	var captured int64
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM payments WHERE status IN ('captured','refunded','refund_pending')`).Scan(&captured); err != nil {
		t.Fatal(err)
	}
	if st.Captures != captured {
		t.Errorf("I3: simulator captured %d, Postgres records %d captured payments", st.Captures, captured)
	}
	var confirmed int64
	_ = s.pool.QueryRow(ctx, `SELECT count(*) FROM orders WHERE status = 'confirmed'`).Scan(&confirmed)
	var refunded int64
	_ = s.pool.QueryRow(ctx, `SELECT count(*) FROM payments WHERE status = 'refunded'`).Scan(&refunded)
	if st.Captures != confirmed+refunded || st.Refunds != refunded {
		t.Errorf("I3: %d captures and %d refunds for %d confirmed and %d refunded orders", st.Captures, st.Refunds, confirmed, refunded)
	}
	// I4 and I6 at rest: no hold left, and Redis availability equals on_hand - allocated.
	levels, err := postgres.NewStockStore(s.pool).All(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range levels {
		r, err := s.store.Availability(ctx, l.SKU)
		if err != nil {
			t.Fatal(err)
		}
		if r.Held != 0 || r.ATP != l.OnHand-l.Allocated {
			t.Errorf("I4/I6: %s redis atp=%d held=%d, postgres on_hand=%d allocated=%d", l.SKU, r.ATP, r.Held, l.OnHand, l.Allocated)
		}
	}
	// Outcome events: one distinct event per decided order, of the matching type.
	events := map[string]string{}
	for _, r := range s.records(t, event.TopicOrderEvents) {
		env, err := event.FromRecord(r)
		if err != nil {
			t.Fatal(err)
		}
		if prev, ok := events[string(r.Key)]; ok && prev != env.ID {
			t.Errorf("order %s has two different outcome events", r.Key)
		}
		events[string(r.Key)] = env.ID
		want := map[string]string{"confirmed": event.TypeOrderConfirmed, "cancelled": event.TypeOrderCancelled}[seen[string(r.Key)]]
		if env.Type != want {
			t.Errorf("order %s is %s but its event is %s", r.Key, seen[string(r.Key)], env.Type)
		}
	}
	if len(events) != len(seen) {
		t.Errorf("%d orders have outcome events, %d are decided", len(events), len(seen))
	}
}

// records reads every record of topic.
func (s *stack) records(t *testing.T, topic string) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.kafka.ListenAddrs()...), kgo.ConsumeTopics(topic),
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

// resetGroup moves the group's committed offsets back to the start of topics (the group must be
// empty), as ops would with orderctl replay.
func (s *stack) resetGroup(t *testing.T, group string, topics ...string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.kafka.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	starts, err := adm.ListStartOffsets(t.Context(), topics...)
	if err != nil {
		t.Fatal(err)
	}
	offsets := kadm.Offsets{}
	starts.Each(func(o kadm.ListedOffset) {
		offsets.Add(kadm.Offset{Topic: o.Topic, Partition: o.Partition, At: o.Offset, LeaderEpoch: -1})
	})
	resp, err := adm.CommitOffsets(t.Context(), group, offsets)
	if err != nil || resp.Error() != nil {
		t.Fatalf("reset %s: %v %v", group, err, resp.Error())
	}
}

var _ = fmt.Sprint

// waitSettled waits until order-worker has committed everything on its source and retry topics
// (lag 0): every record's follow-up steps are done, so the state is at rest.
func (s *stack) waitSettled(t *testing.T, within time.Duration) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.kafka.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	deadline := time.Now().Add(within)
	topics := []string{event.TopicOrdersPlaced, event.TopicOrdersPlacedPriority, event.RetryTopic("order-worker", 1), event.RetryTopic("order-worker", 2)}
	for {
		lag, total := int64(0), int64(0)
		ends, err := adm.ListEndOffsets(t.Context(), topics...)
		if err == nil {
			committed, cerr := adm.FetchOffsets(t.Context(), "order-worker")
			if cerr == nil {
				ends.Each(func(o kadm.ListedOffset) {
					total += o.Offset
					c, ok := committed.Lookup(o.Topic, o.Partition)
					at := int64(0)
					if ok {
						at = c.At
					}
					lag += o.Offset - at
				})
			} else {
				lag = -1
			}
		}
		if err == nil && lag == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("order-worker not settled after %s: lag %d of %d records (%v)", within, lag, total, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

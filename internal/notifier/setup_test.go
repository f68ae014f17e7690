package notifier_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
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
	"github.com/orderpipe/orderpipe/internal/mailsink"
	"github.com/orderpipe/orderpipe/internal/notifier"
	"github.com/orderpipe/orderpipe/internal/orderworker"
	"github.com/orderpipe/orderpipe/internal/paysim"
	"github.com/orderpipe/orderpipe/internal/postgres"
	"github.com/orderpipe/orderpipe/internal/redisstore"
	"github.com/orderpipe/orderpipe/internal/testenv"
)

// stack is one test's world: its Postgres schema, broker and SMTP sink, and on demand the order
// pipeline in front of the notifier (Redis prefix, payment simulator, api, order-worker).
type stack struct {
	pool  *pgxpool.Pool
	dbURL string
	kafka *kfake.Cluster
	sink  *mailsink.Sink
	smtp  string // the address the notifier sends to (the sink, or a proxy in front of it)

	rdb     *redis.Client
	prefix  string
	sim     *paysim.Server
	simURL  string
	api     *testenv.Proc
	token   string // orders:write, orders:read
	reports string // reports:read
}

var skus = []string{"BRK-PAD-1001", "FLT-OIL-2001", "BAT-5001", "WIP-6001", "TYR-WIN-7101"}

var categories = []string{"brakes", "filters", "batteries", "wipers", "tyres"}

func setup(t *testing.T, sink mailsink.Config) *stack {
	t.Helper()
	s := &stack{}
	s.pool, s.dbURL = testenv.Postgres(t)
	s.kafka = testenv.Kafka(t)
	sink.Addr = "127.0.0.1:0"
	var err error
	if s.sink, err = mailsink.Start(sink); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.sink.Close() })
	s.smtp = s.sink.Addr()
	var products []postgres.Product
	for i, sku := range skus {
		products = append(products, postgres.Product{SKU: sku, Name: "Part " + sku, Category: categories[i],
			Brand: "Bosch", PriceMinor: int64(1000 + 250*i), Currency: "EUR", Active: true})
	}
	if _, err := postgres.NewCatalogStore(s.pool).UpsertMany(t.Context(), products); err != nil {
		t.Fatal(err)
	}
	return s
}

// pipeline starts what sits in front of the notifier: payment simulator and api (order-workers
// start with worker).
func (s *stack) pipeline(t *testing.T, sim paysim.Config, stock map[string]int64) {
	t.Helper()
	ctx := t.Context()
	s.rdb, s.prefix = testenv.Redis(t)
	store := redisstore.New(s.rdb, s.prefix)
	s.sim = paysim.New(sim)
	srv := httptest.NewServer(s.sim.Handler())
	t.Cleanup(srv.Close)
	s.simURL = srv.URL
	if _, err := postgres.NewStockStore(s.pool).SeedMissing(ctx, stock); err != nil {
		t.Fatal(err)
	}
	if _, err := store.SeedStock(ctx, stock); err != nil {
		t.Fatal(err)
	}
	mk := func(name string, scopes ...string) string {
		tok, k, err := auth.Generate(name, scopes)
		if err != nil {
			t.Fatal(err)
		}
		if err := postgres.NewKeyStore(s.pool).Create(ctx, postgres.APIKey{ID: k.ID, Name: k.Name, SecretHash: k.SecretHash, Scopes: k.Scopes}); err != nil {
			t.Fatal(err)
		}
		return tok
	}
	s.token = mk("checkout", auth.ScopeOrdersWrite, auth.ScopeOrdersRead)
	s.reports = mk("managers", auth.ScopeReportsRead)
	s.api = testenv.Start(t, "api", api.Run, s.env(map[string]string{"API_ADDR": "127.0.0.1:0", "API_DRAIN_DELAY": "0s", "RATE_LIMIT_PER_SECOND": "0"}))
}

func (s *stack) env(extra map[string]string) map[string]string {
	host, port, _ := net.SplitHostPort(s.smtp)
	env := map[string]string{
		"DATABASE_URL":                s.dbURL,
		"DATABASE_MAX_CONNS":          "4",
		"KAFKA_BROKERS":               strings.Join(s.kafka.ListenAddrs(), ","),
		"KAFKA_SESSION_TIMEOUT":       "6s",
		"LOG_LEVEL":                   "info",
		"WORKER_ADMIN_ADDR":           "127.0.0.1:0",
		"ORDER_WORKER_RETRY_IN_PLACE": "2s",
		"ORDER_WORKER_RETRY_TIERS":    "1s,2s",
		"ORDER_WORKER_MAX_STARVE":     "500ms",
		"PAYMENT_URL":                 s.simURL,
		"PAYMENT_TIMEOUT":             "500ms",
		"PAYMENT_MAX_ATTEMPTS":        "2",
		"PAYMENT_BACKOFF_INITIAL":     "20ms",
		"PAYMENT_BACKOFF_MAX":         "100ms",
		"NOTIFIER_ADMIN_ADDR":         "127.0.0.1:0",
		"NOTIFIER_RETRY_IN_PLACE":     "1s",
		"NOTIFIER_RETRY_TIERS":        "2s,4s",
		"REPORTS_RETRY_TIERS":         "2s",
		"NOTIFIER_SEND_LEASE":         "2s",
		"NOTIFIER_LAG_CHECK_INTERVAL": "100ms",
		"SMTP_HOST":                   host,
		"SMTP_PORT":                   port,
		"SMTP_TLS":                    "off",
		"SMTP_TIMEOUT":                "1s",
		"MAIL_FROM":                   "Auto Parts Shop <orders@shop.example>",
		"MAIL_ORDER_BASE_URL":         "https://shop.example/orders/",
	}
	if s.rdb != nil {
		env["REDIS_ADDRS"], env["REDIS_KEY_PREFIX"] = s.rdb.Options().Addr, s.prefix
	}
	for k, v := range extra {
		env[k] = v
	}
	return env
}

func (s *stack) notifier(t *testing.T, extra map[string]string) *testenv.Proc {
	t.Helper()
	return testenv.Start(t, "notifier", notifier.Run, s.env(extra))
}

func (s *stack) worker(t *testing.T, extra map[string]string) *testenv.Proc {
	t.Helper()
	return testenv.Start(t, "order-worker", orderworker.Run, s.env(extra))
}

// placeMany posts n orders with concurrency c and returns the accepted ids with their e-mail
// addresses.
func (s *stack) placeMany(t *testing.T, n, c int, body func(i int) []byte) map[string]string {
	t.Helper()
	var mu sync.Mutex
	accepted := map[string]string{}
	sem := make(chan struct{}, c)
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 20 * time.Second}
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			b := body(i)
			req, _ := http.NewRequest(http.MethodPost, s.api.URL+"/v1/orders", bytes.NewReader(b))
			req.Header.Set("Authorization", "Bearer "+s.token)
			req.Header.Set("Idempotency-Key", uuid.NewString())
			req.Header.Set("Content-Type", "application/json")
			resp, err := client.Do(req)
			if err != nil {
				t.Errorf("order %d: %v", i, err)
				return
			}
			defer resp.Body.Close()
			rb, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusAccepted {
				t.Errorf("order %d: %d %s", i, resp.StatusCode, rb)
				return
			}
			var v struct {
				OrderID string `json:"order_id"`
			}
			var in struct {
				Email string `json:"email"`
			}
			_ = json.Unmarshal(rb, &v)
			_ = json.Unmarshal(b, &in)
			mu.Lock()
			accepted[v.OrderID] = in.Email
			mu.Unlock()
		})
	}
	wg.Wait()
	return accepted
}

func orderJSON(email, token, priority string, lines ...any) []byte {
	type line struct {
		SKU      string `json:"sku"`
		Quantity int    `json:"quantity"`
	}
	var ls []line
	for i := 0; i+1 < len(lines); i += 2 {
		ls = append(ls, line{SKU: lines[i].(string), Quantity: lines[i+1].(int)})
	}
	b, _ := json.Marshal(map[string]any{
		"customer_id": "c-" + uuid.NewString()[:8], "email": email, "priority": priority, "lines": ls,
		"payment":          map[string]string{"method": "card", "token": token},
		"shipping_address": map[string]string{"name": "Ada Buyer", "line1": "Hauptstr. 1", "city": "Berlin", "postal_code": "10115", "country": "DE"},
	})
	return b
}

// waitDecided waits until n orders have a row in Postgres.
func (s *stack) waitDecided(t *testing.T, n int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		var got int
		if err := s.pool.QueryRow(t.Context(), `SELECT count(*) FROM orders`).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d orders decided after %s", got, n, within)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitCommitted waits until group has committed every record of topics (lag 0): all its work on
// them is durable.
func (s *stack) waitCommitted(t *testing.T, group string, topics []string, within time.Duration) {
	t.Helper()
	adm := s.admin(t)
	deadline := time.Now().Add(within)
	for {
		lag, total := int64(-1), int64(0)
		ends, err := adm.ListEndOffsets(t.Context(), topics...)
		if err == nil {
			committed, cerr := adm.FetchOffsets(t.Context(), group)
			if cerr == nil {
				lag = 0
				ends.Each(func(o kadm.ListedOffset) {
					total += o.Offset
					at := int64(0)
					if c, ok := committed.Lookup(o.Topic, o.Partition); ok {
						at = c.At
					}
					lag += o.Offset - at
				})
			}
		}
		if lag == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not caught up after %s: lag %d of %d records on %v (%v)", group, within, lag, total, topics, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (s *stack) admin(t *testing.T) *kadm.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.kafka.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return kadm.NewClient(cl)
}

// resetGroup moves an (empty) group's offsets back to the start of topic, as a replay would.
func (s *stack) resetGroup(t *testing.T, group, topic string) {
	t.Helper()
	adm := s.admin(t)
	starts, err := adm.ListStartOffsets(t.Context(), topic)
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

// produce writes events to orders.events, keyed by order id, and waits for the broker.
func (s *stack) produce(t *testing.T, recs ...*kgo.Record) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.kafka.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(t.Context(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// outcome builds the OrderConfirmed (reason empty) or OrderCancelled event of a one-line order.
func outcome(t *testing.T, email, reason string, sku string, qty int, placed time.Time) (string, *kgo.Record) {
	t.Helper()
	id, _ := uuid.NewV7()
	orderID := id.String()
	price := int64(1000)
	lines := []event.OrderLine{{LineNo: 1, SKU: sku, Name: "Part " + sku, Quantity: qty, UnitPriceMinor: price, LineTotalMinor: price * int64(qty)}}
	addr := event.Address{Name: "Ada Buyer", Line1: "Hauptstr. 1", City: "Berlin", PostalCode: "10115", Country: "DE"}
	var data event.Data = event.OrderConfirmed{OrderID: orderID, CustomerID: "c-1", Email: email, Priority: "standard", Currency: "EUR",
		Lines: lines, SubtotalMinor: price * int64(qty), TotalMinor: price * int64(qty), ShippingAddress: addr, PlacedAt: placed,
		ConfirmedAt: placed.Add(time.Second), PaymentID: "ch_" + orderID[:8]}
	if reason != "" {
		data = event.OrderCancelled{OrderID: orderID, CustomerID: "c-1", Email: email, Priority: "standard", Currency: "EUR",
			Lines: lines, SubtotalMinor: price * int64(qty), TotalMinor: price * int64(qty), ShippingAddress: addr, PlacedAt: placed,
			CancelledAt: placed.Add(time.Second), Reason: reason}
	}
	env, err := event.NewEnvelope("test", orderID, placed.Add(time.Second), data)
	if err != nil {
		t.Fatal(err)
	}
	v, err := event.NewValidator()
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Validate(env.Type, env.Data); err != nil {
		t.Fatal(err)
	}
	return orderID, env.Record(event.TopicOrderEvents, []byte(orderID))
}

// metric returns the sum of the samples of name (any labels) on a process's /metrics.
func metric(t *testing.T, url, name string) float64 {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var sum float64
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, name+" ") && !strings.HasPrefix(line, name+"{") {
			continue
		}
		f := strings.Fields(line)
		v, _ := strconv.ParseFloat(f[len(f)-1], 64)
		sum += v
	}
	return sum
}

// byMessageID counts received messages per Message-ID.
func (s *stack) byMessageID() map[string]int {
	out := map[string]int{}
	for _, m := range s.sink.Messages() {
		out[m.MessageID]++
	}
	return out
}

var _ = fmt.Sprint

package notifier_test

import (
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderpipe/orderpipe/internal/auth"
	"github.com/orderpipe/orderpipe/internal/event"
	"github.com/orderpipe/orderpipe/internal/mailsink"
	"github.com/orderpipe/orderpipe/internal/notifier"
	"github.com/orderpipe/orderpipe/internal/orderworker"
	"github.com/orderpipe/orderpipe/internal/paysim"
	"github.com/orderpipe/orderpipe/internal/postgres"
	"github.com/orderpipe/orderpipe/internal/testenv"
)

// stack is one test's world: its Postgres schema, broker and SMTP sink, and, for the tests that
// call setupPipeline, the order pipeline in front of the notifier (testenv.Pipeline: Redis
// prefix, payment simulator, api, order-workers) on that schema and broker.
type stack struct {
	pool  *pgxpool.Pool
	dbURL string
	kafka *kfake.Cluster
	sink  *mailsink.Sink
	smtp  string // the address the notifier sends to (the sink, or a proxy in front of it)

	*testenv.Pipeline        // nil without setupPipeline
	reports           string // reports:read
}

var skus = []string{"BRK-PAD-1001", "FLT-OIL-2001", "BAT-5001", "WIP-6001", "TYR-WIN-7101"}

var categories = []string{"brakes", "filters", "batteries", "wipers", "tyres"}

// products is the catalog of the five SKUs.
func products() []postgres.Product {
	var out []postgres.Product
	for i, sku := range skus {
		out = append(out, postgres.Product{SKU: sku, Name: "Part " + sku, Category: categories[i],
			Brand: "Bosch", PriceMinor: int64(1000 + 250*i), Currency: "EUR", Active: true})
	}
	return out
}

// startSink starts the SMTP sink of s.
func (s *stack) startSink(t *testing.T, sink mailsink.Config) {
	t.Helper()
	sink.Addr = "127.0.0.1:0"
	var err error
	if s.sink, err = mailsink.Start(sink); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.sink.Close() })
	s.smtp = s.sink.Addr()
}

func setup(t *testing.T, sink mailsink.Config) *stack {
	t.Helper()
	s := &stack{}
	s.pool, s.dbURL = testenv.Postgres(t)
	s.kafka = testenv.Kafka(t)
	s.startSink(t, sink)
	if _, err := postgres.NewCatalogStore(s.pool).UpsertMany(t.Context(), products()); err != nil {
		t.Fatal(err)
	}
	return s
}

// setupPipeline is setup with the order pipeline in front of the notifier: payment simulator
// and api (order-workers start with worker).
func setupPipeline(t *testing.T, sink mailsink.Config, sim paysim.Config, stock map[string]int64) *stack {
	t.Helper()
	s := &stack{}
	s.startSink(t, sink)
	s.Pipeline = testenv.NewPipeline(t, testenv.PipelineOptions{Products: products(), Stock: stock, Payment: sim,
		// The settings of these tests for every process; the breaker at its default.
		Env:  s.settings(map[string]string{"DATABASE_MAX_CONNS": "4", "PAYMENT_BREAKER_OPEN_FOR": ""}),
		Keys: map[string][]string{"managers": {auth.ScopeReportsRead}}})
	s.pool, s.dbURL, s.kafka = s.Pool, s.DBURL, s.Kafka
	s.reports = s.Keys["managers"]
	return s
}

// settings are the notifier's, order-worker's and payment client's settings of these tests
// (the SMTP server is s.smtp as it is now), then extra.
func (s *stack) settings(extra map[string]string) map[string]string {
	host, port, _ := net.SplitHostPort(s.smtp)
	env := map[string]string{
		"KAFKA_SESSION_TIMEOUT":       "6s",
		"LOG_LEVEL":                   "info",
		"WORKER_ADMIN_ADDR":           "127.0.0.1:0",
		"ORDER_WORKER_RETRY_IN_PLACE": "2s",
		"ORDER_WORKER_RETRY_TIERS":    "1s,2s",
		"ORDER_WORKER_MAX_STARVE":     "500ms",
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
	for k, v := range extra {
		env[k] = v
	}
	return env
}

// env is the environment of a process: the pipeline's (Redis and payment simulator included)
// with the settings of these tests, or without a pipeline the Postgres schema and broker of
// setup.
func (s *stack) env(extra map[string]string) map[string]string {
	if s.Pipeline != nil {
		return s.Env(s.settings(extra))
	}
	env := map[string]string{
		"DATABASE_URL":       s.dbURL,
		"DATABASE_MAX_CONNS": "4",
		"KAFKA_BROKERS":      strings.Join(s.kafka.ListenAddrs(), ","),
	}
	for k, v := range s.settings(extra) {
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
// addresses; any answer but 202 fails the test.
func (s *stack) placeMany(t *testing.T, n, c int, body func(i int) []byte) map[string]string {
	t.Helper()
	accepted := map[string]string{}
	s.PlaceEach(t, n, c, body, func(i int, req []byte, a testenv.Answer) {
		if a.Status != http.StatusAccepted {
			t.Errorf("order %d: %d %s", i, a.Status, a.Body)
			return
		}
		var in struct {
			Email string `json:"email"`
		}
		_ = json.Unmarshal(req, &in)
		accepted[a.OrderID] = in.Email
	})
	return accepted
}

func orderJSON(email, token, priority string, lines ...any) []byte {
	return testenv.OrderJSONFor(email, token, priority, lines...)
}

// waitCommitted waits until group has committed every record of topics (lag 0): all its work on
// them is durable.
func (s *stack) waitCommitted(t *testing.T, group string, topics []string, within time.Duration) {
	t.Helper()
	testenv.WaitCommitted(t, s.kafka, group, topics, within)
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
	return testenv.Records(t, s.kafka, topic)
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

// byMessageID counts received messages per Message-ID.
func (s *stack) byMessageID() map[string]int {
	out := map[string]int{}
	for _, m := range s.sink.Messages() {
		out[m.MessageID]++
	}
	return out
}

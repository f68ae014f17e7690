package inventorysync_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderpipe/orderpipe/internal/event"
	"github.com/orderpipe/orderpipe/internal/inventorysync"
	"github.com/orderpipe/orderpipe/internal/postgres"
	"github.com/orderpipe/orderpipe/internal/redisstore"
	"github.com/orderpipe/orderpipe/internal/testenv"
)

// stack is what one test runs against: its own Postgres schema, Redis prefix and broker, a
// catalog, and inventory-sync processes started on demand.
type stack struct {
	pool   *pgxpool.Pool
	dbURL  string
	rdb    *redis.Client
	prefix string
	redis  *redisstore.Store
	inv    *postgres.InventoryStore
	kafka  *kfake.Cluster
	broker string
}

func setup(t testing.TB, skus []string, stock map[string]int64) *stack {
	t.Helper()
	s := &stack{}
	s.pool, s.dbURL = testenv.Postgres(t)
	s.rdb, s.prefix = testenv.Redis(t)
	s.redis = redisstore.New(s.rdb, s.prefix)
	s.inv = postgres.NewInventoryStore(s.pool)
	s.kafka = testenv.Kafka(t)
	s.broker = s.kafka.ListenAddrs()[0]
	ctx := t.Context()
	var products []postgres.Product
	for _, sku := range skus {
		products = append(products, postgres.Product{SKU: sku, Name: "Part " + sku, Category: "brakes", Brand: "Bosch", PriceMinor: 1000, Currency: "EUR", Active: true})
	}
	if _, err := postgres.NewCatalogStore(s.pool).UpsertMany(ctx, products); err != nil {
		t.Fatal(err)
	}
	if _, err := postgres.NewStockStore(s.pool).SeedMissing(ctx, stock); err != nil {
		t.Fatal(err)
	}
	if _, err := s.redis.SeedStock(ctx, stock); err != nil {
		t.Fatal(err)
	}
	return s
}

func (s *stack) env(extra map[string]string) map[string]string {
	env := map[string]string{
		"DATABASE_URL":                  s.dbURL,
		"DATABASE_MAX_CONNS":            "4",
		"REDIS_ADDRS":                   s.rdb.Options().Addr,
		"REDIS_KEY_PREFIX":              s.prefix,
		"KAFKA_BROKERS":                 strings.Join(s.kafka.ListenAddrs(), ","),
		"KAFKA_SESSION_TIMEOUT":         "6s",
		"LOG_LEVEL":                     "info",
		"INVENTORY_ADMIN_ADDR":          "127.0.0.1:0",
		"INVENTORY_SYNC_RETRY_IN_PLACE": "1s",
		"INVENTORY_SYNC_MAX_BACKOFF":    "200ms",
		"INVENTORY_SHUTDOWN_TIMEOUT":    "10s",
	}
	for k, v := range extra {
		env[k] = v
	}
	return env
}

func (s *stack) sync(t *testing.T, extra map[string]string) *testenv.Proc {
	t.Helper()
	return testenv.Start(t, "inventory-sync", inventorysync.Run, s.env(extra))
}

// msg is one stock event as a warehouse publishes it with kcat.
type msg struct {
	id, typ, source, key string
	data                 string // the JSON value, one line
}

// kcatArgs is the producer command line the README shows (For warehouse integrators).
func kcatArgs(broker string, m msg) []string {
	return []string{"-P", "-b", broker, "-t", event.TopicInventoryStock, "-X", "topic.partitioner=murmur2_random",
		"-k", m.key,
		"-H", "ce_specversion=1.0", "-H", "ce_id=" + m.id, "-H", "ce_type=" + m.typ,
		"-H", "ce_source=" + m.source, "-H", "content-type=application/json"}
}

// kcat publishes m with the real kcat binary and fails the test if kcat reports anything.
func (s *stack) kcat(t *testing.T, m msg) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "kcat", kcatArgs(s.broker, m)...)
	cmd.Stdin = strings.NewReader(m.data + "\n")
	out, err := cmd.CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("kcat %s: %v: %s", m.id, err, out)
	}
}

// kcatAll publishes each SKU's messages in their order (one kcat at a time per SKU: a partition
// keeps the order in which they were written), several SKUs at once.
func (s *stack) kcatAll(t *testing.T, bySKU map[string][]msg) {
	t.Helper()
	var wg sync.WaitGroup
	for _, ms := range bySKU {
		wg.Go(func() {
			for _, m := range ms {
				if t.Failed() {
					return
				}
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				cmd := exec.CommandContext(ctx, "kcat", kcatArgs(s.broker, m)...)
				cmd.Stdin = strings.NewReader(m.data + "\n")
				out, err := cmd.CombinedOutput()
				cancel()
				if err != nil || len(strings.TrimSpace(string(out))) > 0 {
					t.Errorf("kcat %s: %v: %s", m.id, err, out)
					return
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
}

func levelMsg(id, wh, sku string, seq, onHand int64) msg {
	return msg{id: id, typ: event.TypeStockLevel, source: "warehouse/" + wh, key: sku,
		data: fmt.Sprintf(`{"warehouse_id":%q,"sku":%q,"seq":%d,"occurred_at":"2026-11-26T09:00:00Z","on_hand":%d}`, wh, sku, seq, onHand)}
}

func adjustMsg(id, wh, sku string, seq, delta int64, reason string) msg {
	return msg{id: id, typ: event.TypeStockAdjusted, source: "warehouse/" + wh, key: sku,
		data: fmt.Sprintf(`{"warehouse_id":%q,"sku":%q,"seq":%d,"occurred_at":"2026-11-26T10:00:00Z","delta":%d,"reason":%q}`, wh, sku, seq, delta, reason)}
}

func shipMsg(id, wh, sku string, seq int64, orderID string, qty int64) msg {
	return msg{id: id, typ: event.TypeStockShipped, source: "warehouse/" + wh, key: sku,
		data: fmt.Sprintf(`{"warehouse_id":%q,"sku":%q,"seq":%d,"occurred_at":"2026-11-26T11:%02d:00Z","order_id":%q,"quantity":%d}`, wh, sku, seq, seq%60, orderID, qty)}
}

// waitSettled waits until the group has committed every record of inventory.stock (lag 0):
// every event's Postgres and Redis steps are done.
func (s *stack) waitSettled(t *testing.T, group string, within time.Duration) {
	t.Helper()
	testenv.WaitCommitted(t, s.kafka, group, []string{event.TopicInventoryStock}, within)
}

// records reads every record of topic.
func (s *stack) records(t *testing.T, topic string) []*kgo.Record {
	t.Helper()
	return testenv.Records(t, s.kafka, topic)
}

type stockRow struct{ OnHand, Allocated, Shortfall int64 }

func (s *stack) stock(t *testing.T, sku string) stockRow {
	t.Helper()
	var r stockRow
	if err := s.pool.QueryRow(t.Context(), `SELECT on_hand, allocated, shortfall FROM stock WHERE sku = $1`, sku).Scan(&r.OnHand, &r.Allocated, &r.Shortfall); err != nil {
		t.Fatalf("stock of %s: %v", sku, err)
	}
	return r
}

// confirm stores a confirmed order the way order-worker does: hold in Redis, allocate in
// Postgres, confirm the hold. lines are (sku, qty) pairs.
func (s *stack) confirm(t *testing.T, lines ...any) string {
	t.Helper()
	var ls []postgres.OrderLine
	for i := 0; i+1 < len(lines); i += 2 {
		sku, qty := lines[i].(string), lines[i+1].(int)
		ls = append(ls, postgres.OrderLine{LineNo: i/2 + 1, SKU: sku, Name: "Part " + sku, Quantity: qty, UnitPriceMinor: 1000})
	}
	return s.confirmLines(t, ls...)
}

// confirmLines is confirm with the order's lines as given (one line per SKU).
func (s *stack) confirmLines(t *testing.T, lines ...postgres.OrderLine) string {
	t.Helper()
	ctx := t.Context()
	id := uuid.NewString()
	o := postgres.Order{ID: id, Status: "confirmed", CustomerID: "c-1", Email: "buyer@example.com", Priority: "standard", Currency: "EUR",
		ShippingAddress: json.RawMessage(`{"name":"Ada Buyer","line1":"Hauptstr. 1","city":"Berlin","postal_code":"10115","country":"DE"}`),
		PlacedAt:        time.Now().UTC().Truncate(time.Microsecond), HoldDeadline: time.Now().Add(time.Hour), Lines: lines}
	var rl []redisstore.Line
	for _, l := range lines {
		o.SubtotalMinor += int64(l.Quantity) * l.UnitPriceMinor
		rl = append(rl, redisstore.Line{SKU: l.SKU, Qty: int64(l.Quantity)})
	}
	o.TotalMinor = o.SubtotalMinor
	if _, err := s.redis.Reserve(ctx, id, rl, o.HoldDeadline); err != nil {
		t.Fatal(err)
	}
	ds, err := postgres.NewProcessingStore(s.pool).Apply(ctx, "order-worker", []postgres.Candidate{{
		EventID: uuid.NewString(), Order: o,
		Payment: postgres.Payment{ProviderID: "ch_" + id[:8], Status: postgres.PaymentCaptured, AmountMinor: o.TotalMinor, Currency: "EUR"},
	}}, time.Now())
	if err != nil || len(ds) != 1 || ds[0].Status != "confirmed" {
		t.Fatalf("confirm order: got %+v, %v", ds, err)
	}
	if _, err := s.redis.Confirm(ctx, id, rl); err != nil {
		t.Fatal(err)
	}
	return id
}

func (s *stack) orderStatus(t *testing.T, id string) string {
	t.Helper()
	var st string
	if err := s.pool.QueryRow(t.Context(), `SELECT status FROM orders WHERE id = $1`, id).Scan(&st); err != nil {
		t.Fatal(err)
	}
	return st
}

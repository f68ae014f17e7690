// Package workerbench measures order-worker's persistence throughput: the batch design (one
// Postgres transaction per poll batch, one conditional stock update per SKU per batch) beside a
// one-transaction-per-message arm, and a replay of an already-processed range (all duplicates),
// in the same run on the same machine. It drives the real order-worker process (orderworker.Run)
// over a topic pre-filled with valid OrderPlaced records, against real Postgres and Redis, an
// in-process broker and an in-process payment simulator without latency (the provider is not what
// is measured; each order still makes its real HTTP charge).
package workerbench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"github.com/google/uuid"
	"io"
	"net/http/httptest"
	"net/url"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderpipe/orderpipe/internal/event"
	"github.com/orderpipe/orderpipe/internal/kafka"
	"github.com/orderpipe/orderpipe/internal/orderworker"
	"github.com/orderpipe/orderpipe/internal/paysim"
	"github.com/orderpipe/orderpipe/internal/postgres"
	"github.com/orderpipe/orderpipe/internal/redisstore"
	"github.com/orderpipe/orderpipe/internal/topology"
)

const perMessageGroup = "bench-per-message"

// Config sizes the run.
type Config struct {
	DatabaseURL string // a database where the run may create and drop its schemas
	RedisAddr   string
	Orders      int           // records pre-filled for the batch and replay arms
	BatchSize   int           // the batch arm's ORDER_WORKER_BATCH_SIZE
	PerMessage  time.Duration // how long the per-message arm runs (it is slow; its rate is what counts)
	Log         io.Writer     // progress
}

// Arm is one measured run.
type Arm struct {
	Name      string
	Orders    int
	Elapsed   time.Duration
	PerSecond float64
	Rows      RowCounts // after the arm
}

// RowCounts are the rows order-worker wrote.
type RowCounts struct {
	Orders, Lines, Payments, Allocations, Processed int64
}

// Report is the outcome of Run.
type Report struct {
	Started                   time.Time
	Batch, PerMessage, Replay Arm
	ReplayInsertedNothing     bool
	BatchVsPerMessage         float64 // batch orders/s over per-message orders/s
	ReplayVsBatch             float64 // replay records/s over batch orders/s
	Poison                    PoisonArms
	LoadAverage               string // /proc/loadavg (1, 5, 15 minutes) when the run started
}

// PoisonArms compares a batch of PoisonBatch orders with one poison record in the middle (an
// order Postgres refuses: a NUL in customer_id) against a clean batch of the same size,
// alternating, Rounds times each.
type PoisonArms struct {
	Rounds int
	Clean  []time.Duration // time until every order of the clean batch was decided
	Poison []time.Duration // time until the other orders of the poisoned batch were decided
	Undone bool            // in every poisoned round: the poison order refunded, recorded, dead-lettered once, nothing in the retry topics
}

// PoisonBatch is the size of the batches of the poison comparison, and PoisonAt the index of the
// poison record in its batch.
const (
	PoisonBatch = 500
	PoisonAt    = PoisonBatch / 2
)

// Run measures the three arms.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	rep := &Report{Started: time.Now().UTC(), LoadAverage: loadAverage()}
	logf := func(format string, args ...any) {
		if cfg.Log != nil {
			fmt.Fprintf(cfg.Log, format+"\n", args...)
		}
	}
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		return nil, fmt.Errorf("start broker: %w", err)
	}
	defer cluster.Close()
	brokers := strings.Join(cluster.ListenAddrs(), ",")
	if err := provision(ctx, cluster.ListenAddrs()); err != nil {
		return nil, err
	}
	sim := paysim.New(paysim.Config{Seed: 1})
	simSrv := httptest.NewServer(sim.Handler())
	defer simSrv.Close()
	rdb := redis.NewClient(&redis.Options{Addr: cfg.RedisAddr})
	defer rdb.Close()
	prefix := "bench:" + RandHex(6) + ":"
	defer func() { _ = redisstore.DeleteKeys(context.Background(), rdb, prefix+"*") }()
	store := redisstore.New(rdb, prefix)

	skus := []string{"BENCH-HOT-1", "BENCH-HOT-2", "BENCH-A-1", "BENCH-A-2", "BENCH-A-3", "BENCH-A-4", "BENCH-A-5", "BENCH-A-6"}
	logf("workerbench: producing %d OrderPlaced records", cfg.Orders)
	if err := prefill(ctx, cluster.ListenAddrs(), store, skus, cfg.Orders); err != nil {
		return nil, err
	}

	arm := func(name, group string, schemaURL string, pool *pgxpool.Pool, batch int, limit time.Duration, want int) (Arm, error) {
		env := workerEnv(cfg, prefix, brokers, simSrv.URL, schemaURL, group, batch)
		wctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		start := time.Now()
		go func() { done <- orderworker.Run(wctx, nil, func(k string) string { return env[k] }, io.Discard) }()
		var processed int64
		var err error
		for {
			processed, err = countProcessed(ctx, pool, group)
			if err != nil || int(processed) >= want || time.Since(start) > limit {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		cancel()
		if rerr := <-done; rerr != nil && err == nil {
			err = rerr
		}
		// The worker finished the message in hand while stopping: count after it stopped.
		elapsed := time.Since(start)
		if err == nil {
			processed, err = countProcessed(ctx, pool, group)
		}
		if err != nil {
			return Arm{}, fmt.Errorf("%s: %w", name, err)
		}
		rows, err := counts(ctx, pool)
		if err != nil {
			return Arm{}, err
		}
		a := Arm{Name: name, Orders: int(processed), Elapsed: elapsed, PerSecond: float64(processed) / elapsed.Seconds(), Rows: rows}
		logf("workerbench: %s: %d orders in %s = %.0f/s", name, a.Orders, elapsed.Round(time.Millisecond), a.PerSecond)
		return a, nil
	}

	// Batch arm and the per-message arm each get a fresh schema (same catalog and stock).
	batchPool, batchURL, dropBatch, err := schema(ctx, cfg.DatabaseURL, skus)
	if err != nil {
		return nil, err
	}
	defer dropBatch()
	if rep.Batch, err = arm("batch", topology.GroupOrderWorker, batchURL, batchPool, cfg.BatchSize, 10*time.Minute, cfg.Orders); err != nil {
		return nil, err
	}
	msgPool, msgURL, dropMsg, err := schema(ctx, cfg.DatabaseURL, skus)
	if err != nil {
		return nil, err
	}
	defer dropMsg()
	if rep.PerMessage, err = arm("one transaction per message", perMessageGroup, msgURL, msgPool, 1, cfg.PerMessage, cfg.Orders); err != nil {
		return nil, err
	}
	// Replay: the batch arm's group rewound to the start; every record is a duplicate.
	if err := rewind(ctx, cluster.ListenAddrs(), topology.GroupOrderWorker); err != nil {
		return nil, err
	}
	rep.Replay, err = replayArm(ctx, cfg, workerEnv(cfg, prefix, brokers, simSrv.URL, batchURL, topology.GroupOrderWorker, cfg.BatchSize), cluster.ListenAddrs(), batchPool, logf)
	if err != nil {
		return nil, err
	}
	if rep.Poison, err = poisonArms(ctx, cfg, prefix, store, simSrv.URL, sim, skus, logf); err != nil {
		return nil, err
	}
	rep.ReplayInsertedNothing = rep.Replay.Rows == rep.Batch.Rows
	rep.BatchVsPerMessage = rep.Batch.PerSecond / rep.PerMessage.PerSecond
	rep.ReplayVsBatch = rep.Replay.PerSecond / rep.Batch.PerSecond
	if st := sim.Stats(); len(st.DoubleCaptured) > 0 {
		return rep, fmt.Errorf("double captures during the benchmark: %v", st.DoubleCaptured)
	}
	return rep, nil
}

// workerEnv is the environment of one order-worker run.
func workerEnv(cfg Config, prefix, brokers, payURL, dbURL, group string, batch int) map[string]string {
	return map[string]string{
		"DATABASE_URL": dbURL, "DATABASE_MAX_CONNS": "8", "REDIS_ADDRS": cfg.RedisAddr, "REDIS_KEY_PREFIX": prefix,
		"KAFKA_BROKERS": brokers, "LOG_LEVEL": "warn", "PAYMENT_URL": payURL, "WORKER_ADMIN_ADDR": "127.0.0.1:0",
		"ORDER_WORKER_GROUP": group, "ORDER_WORKER_BATCH_SIZE": fmt.Sprint(batch), "ORDER_WORKER_RETRY_TIERS": "30s,5m",
	}
}

// replayArm runs the worker over the rewound group until its lag is zero again.
func replayArm(ctx context.Context, cfg Config, env map[string]string, brokers []string, pool *pgxpool.Pool, logf func(string, ...any)) (Arm, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return Arm{}, err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- orderworker.Run(wctx, nil, func(k string) string { return env[k] }, io.Discard) }()
	var lagErr error
	for {
		lag, err := groupLag(ctx, adm, topology.GroupOrderWorker)
		if err != nil {
			lagErr = err
			break
		}
		if lag == 0 {
			break
		}
		if time.Since(start) > 10*time.Minute {
			lagErr = fmt.Errorf("replay did not finish in 10 minutes (lag %d)", lag)
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	elapsed := time.Since(start)
	cancel()
	if err := <-done; err != nil && lagErr == nil {
		lagErr = err
	}
	if lagErr != nil {
		return Arm{}, fmt.Errorf("replay: %w", lagErr)
	}
	rows, err := counts(ctx, pool)
	if err != nil {
		return Arm{}, err
	}
	a := Arm{Name: "replay (all duplicates)", Orders: cfg.Orders, Elapsed: elapsed, PerSecond: float64(cfg.Orders) / elapsed.Seconds(), Rows: rows}
	logf("workerbench: %s: %d records in %s = %.0f/s", a.Name, a.Orders, elapsed.Round(time.Millisecond), a.PerSecond)
	return a, nil
}

func groupLag(ctx context.Context, adm *kadm.Client, group string) (int64, error) {
	ends, err := adm.ListEndOffsets(ctx, event.TopicOrdersPlaced, event.TopicOrdersPlacedPriority)
	if err != nil {
		return 0, err
	}
	committed, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		return 0, err
	}
	var lag int64
	ends.Each(func(o kadm.ListedOffset) {
		at := int64(0)
		if c, ok := committed.Lookup(o.Topic, o.Partition); ok {
			at = c.At
		}
		lag += o.Offset - at
	})
	return lag, nil
}

func provision(ctx context.Context, brokers []string) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return err
	}
	defer cl.Close()
	specs := topology.Topics(topology.Settings{Partitions: 6, Replication: 1})
	// The per-message arm's own group needs its own retry and dead-letter topics.
	for _, name := range []string{event.RetryTopic(perMessageGroup, 1), event.RetryTopic(perMessageGroup, 2), event.DeadLetterTopic(perMessageGroup)} {
		specs = append(specs, kafka.TopicSpec{Name: name, Partitions: 6, Replication: 1})
	}
	_, err = kafka.EnsureTopics(ctx, kadm.NewClient(cl), specs, true)
	return err
}

// prefill produces n valid OrderPlaced records (one line each, spread over skus, 1 in 5 express)
// and holds their stock in Redis, as the api would have.
func prefill(ctx context.Context, brokers []string, store *redisstore.Store, skus []string, n int) error {
	atp := map[string]int64{}
	for _, s := range skus {
		atp[s] = int64(n)
	}
	if _, err := store.SeedStock(ctx, atp); err != nil {
		return err
	}
	return Prefill(ctx, brokers, store, skus, n)
}

// Prefill produces n valid OrderPlaced records (Order: one line each, spread over skus, 1 in 5
// express) and holds their stock in Redis, as the api would have; the SKUs must be stocked.
func Prefill(ctx context.Context, brokers []string, store *redisstore.Store, skus []string, n int) error {
	return prefillWith(ctx, brokers, store, skus, n, nil)
}

// prefillWith is Prefill with mutate (if not nil) applied to each order before it is published.
func prefillWith(ctx context.Context, brokers []string, store *redisstore.Store, skus []string, n int, mutate func(i int, p *event.OrderPlaced)) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ProducerLinger(5*time.Millisecond))
	if err != nil {
		return err
	}
	defer cl.Close()
	now := time.Now().UTC().Truncate(time.Millisecond)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if firstErr == nil {
			firstErr = err
		}
	}
	sem := make(chan struct{}, 64)
	for i := range n {
		sku := skus[i%len(skus)]
		id := uuid.NewString()
		p, topic := Order(i, id, sku, now)
		if mutate != nil {
			mutate(i, &p)
		}
		env, err := event.NewOrderPlaced("/bench", p)
		if err != nil {
			return err
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if _, err := store.Reserve(ctx, id, []redisstore.Line{{SKU: sku, Qty: 1}}, p.HoldDeadline); err != nil {
				fail(err)
				return
			}
			cl.Produce(ctx, env.Record(topic, []byte(id)), func(_ *kgo.Record, err error) {
				if err != nil {
					fail(err)
				}
			})
		})
	}
	wg.Wait()
	if err := cl.Flush(ctx); err != nil {
		return err
	}
	return firstErr
}

// Order is the i-th order of a benchmark's pre-filled topics: one unit of sku, every fifth one
// express (on the priority topic). It returns the order and its topic.
func Order(i int, id, sku string, now time.Time) (event.OrderPlaced, string) {
	p := event.OrderPlaced{
		OrderID: id, PlacedAt: now, CustomerID: fmt.Sprintf("c-%d", i), Email: "buyer-" + id[:8] + "@example.com",
		Priority: "standard", Currency: "EUR", Lines: []event.OrderLine{{LineNo: 1, SKU: sku, Name: sku, Quantity: 1, UnitPriceMinor: 1999, LineTotalMinor: 1999}},
		SubtotalMinor: 1999, TotalMinor: 1999, Payment: event.Payment{Method: "card", Token: "tok_bench_" + id[:8]},
		ShippingAddress: event.Address{Name: "Bench", Line1: "Street 1", City: "Berlin", PostalCode: "10115", Country: "DE"},
		HoldDeadline:    now.Add(time.Hour), APIKeyID: "bench",
	}
	topic := event.TopicOrdersPlaced
	if i%5 == 0 {
		p.Priority, topic = "express", event.TopicOrdersPlacedPriority
	}
	return p, topic
}

func rewind(ctx context.Context, brokers []string, group string) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	starts, err := adm.ListStartOffsets(ctx, event.TopicOrdersPlaced, event.TopicOrdersPlacedPriority)
	if err != nil {
		return err
	}
	offsets := kadm.Offsets{}
	starts.Each(func(o kadm.ListedOffset) {
		offsets.Add(kadm.Offset{Topic: o.Topic, Partition: o.Partition, At: o.Offset, LeaderEpoch: -1})
	})
	resp, err := adm.CommitOffsets(ctx, group, offsets)
	if err != nil {
		return err
	}
	return resp.Error()
}

// schema creates a migrated schema with the catalog and plenty of stock.
func schema(ctx context.Context, dbURL string, skus []string) (*pgxpool.Pool, string, func(), error) {
	name := "bench_" + RandHex(6)
	admin, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return nil, "", nil, fmt.Errorf("connect %s: %w", dbURL, err)
	}
	if _, err := admin.Exec(ctx, "CREATE SCHEMA "+name); err != nil {
		admin.Close(ctx)
		return nil, "", nil, err
	}
	admin.Close(ctx)
	u, _ := url.Parse(dbURL)
	q := u.Query()
	q.Set("search_path", name)
	u.RawQuery = q.Encode()
	pool, err := postgres.Open(ctx, u.String(), 8)
	if err != nil {
		return nil, "", nil, err
	}
	drop := func() {
		pool.Close()
		c, err := pgx.Connect(context.Background(), dbURL)
		if err == nil {
			_, _ = c.Exec(context.Background(), "DROP SCHEMA "+name+" CASCADE")
			c.Close(context.Background())
		}
	}
	if _, err := postgres.Migrate(ctx, pool); err != nil {
		drop()
		return nil, "", nil, err
	}
	var products []postgres.Product
	stock := map[string]int64{}
	for _, s := range skus {
		products = append(products, postgres.Product{SKU: s, Name: s, Category: "bench", Brand: "bench", PriceMinor: 1999, Currency: "EUR", Active: true})
		stock[s] = 10_000_000
	}
	if _, err := postgres.NewCatalogStore(pool).UpsertMany(ctx, products); err != nil {
		drop()
		return nil, "", nil, err
	}
	if _, err := postgres.NewStockStore(pool).SeedMissing(ctx, stock); err != nil {
		drop()
		return nil, "", nil, err
	}
	return pool, u.String(), drop, nil
}

func countProcessed(ctx context.Context, pool *pgxpool.Pool, group string) (int64, error) {
	var n int64
	err := pool.QueryRow(ctx, `SELECT count(*) FROM processed_events WHERE consumer_group = $1`, group).Scan(&n)
	return n, err
}

func counts(ctx context.Context, pool *pgxpool.Pool) (RowCounts, error) {
	var c RowCounts
	err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM orders), (SELECT count(*) FROM order_lines), (SELECT count(*) FROM payments),
	  (SELECT count(*) FROM allocations), (SELECT count(*) FROM processed_events)`).Scan(&c.Orders, &c.Lines, &c.Payments, &c.Allocations, &c.Processed)
	return c, err
}

// loadAverage is /proc/loadavg's 1, 5 and 15 minute averages, or "unknown".
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return "unknown"
}

func durations(ds []time.Duration) string {
	parts := make([]string, len(ds))
	for i, d := range ds {
		parts[i] = d.Round(time.Millisecond).String()
	}
	return strings.Join(parts, ", ")
}

// RandHex returns n random bytes in hex: unique names for a benchmark's schema and key prefix.
func RandHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Markdown renders the report as the benchmarks document's worker section body.
func (r *Report) Markdown(command string) string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p("## Order worker benchmark: orders persisted per second\n\n")
	p("_Generated by `%s` on %s. Machine: %d CPUs, %s/%s, %s; everything (worker, Postgres, Redis, the in-process broker and payment simulator) shares them. Load average when it started: %s (1, 5, 15 minutes; above the CPU count, other processes took CPU from the run)._\n\n",
		command, r.Started.Format("2006-01-02 15:04 UTC"), runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, runtime.Version(), r.LoadAverage)
	p("Each arm runs the real order-worker (`orderworker.Run`) over %d pre-filled `OrderPlaced` records (one line each, 8 SKUs, 1 in 5 express, stock held in Redis as the api would), with the payment simulator at zero latency (every order still makes its real HTTP charge). Time runs from the worker's start until every record is processed (committed offsets at the end for the replay).\n\n", r.Batch.Orders)
	p("| arm | orders | time | orders/s | rows after (orders, lines, payments, allocations, processed events) |\n|---|---|---|---|---|\n")
	for _, a := range []Arm{r.Batch, r.PerMessage, r.Replay} {
		p("| %s | %d | %s | **%.0f** | %d, %d, %d, %d, %d |\n", a.Name, a.Orders, a.Elapsed.Round(time.Millisecond), a.PerSecond, a.Rows.Orders, a.Rows.Lines, a.Rows.Payments, a.Rows.Allocations, a.Rows.Processed)
	}
	met := func(ok bool) string {
		if ok {
			return "met"
		}
		return "**missed**"
	}
	p("\n| target | goal | measured | |\n|---|---|---|---|\n")
	p("| batch design / one transaction per message | >= 10x | %.1fx | %s |\n", r.BatchVsPerMessage, met(r.BatchVsPerMessage >= 10))
	p("| replay of a processed range / batch | >= 0.8x | %.2fx | %s |\n", r.ReplayVsBatch, met(r.ReplayVsBatch >= 0.8))
	p("| replay inserts nothing | 0 new rows | %s | %s |\n", map[bool]string{true: "0 new rows", false: "rows changed"}[r.ReplayInsertedNothing], met(r.ReplayInsertedNothing))
	if pa := r.Poison; len(pa.Clean) > 0 {
		clean, poison := median(pa.Clean), median(pa.Poison)
		p("\n### A poison record in a batch\n\n")
		p("%d rounds, alternating, each on a fresh broker and schema: %d pre-filled `OrderPlaced` records and the worker started (`ORDER_WORKER_BATCH_SIZE=%d`); time from the worker's start until every order is decided. In the poisoned batch the order at index %d is one Postgres refuses for good (a CHECK constraint planted on `orders` refuses its customer, SQLSTATE 23514, permanent; a NUL, the case seen in production, is now refused by the input gate before any charge): it is charged, Postgres refuses it, the worker isolates it (COPY names the refused line: the batch is applied without that order, then the order alone, where it fails again), refunds its capture and records the refund (`payment_undos`), and the consumer dead-letters it at once; the time is until the %d others are decided.\n\n", pa.Rounds, PoisonBatch, PoisonBatch, PoisonAt, PoisonBatch-1)
		p("| arm | median | rounds |\n|---|---|---|\n")
		p("| clean batch of %d | **%s** | %s |\n", PoisonBatch, clean.Round(time.Millisecond), durations(pa.Clean))
		p("| batch of %d with one poison record in the middle | **%s** | %s |\n", PoisonBatch, poison.Round(time.Millisecond), durations(pa.Poison))
		p("\n| target | goal | measured | |\n|---|---|---|---|\n")
		ratio := poison.Seconds() / clean.Seconds()
		p("| the %d others of a poisoned batch / a clean batch | about 1x (same time) | %.2fx (+%s) | %s |\n", PoisonBatch-1, ratio, (poison - clean).Round(time.Millisecond), met(ratio <= 1.5))
		p("| poison refunded, recorded, dead-lettered once, no retry topic | every round | %s | %s |\n", map[bool]string{true: "every round", false: "not every round"}[pa.Undone], met(pa.Undone))
	}
	p("\nThe per-message arm sets `ORDER_WORKER_BATCH_SIZE=1`: the same code, one Postgres transaction (and one WAL flush, `synchronous_commit` on) per order, and it runs for a fixed time because it is slow. The replay rewinds the batch arm's group to the start: every record finds its processed-event row, so the worker only repeats the idempotent follow-up steps (Redis hold markers, re-publish of the same outcome event) and writes nothing.\n")
	return b.String()
}

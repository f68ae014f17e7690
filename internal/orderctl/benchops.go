package orderctl

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http/httptest"
	"net/url"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderpipe/orderpipe/internal/bench"
	"github.com/orderpipe/orderpipe/internal/event"
	"github.com/orderpipe/orderpipe/internal/inventorysync"
	"github.com/orderpipe/orderpipe/internal/kafka"
	"github.com/orderpipe/orderpipe/internal/mailsink"
	"github.com/orderpipe/orderpipe/internal/notifier"
	"github.com/orderpipe/orderpipe/internal/orderworker"
	"github.com/orderpipe/orderpipe/internal/paysim"
	"github.com/orderpipe/orderpipe/internal/postgres"
	"github.com/orderpipe/orderpipe/internal/redisstore"
	"github.com/orderpipe/orderpipe/internal/topology"
	"github.com/orderpipe/orderpipe/internal/workerbench"
)

// benchOpsCmd is `orderctl bench ops`: replay and re-drive throughput.
func (e *env) benchOpsCmd() *cobra.Command {
	var (
		out                    string
		orders, stock, letters int
	)
	cmd := &cobra.Command{
		Use:   "ops",
		Short: "Benchmark the ops toolkit: replay of every group and dead-letter re-drive, in records per second",
		Long: "Runs the real order-worker, inventory-sync and notifier (groups notifier and reports) in this process over\n" +
			"an in-process broker, against Postgres (a temporary schema of DATABASE_URL), Redis (a temporary key prefix\n" +
			"of REDIS_ADDRS), the payment simulator without latency and the SMTP sink. Pre-fills --orders OrderPlaced\n" +
			"records (held in Redis as the api would) and --stock-events warehouse stock events, then measures:\n" +
			"  1. the first pass of each group (the baseline): records processed per second, from the process's start\n" +
			"     until its committed offsets reach the end;\n" +
			"  2. the replay of each group: the processes stopped, `orderctl replay --group G --to-start --execute`,\n" +
			"     the process started again, records re-processed per second until lag 0 (and checks that the replay\n" +
			"     added no row, e-mail or capture);\n" +
			"  3. the re-drive: --dead-letters orders dead-lettered during a payment outage, then\n" +
			"     `orderctl dlq redrive --group order-worker --execute` (records published per second, reading the\n" +
			"     dead-letter topic and committing progress included), then order-worker processing them.\n" +
			"Ratios are against the first pass of the same group on the same machine in the same run. Writes the\n" +
			"section between <!-- ops:begin --> and <!-- ops:end --> of --out, keeping the rest of the file.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if orders < 100 || stock < 100 || letters < 100 {
				return usageErr("want --orders, --stock-events and --dead-letters of at least 100")
			}
			ctx := cmd.Context()
			if err := createDatabase(ctx, e.cfg.DatabaseURL); err != nil {
				return err
			}
			rep, err := e.benchOps(ctx, opsConfig{orders: orders, stock: stock, letters: letters})
			if err != nil {
				return err
			}
			command := strings.TrimSpace("orderctl bench ops " + strings.Join(flagArgs(cmd), " "))
			section := "<!-- ops:begin -->\n" + rep.markdown(command) + "<!-- ops:end -->\n"
			if out == "" || out == "-" {
				fmt.Fprint(e.stdout, section)
				return nil
			}
			if err := bench.WriteNamedSection(out, "ops", section); err != nil {
				return err
			}
			fmt.Fprintln(e.stdout, "wrote", out)
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "docs/benchmarks.md", "Markdown file to write the ops section into (- prints it)")
	cmd.Flags().IntVar(&orders, "orders", 20000, "OrderPlaced records of the first pass and the replays")
	cmd.Flags().IntVar(&stock, "stock-events", 20000, "warehouse stock events of inventory-sync's first pass and replay")
	cmd.Flags().IntVar(&letters, "dead-letters", 10000, "orders dead-lettered during the outage, then re-driven")
	return cmd
}

type opsConfig struct {
	orders, stock, letters int
}

// opsArm is one measured run.
type opsArm struct {
	name     string
	records  int64
	elapsed  time.Duration
	baseline *opsArm // the first pass it is compared with; nil for a baseline
}

func (a opsArm) perSecond() float64 { return float64(a.records) / a.elapsed.Seconds() }

// opsReport is the outcome of benchOps.
type opsReport struct {
	started time.Time
	cfg     opsConfig
	arms    []*opsArm
	checks  []string // correctness facts observed during the run
	load    string   // the machine's load average when the run started
}

// loadAverage is /proc/loadavg's 1, 5 and 15 minute averages, or "unknown".
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return "unknown"
}

// opsBench is the system the benchmark runs.
type opsBench struct {
	e       *env
	cluster *kfake.Cluster
	brokers []string
	dbURL   string
	pool    *pgxpool.Pool
	rdb     *redis.Client
	prefix  string
	store   *redisstore.Store
	sim     *paysim.Server
	simURL  string
	sink    *mailsink.Sink
	skus    []string
	logf    func(string, ...any)
}

var opsSourceTopics = map[string][]string{
	topology.GroupOrderWorker:   {event.TopicOrdersPlaced, event.TopicOrdersPlacedPriority},
	topology.GroupInventorySync: {event.TopicInventoryStock},
	topology.GroupNotifier:      {event.TopicOrderEvents},
	topology.GroupReports:       {event.TopicOrderEvents},
}

func (e *env) benchOps(ctx context.Context, cfg opsConfig) (*opsReport, error) {
	rep := &opsReport{started: time.Now().UTC(), cfg: cfg, load: loadAverage()}
	b := &opsBench{e: e, logf: func(f string, a ...any) { fmt.Fprintf(e.stdout, "bench ops: "+f+"\n", a...) }}
	var err error
	if b.cluster, err = kfake.NewCluster(kfake.NumBrokers(1)); err != nil {
		return nil, fmt.Errorf("start broker: %w", err)
	}
	defer b.cluster.Close()
	b.brokers = b.cluster.ListenAddrs()
	if err := b.provision(ctx); err != nil {
		return nil, err
	}
	b.skus = []string{"OPS-HOT-1", "OPS-HOT-2", "OPS-A-1", "OPS-A-2", "OPS-A-3", "OPS-A-4", "OPS-A-5", "OPS-A-6"}
	drop, err := b.schema(ctx, e.cfg.DatabaseURL)
	if err != nil {
		return nil, err
	}
	defer drop()
	b.rdb = redis.NewClient(&redis.Options{Addr: e.cfg.RedisAddrs[0]})
	defer b.rdb.Close()
	b.prefix = "benchops:" + workerbench.RandHex(6) + ":"
	defer func() { _ = redisstore.DeleteKeys(context.Background(), b.rdb, b.prefix+"*") }()
	b.store = redisstore.New(b.rdb, b.prefix)
	b.sim = paysim.New(paysim.Config{Seed: 1})
	simSrv := httptest.NewServer(b.sim.Handler())
	defer simSrv.Close()
	b.simURL = simSrv.URL
	if b.sink, err = mailsink.Start(mailsink.Config{Addr: "127.0.0.1:0"}); err != nil {
		return nil, err
	}
	defer b.sink.Close()

	atp := map[string]int64{}
	for _, s := range b.skus {
		atp[s] = int64(cfg.orders + cfg.letters)
	}
	if _, err := b.store.SeedStock(ctx, atp); err != nil {
		return nil, err
	}
	b.logf("pre-filling %d orders and %d stock events", cfg.orders, cfg.stock)
	if err := b.prefillOrders(ctx, cfg.orders); err != nil {
		return nil, err
	}
	if err := b.prefillStock(ctx, cfg.stock); err != nil {
		return nil, err
	}

	// 1. First passes, one process at a time.
	first := map[string]*opsArm{}
	pass := func(process string, groups ...string) error {
		arms, err := b.runUntilDone(ctx, "first pass", process, nil, groups...)
		if err != nil {
			return err
		}
		for _, g := range groups {
			first[g] = arms[g]
			rep.arms = append(rep.arms, arms[g])
		}
		return nil
	}
	if err := pass("order-worker", topology.GroupOrderWorker); err != nil {
		return nil, err
	}
	if err := pass("inventory-sync", topology.GroupInventorySync); err != nil {
		return nil, err
	}
	if err := pass("notifier", topology.GroupNotifier, topology.GroupReports); err != nil {
		return nil, err
	}
	before, err := b.rows(ctx)
	if err != nil {
		return nil, err
	}
	mails, stats := len(b.sink.Messages()), b.sim.Stats()

	// 2. Replays: every group moved to the start with orderctl, its process started again.
	replay := func(process string, groups ...string) error {
		for _, g := range groups {
			out, err := b.ctl(ctx, nil, "replay", "--group", g, "--to-start", "--execute", "--wait", "30s", "--output", "json")
			if err != nil {
				return fmt.Errorf("replay %s: %w\n%s", g, err, out)
			}
		}
		arms, err := b.runUntilDone(ctx, "replay", process, nil, groups...)
		if err != nil {
			return err
		}
		for _, g := range groups {
			arms[g].baseline = first[g]
			rep.arms = append(rep.arms, arms[g])
		}
		return nil
	}
	if err := replay("order-worker", topology.GroupOrderWorker); err != nil {
		return nil, err
	}
	if err := replay("inventory-sync", topology.GroupInventorySync); err != nil {
		return nil, err
	}
	if err := replay("notifier", topology.GroupNotifier, topology.GroupReports); err != nil {
		return nil, err
	}
	after, err := b.rows(ctx)
	if err != nil {
		return nil, err
	}
	st := b.sim.Stats()
	if after != before || len(b.sink.Messages()) != mails || st.Captures != stats.Captures || len(st.DoubleCaptured) > 0 {
		return nil, fmt.Errorf("the replays changed something: rows %s -> %s, e-mails %d -> %d, captures %d -> %d, double %v",
			before, after, mails, len(b.sink.Messages()), stats.Captures, st.Captures, st.DoubleCaptured)
	}
	rep.checks = append(rep.checks, fmt.Sprintf("the replays added no row (%s), no e-mail (%d) and no capture (%d)", after, mails, st.Captures))

	// 3. Re-drive: orders placed during an outage end in the dead-letter topic.
	b.logf("payment outage: dead-lettering %d orders", cfg.letters)
	b.sim.SetDown(true)
	if err := b.prefillOrders(ctx, cfg.letters); err != nil {
		return nil, err
	}
	fast := map[string]string{"ORDER_WORKER_RETRY_IN_PLACE": "0s", "ORDER_WORKER_RETRY_TIERS": "1ms,1ms", "PAYMENT_MAX_ATTEMPTS": "1"}
	stop := b.start(ctx, "order-worker", fast)
	err = b.wait(ctx, 10*time.Minute, func() (bool, error) {
		n, err := b.endSum(ctx, event.DeadLetterTopic(topology.GroupOrderWorker))
		return n >= int64(cfg.letters), err
	})
	if serr := stop(); err == nil {
		err = serr
	}
	if err != nil {
		return nil, fmt.Errorf("dead-lettering: %w", err)
	}
	b.sim.SetDown(false)
	start := time.Now()
	out, err := b.ctl(ctx, nil, "dlq", "redrive", "--group", topology.GroupOrderWorker, "--execute")
	redrive := &opsArm{name: "dlq redrive --execute (records published)", records: int64(cfg.letters), elapsed: time.Since(start), baseline: first[topology.GroupOrderWorker]}
	if err != nil || !strings.Contains(out, fmt.Sprintf("summary: re-driven %d,", cfg.letters)) {
		return nil, fmt.Errorf("re-drive: %v\n%s", err, out)
	}
	b.logf("%s: %d in %s = %.0f/s", redrive.name, redrive.records, redrive.elapsed.Round(time.Millisecond), redrive.perSecond())
	rep.arms = append(rep.arms, redrive)
	arms, err := b.runUntilDone(ctx, "re-driven orders", "order-worker", nil, topology.GroupOrderWorker)
	if err != nil {
		return nil, err
	}
	a := arms[topology.GroupOrderWorker]
	a.name, a.records, a.baseline = "order-worker on the re-driven records", int64(cfg.letters), first[topology.GroupOrderWorker]
	rep.arms = append(rep.arms, a)
	var confirmed int64
	if err := b.pool.QueryRow(ctx, `SELECT count(*) FROM orders WHERE status = 'confirmed'`).Scan(&confirmed); err != nil {
		return nil, err
	}
	st = b.sim.Stats()
	if confirmed != int64(cfg.orders+cfg.letters) || st.Captures != confirmed || len(st.DoubleCaptured) > 0 {
		return nil, fmt.Errorf("after the re-drive: %d confirmed orders, %d captures (double %v), want %d", confirmed, st.Captures, st.DoubleCaptured, cfg.orders+cfg.letters)
	}
	rep.checks = append(rep.checks, fmt.Sprintf("after the re-drive every order is confirmed once: %d orders, %d captures, none twice", confirmed, st.Captures))
	return rep, nil
}

// env is the environment of every process (and of orderctl), then extra.
func (b *opsBench) env(extra map[string]string) map[string]string {
	host, port, _ := net.SplitHostPort(b.sink.Addr())
	env := map[string]string{
		"DATABASE_URL": b.dbURL, "DATABASE_MAX_CONNS": "8", "REDIS_ADDRS": b.rdb.Options().Addr, "REDIS_KEY_PREFIX": b.prefix,
		"KAFKA_BROKERS": strings.Join(b.brokers, ","), "LOG_LEVEL": "warn", "PAYMENT_URL": b.simURL,
		"PAYMENT_BREAKER_OPEN_FOR": "200ms",
		"WORKER_ADMIN_ADDR":        "127.0.0.1:0", "INVENTORY_ADMIN_ADDR": "127.0.0.1:0", "NOTIFIER_ADMIN_ADDR": "127.0.0.1:0",
		"SMTP_HOST": host, "SMTP_PORT": port, "SMTP_TLS": "off", "RECONCILE_INTERVAL": "1h",
	}
	for k, v := range extra {
		env[k] = v
	}
	return env
}

var opsProcesses = map[string]func(context.Context, []string, func(string) string, io.Writer) error{
	"order-worker":   orderworker.Run,
	"inventory-sync": inventorysync.Run,
	"notifier":       notifier.Run,
}

// start runs a process until the returned stop is called; stop returns what its Run returned.
func (b *opsBench) start(ctx context.Context, process string, extra map[string]string) (stop func() error) {
	env := b.env(extra)
	pctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- opsProcesses[process](pctx, nil, func(k string) string { return env[k] }, io.Discard) }()
	return func() error {
		cancel()
		err := <-done
		if errors.Is(err, context.Canceled) {
			err = nil
		}
		return err
	}
}

// runUntilDone starts process and measures, for each group, the time from the start until the
// group has committed the end of its source topics; the records are those consumed meanwhile.
func (b *opsBench) runUntilDone(ctx context.Context, label, process string, extra map[string]string, groups ...string) (map[string]*opsArm, error) {
	lags := map[string]int64{}
	for _, g := range groups {
		lag, err := b.lag(ctx, g)
		if err != nil {
			return nil, err
		}
		lags[g] = lag
	}
	start := time.Now()
	stop := b.start(ctx, process, extra)
	arms := map[string]*opsArm{}
	err := b.wait(ctx, 10*time.Minute, func() (bool, error) {
		for _, g := range groups {
			if arms[g] != nil {
				continue
			}
			lag, err := b.lag(ctx, g)
			if err != nil {
				return false, err
			}
			if lag == 0 {
				arms[g] = &opsArm{name: label + " " + g, records: lags[g], elapsed: time.Since(start)}
			}
		}
		return len(arms) == len(groups), nil
	})
	if serr := stop(); err == nil {
		err = serr
	}
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", label, process, err)
	}
	for _, a := range arms {
		b.logf("%s: %d records in %s = %.0f/s", a.name, a.records, a.elapsed.Round(time.Millisecond), a.perSecond())
	}
	return arms, nil
}

func (b *opsBench) wait(ctx context.Context, limit time.Duration, done func() (bool, error)) error {
	deadline := time.Now().Add(limit)
	for {
		ok, err := done()
		if err != nil || ok {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not done after %s", limit)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func (b *opsBench) admin() (*kgo.Client, *kadm.Client, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.brokers...))
	if err != nil {
		return nil, nil, err
	}
	return cl, kadm.NewClient(cl), nil
}

// lag is the records of group's source topics beyond its committed offsets.
func (b *opsBench) lag(ctx context.Context, group string) (int64, error) {
	cl, adm, err := b.admin()
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	ends, err := adm.ListEndOffsets(ctx, opsSourceTopics[group]...)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return 0, err
	}
	committed, err := adm.FetchOffsets(ctx, group)
	if errors.Is(err, kerr.GroupIDNotFound) {
		err = nil // not started yet: nothing committed
	}
	if err != nil {
		return 0, err
	}
	var lag int64
	ends.Each(func(o kadm.ListedOffset) {
		at := int64(0)
		if c, ok := committed.Lookup(o.Topic, o.Partition); ok && c.At >= 0 {
			at = c.At
		}
		lag += o.Offset - at
	})
	return lag, nil
}

func (b *opsBench) endSum(ctx context.Context, topic string) (int64, error) {
	cl, adm, err := b.admin()
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	var n int64
	ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
	return n, err
}

// ctl runs an orderctl command against the benchmark's system.
func (b *opsBench) ctl(ctx context.Context, extra map[string]string, args ...string) (string, error) {
	env := b.env(extra)
	var out bytes.Buffer
	err := Run(ctx, args, func(k string) string { return env[k] }, &out)
	return out.String(), err
}

func (b *opsBench) provision(ctx context.Context) error {
	cl, adm, err := b.admin()
	if err != nil {
		return err
	}
	defer cl.Close()
	_, err = kafka.EnsureTopics(ctx, adm, topology.Topics(topology.Settings{Partitions: 6, Replication: 1}), true)
	return err
}

// schema creates a migrated schema with the catalog and plenty of stock; drop removes it.
func (b *opsBench) schema(ctx context.Context, dbURL string) (drop func(), err error) {
	name := "benchops_" + workerbench.RandHex(6)
	admin, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return nil, fmt.Errorf("connect %s: %w", dbURL, err)
	}
	_, err = admin.Exec(ctx, "CREATE SCHEMA "+name)
	admin.Close(ctx)
	if err != nil {
		return nil, fmt.Errorf("create schema %s: %w", name, err)
	}
	u, err := url.Parse(dbURL)
	if err != nil {
		return nil, err
	}
	q := u.Query()
	q.Set("search_path", name)
	u.RawQuery = q.Encode()
	b.dbURL = u.String()
	drop = func() {
		if b.pool != nil {
			b.pool.Close()
		}
		if c, err := pgx.Connect(context.Background(), dbURL); err == nil {
			_, _ = c.Exec(context.Background(), "DROP SCHEMA "+name+" CASCADE")
			c.Close(context.Background())
		}
	}
	if b.pool, err = postgres.Open(ctx, b.dbURL, 4); err != nil {
		drop()
		return nil, err
	}
	if _, err := postgres.Migrate(ctx, b.pool); err != nil {
		drop()
		return nil, err
	}
	var products []postgres.Product
	stock := map[string]int64{}
	for _, s := range b.skus {
		products = append(products, postgres.Product{SKU: s, Name: s, Category: "bench", Brand: "bench", PriceMinor: 1999, Currency: "EUR", Active: true})
		stock[s] = 10_000_000
	}
	if _, err := postgres.NewCatalogStore(b.pool).UpsertMany(ctx, products); err != nil {
		drop()
		return nil, err
	}
	if _, err := postgres.NewStockStore(b.pool).SeedMissing(ctx, stock); err != nil {
		drop()
		return nil, err
	}
	return drop, nil
}

// prefillOrders produces n valid OrderPlaced records (one line each, 1 in 5 express, each with
// its own e-mail address) and holds their stock in Redis, as the api would have.
func (b *opsBench) prefillOrders(ctx context.Context, n int) error {
	return workerbench.Prefill(ctx, b.brokers, b.store, b.skus, n)
}

// prefillStock produces n warehouse stock levels, spread over 4 warehouses and the SKUs, each
// warehouse's seq growing.
func (b *opsBench) prefillStock(ctx context.Context, n int) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.brokers...), kgo.ProducerLinger(5*time.Millisecond))
	if err != nil {
		return err
	}
	defer cl.Close()
	var recs []*kgo.Record
	for i := range n {
		wh := fmt.Sprintf("WH-%d", i%4)
		h := event.StockHeader{WarehouseID: wh, SKU: b.skus[i%len(b.skus)], Seq: int64(i/4 + 1), OccurredAt: time.Now().UTC()}
		env, err := event.NewStockEnvelope(uuid.NewString(), "warehouse/"+wh, event.StockLevel{StockHeader: h, OnHand: 1_000_000 + int64(i)})
		if err != nil {
			return err
		}
		recs = append(recs, env.Record(event.TopicInventoryStock, []byte(h.SKU)))
	}
	return cl.ProduceSync(ctx, recs...).FirstErr()
}

// opsRows counts what the consumers write.
type opsRows struct {
	orders, payments, allocations, processed, notifications, deltas, aggregates int64
}

func (r opsRows) String() string {
	return fmt.Sprintf("%d orders, %d payments, %d allocations, %d processed events, %d notifications, %d stock deltas, %d aggregate units",
		r.orders, r.payments, r.allocations, r.processed, r.notifications, r.deltas, r.aggregates)
}

func (b *opsBench) rows(ctx context.Context) (opsRows, error) {
	var r opsRows
	err := b.pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM orders), (SELECT count(*) FROM payments), (SELECT count(*) FROM allocations),
  (SELECT count(*) FROM processed_events), (SELECT count(*) FROM notifications), (SELECT count(*) FROM stock_deltas),
  (SELECT coalesce(sum(units), 0) FROM sales_aggregates)`).Scan(&r.orders, &r.payments, &r.allocations, &r.processed, &r.notifications, &r.deltas, &r.aggregates)
	return r, err
}

func (r *opsReport) markdown(command string) string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p("## Ops toolkit benchmark: replay and dead-letter re-drive, records per second\n\n")
	p("_Generated by `%s` on %s. Machine: %d CPUs, %s/%s, %s; everything (the three worker processes, Postgres, Redis, the in-process broker, payment simulator and SMTP sink) shares them. Load average when it started: %s (1, 5, 15 minutes)._\n\n",
		command, r.started.Format("2006-01-02 15:04 UTC"), runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, runtime.Version(), r.load)
	p("The real order-worker, inventory-sync and notifier (groups notifier and reports) run over %d pre-filled `OrderPlaced` records (one line each, 8 SKUs, 1 in 5 express, held in Redis as the api would) and %d warehouse stock levels; the notifier sends every e-mail over SMTP to the sink. Each group's **first pass** is the baseline: records processed per second from the process's start until its committed offsets reach the end. The **replay** stops the processes, runs `orderctl replay --group G --to-start --execute`, starts the process again and measures the same way (every record is a duplicate: it is re-checked, not redone; order-worker re-publishes its outcome events with the same ids, so the notifier groups re-check those too). The **re-drive** dead-letters %d more orders during a payment outage, then times `orderctl dlq redrive --group order-worker --execute` (reading the dead-letter topic, publishing with acks=all, committing progress every 500) and order-worker processing what it published.\n\n",
		r.cfg.orders, r.cfg.stock, r.cfg.letters)
	p("| run | records | time | records/s | vs first pass of the group |\n|---|---|---|---|---|\n")
	for _, a := range r.arms {
		ratio := "baseline"
		if a.baseline != nil {
			ratio = fmt.Sprintf("%.2fx (%s: %.0f/s)", a.perSecond()/a.baseline.perSecond(), a.baseline.name, a.baseline.perSecond())
		}
		p("| %s | %d | %s | **%.0f** | %s |\n", a.name, a.records, a.elapsed.Round(time.Millisecond), a.perSecond(), ratio)
	}
	p("\nChecked during the run: %s.\n\n", strings.Join(r.checks, "; "))
	p("Time includes each process's start (connecting to Postgres, Redis and the broker, joining the group): a fixed cost of a few hundred milliseconds that weighs more on the short runs. The re-drive's rate is publishing only; what it costs the pipeline is the processing that follows, shown on the next line.\n")
	return b.String()
}

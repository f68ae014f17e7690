package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderpipe/orderpipe/internal/api"
	"github.com/orderpipe/orderpipe/internal/auth"
	"github.com/orderpipe/orderpipe/internal/event"
	"github.com/orderpipe/orderpipe/internal/postgres"
	"github.com/orderpipe/orderpipe/internal/redisstore"
)

// startTimeout bounds how long the api may take to listen and become ready.
const startTimeout = 30 * time.Second

// intakeArm is the real api (api.Run in this process) with its broker.
type intakeArm struct {
	url     string
	token   string
	cluster *kfake.Cluster
	store   *redisstore.Store
	logs    *logWatch
	cancel  context.CancelFunc
	done    chan error
	stopped bool
	runErr  error
}

// seedIntake migrates the api's schema and gives it what it needs to take orders of sku: the
// product, stock truth, an API key (returned as a bearer token) and Redis ATP.
func seedIntake(ctx context.Context, databaseURL string, store *redisstore.Store, sku string, stock int64) (string, error) {
	pool, err := postgres.Open(ctx, databaseURL, 2)
	if err != nil {
		return "", err
	}
	defer pool.Close()
	if _, err := postgres.Migrate(ctx, pool); err != nil {
		return "", err
	}
	if _, err := postgres.NewCatalogStore(pool).UpsertMany(ctx, []postgres.Product{{
		SKU: sku, Name: "Brake pads, front axle (benchmark)", Category: "brakes", Brand: "Benchmark",
		PriceMinor: 4999, Currency: "EUR", Active: true,
	}}); err != nil {
		return "", err
	}
	if err := postgres.NewStockStore(pool).Set(ctx, sku, stock); err != nil {
		return "", err
	}
	token, k, err := auth.Generate("bench", []string{auth.ScopeOrdersWrite})
	if err != nil {
		return "", err
	}
	if err := postgres.NewKeyStore(pool).Create(ctx, postgres.APIKey{ID: k.ID, Name: k.Name, SecretHash: k.SecretHash, Scopes: k.Scopes}); err != nil {
		return "", err
	}
	created, err := store.SeedStock(ctx, map[string]int64{sku: stock})
	if err != nil {
		return "", err
	}
	if created != 1 {
		return "", fmt.Errorf("seed redis stock of %s: counters already exist under a fresh prefix", sku)
	}
	return token, nil
}

// kfakeSegments keeps kfake's log segments small. kfake holds its log in an in-memory file
// system whose files grow by doubling: with its default 100 MiB segments, a partition's file is
// copied whole (tens of MiB) at each doubling, inside the broker's single goroutine, and every
// produce waits meanwhile. Six partitions crossing a size at about the same time stalled the
// intake for 100-250 ms, a pause a real broker (appending to files in the page cache) does not
// have. At 4 MiB a segment's largest copy is 2 MiB.
var kfakeSegments = kfake.BrokerConfigs(map[string]string{"log.segment.bytes": strconv.Itoa(4 << 20)})

// startIntake starts a kfake cluster with the orderpipe topics and runs the api against it,
// Postgres at databaseURL and Redis under prefix, and waits until it is ready.
func startIntake(ctx context.Context, cfg Config, databaseURL, prefix, token string, store *redisstore.Store) (*intakeArm, error) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfakeSegments, kfake.SeedTopics(6,
		event.TopicOrdersPlaced, event.TopicOrdersPlacedPriority, "orders.events", "inventory.stock"))
	if err != nil {
		return nil, fmt.Errorf("start kfake cluster: %w", err)
	}
	env := map[string]string{
		"DATABASE_URL":          databaseURL,
		"REDIS_ADDRS":           strings.Join(cfg.Redis.RedisAddrs, ","),
		"REDIS_PASSWORD":        cfg.Redis.RedisPassword,
		"REDIS_DB":              strconv.Itoa(cfg.Redis.RedisDB),
		"REDIS_KEY_PREFIX":      prefix,
		"KAFKA_BROKERS":         strings.Join(cluster.ListenAddrs(), ","),
		"API_ADDR":              "127.0.0.1:0",
		"API_DRAIN_DELAY":       "0s",
		"RATE_LIMIT_PER_SECOND": "0",
		// info, not warn: the "listening" line that carries the URL is an info line. The intake
		// path logs accepted orders at debug, so no line is written per order either way.
		"LOG_LEVEL":     "info",
		"SHOP_CURRENCY": "EUR",
	}
	if cfg.Redis.RedisPoolSize > 0 { // else the api's default
		env["REDIS_POOL_SIZE"] = strconv.Itoa(cfg.Redis.RedisPoolSize)
	}
	a := &intakeArm{token: token, cluster: cluster, store: store, logs: newLogWatch(), done: make(chan error, 1)}
	actx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	a.cancel = cancel
	go func() { a.done <- api.Run(actx, nil, func(k string) string { return env[k] }, a.logs) }()

	fail := func(err error) (*intakeArm, error) {
		_ = a.stop()
		return nil, err
	}
	select {
	case a.url = <-a.logs.url:
	case err := <-a.done:
		a.stopped, a.runErr = true, err
		return fail(fmt.Errorf("api exited before listening: %v; log: %s", err, a.logs.summary()))
	case <-time.After(startTimeout):
		return fail(fmt.Errorf("api did not log its URL within %s; log: %s", startTimeout, a.logs.summary()))
	case <-ctx.Done():
		return fail(ctx.Err())
	}
	if err := waitReady(ctx, a.url+"/readyz", startTimeout); err != nil {
		return fail(fmt.Errorf("api at %s: %w", a.url, err))
	}
	return a, nil
}

func (a *intakeArm) target(sku string) target {
	return newTarget(a.url+"/v1/orders", http.Header{
		"Authorization": {"Bearer " + a.token},
		"Content-Type":  {"application/json"},
	}, orderBody(sku))
}

// stop ends the api (drain, finish in-flight requests, flush the producer) and returns how it
// ended. The broker stays up for the record count; close shuts it.
func (a *intakeArm) stop() error {
	if !a.stopped {
		a.cancel()
		select {
		case a.runErr = <-a.done:
		case <-time.After(time.Minute):
			a.runErr = errors.New("api did not stop within a minute")
		}
		a.stopped = true
	}
	if a.runErr != nil {
		return fmt.Errorf("api run: %w", a.runErr)
	}
	return nil
}

func (a *intakeArm) close() {
	_ = a.stop()
	a.cluster.Close()
}

// records counts the records on the order topics (the cluster is fresh, so the end offsets are
// the counts).
func (a *intakeArm) records(ctx context.Context) (int64, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(a.cluster.ListenAddrs()...))
	if err != nil {
		return 0, fmt.Errorf("kafka admin client: %w", err)
	}
	defer cl.Close()
	offs, err := kadm.NewClient(cl).ListEndOffsets(ctx, event.TopicOrdersPlaced, event.TopicOrdersPlacedPriority)
	if err != nil {
		return 0, fmt.Errorf("list end offsets: %w", err)
	}
	if err := offs.Error(); err != nil {
		return 0, fmt.Errorf("list end offsets: %w", err)
	}
	var n int64
	offs.Each(func(o kadm.ListedOffset) { n += o.Offset })
	return n, nil
}

// state reads the intake's stock and records after the api stopped.
func (a *intakeArm) state(ctx context.Context, sku string, startATP, accepted int64) (intakeState, error) {
	st, err := a.store.Availability(ctx, sku)
	if err != nil {
		return intakeState{}, err
	}
	if !st.Known {
		return intakeState{}, fmt.Errorf("redis has no counters for %s", sku)
	}
	recs, err := a.records(ctx)
	if err != nil {
		return intakeState{}, err
	}
	return intakeState{startATP: startATP, atp: st.ATP, held: st.Held, records: recs, accepted: accepted}, nil
}

// waitReady polls url until it answers 200.
func waitReady(ctx context.Context, url string, within time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	last := "no answer"
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not ready within %s (last: %s)", within, last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// logWatch is the api's stdout: it finds the "listening" line's URL and keeps the warnings and
// errors the api logged, for the report.
type logWatch struct {
	url chan string

	mu       sync.Mutex
	partial  []byte
	found    bool
	problems int
	samples  []string
}

func newLogWatch() *logWatch { return &logWatch{url: make(chan string, 1)} }

func (w *logWatch) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.partial = append(w.partial, p...)
	for {
		line, rest, ok := bytes.Cut(w.partial, []byte("\n"))
		if !ok {
			break
		}
		w.line(line)
		w.partial = rest
	}
	return len(p), nil
}

func (w *logWatch) line(b []byte) {
	var rec struct {
		Level string `json:"level"`
		Msg   string `json:"msg"`
		URL   string `json:"url"`
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		rec.Level = "UNPARSED"
	}
	if rec.Msg == "listening" && rec.URL != "" && !w.found {
		w.found = true
		w.url <- rec.URL
	}
	switch rec.Level {
	case "WARN", "ERROR", "UNPARSED":
		w.problems++
		if len(w.samples) < 5 {
			w.samples = append(w.samples, string(b))
		}
	}
}

// summary returns the warnings and errors logged so far.
func (w *logWatch) summary() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.problems == 0 {
		return "no warnings or errors"
	}
	return fmt.Sprintf("%d warnings or errors, first: %s", w.problems, strings.Join(w.samples, " | "))
}

// redisCalls reads the calls per command from INFO commandstats.
func redisCalls(ctx context.Context, rdb redis.UniversalClient) (map[string]int64, error) {
	info, err := rdb.Info(ctx, "commandstats").Result()
	if err != nil {
		return nil, fmt.Errorf("redis info commandstats: %w", err)
	}
	return parseCommandStats(info), nil
}

// redisReads reads how many times Redis has read from a client socket (INFO stats
// total_reads_processed). Commands that arrive together, pipelined, are served by one read.
func redisReads(ctx context.Context, rdb redis.UniversalClient) (int64, error) {
	info, err := rdb.Info(ctx, "stats").Result()
	if err != nil {
		return 0, fmt.Errorf("redis info stats: %w", err)
	}
	return parseInfoInt(info, "total_reads_processed")
}

// parseInfoInt finds "field:123" in an INFO reply.
func parseInfoInt(info, field string) (int64, error) {
	sc := bufio.NewScanner(strings.NewReader(info))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), field+":"); ok {
			return strconv.ParseInt(v, 10, 64)
		}
	}
	return 0, fmt.Errorf("redis info: no %s", field)
}

// parseCommandStats reads lines such as "cmdstat_evalsha:calls=12,usec=34,...".
func parseCommandStats(info string) map[string]int64 {
	out := map[string]int64{}
	sc := bufio.NewScanner(strings.NewReader(info))
	for sc.Scan() {
		name, rest, ok := strings.Cut(strings.TrimSpace(sc.Text()), ":")
		cmd, isCmd := strings.CutPrefix(name, "cmdstat_")
		if !ok || !isCmd {
			continue
		}
		for field := range strings.SplitSeq(rest, ",") {
			if v, ok := strings.CutPrefix(field, "calls="); ok {
				if n, err := strconv.ParseInt(v, 10, 64); err == nil {
					out[cmd] = n
				}
			}
		}
	}
	return out
}

// The api's own latency histograms the report reads, as metric base names.
const (
	metricRequest = "orderpipe_http_request_duration_seconds"
	metricReserve = "orderpipe_intake_reserve_seconds"
	metricProduce = "orderpipe_intake_produce_seconds"
)

// sumCount is the _sum and _count of one histogram.
type sumCount struct{ sum, count float64 }

// apiTimes are the api's latency histograms at one moment, by metric base name.
type apiTimes map[string]sumCount

// meanSince returns the mean of metric over the observations made between earlier and t.
func (t apiTimes) meanSince(earlier apiTimes, metric string) (time.Duration, bool) {
	n := t[metric].count - earlier[metric].count
	if n <= 0 {
		return 0, false
	}
	return time.Duration((t[metric].sum - earlier[metric].sum) / n * float64(time.Second)), true
}

// scrapeAPITimes reads the api's /metrics.
func scrapeAPITimes(ctx context.Context, baseURL string) (apiTimes, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, baseURL+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape api metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape api metrics: %s", resp.Status)
	}
	var b strings.Builder
	if _, err := io.Copy(&b, resp.Body); err != nil {
		return nil, fmt.Errorf("scrape api metrics: %w", err)
	}
	return parseAPITimes(b.String()), nil
}

// parseAPITimes picks the _sum and _count samples of the request (POST /v1/orders only),
// reservation and produce histograms out of the Prometheus text format.
func parseAPITimes(text string) apiTimes {
	out := apiTimes{}
	for line := range strings.SplitSeq(text, "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		series, value, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(strings.Fields(value)[0], 64)
		if err != nil {
			continue
		}
		name, labels, _ := strings.Cut(series, "{")
		for _, m := range []string{metricRequest, metricReserve, metricProduce} {
			if m == metricRequest && !(strings.Contains(labels, `method="POST"`) && strings.Contains(labels, `route="/v1/orders"`)) {
				continue
			}
			sc := out[m]
			switch name {
			case m + "_sum":
				sc.sum += v
			case m + "_count":
				sc.count += v
			default:
				continue
			}
			out[m] = sc
		}
	}
	return out
}

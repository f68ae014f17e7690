package testenv

import (
	"bytes"
	"context"
	"encoding/json"
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
)

// OrderWorkerTopics are the topics the order-worker group consumes: the two lanes and its two
// retry tiers (the ones the shared environment configures).
func OrderWorkerTopics() []string {
	return []string{event.TopicOrdersPlaced, event.TopicOrdersPlacedPriority,
		event.RetryTopic("order-worker", 1), event.RetryTopic("order-worker", 2)}
}

// PipelineOptions is what differs between the pipelines of tests.
type PipelineOptions struct {
	// Products is the catalog seeded in Postgres.
	Products []postgres.Product
	// Stock is the on-hand per SKU seeded in Postgres and Redis.
	Stock map[string]int64
	// Payment configures the payment simulator.
	Payment paysim.Config
	// Kafka are options of the kfake broker.
	Kafka []kfake.Opt
	// Env overrides or adds settings of the shared environment of every process (api included);
	// an empty value means the setting's default.
	Env map[string]string
	// APIEnv adds settings of the api process only.
	APIEnv map[string]string
	// Keys are more API keys to store before the api starts (it caches keys): name → scopes.
	Keys map[string][]string
	// ViaPooler puts a PgBouncer in transaction pooling mode between the processes and Postgres
	// (PgBouncer); the test's own Pool still connects directly.
	ViaPooler bool
}

// Pipeline is the order pipeline of one test: its own Postgres schema, Redis prefix and broker,
// a catalog and stock, an API key, the payment simulator, the real api process, and
// order-workers started on demand with Worker.
type Pipeline struct {
	Pool  *pgxpool.Pool
	DBURL string // direct; the processes use ProcessDBURL
	// ProcessDBURL is the DATABASE_URL of the processes: DBURL, or the pooler's with ViaPooler.
	ProcessDBURL string
	RDB          *redis.Client
	Prefix       string
	Store        *redisstore.Store
	Kafka        *kfake.Cluster
	Sim          *paysim.Server
	SimURL       string
	API          *Proc
	// Token is an API key with orders:write and orders:read.
	Token string
	// Keys are the tokens of PipelineOptions.Keys by name.
	Keys map[string]string

	env map[string]string
}

// NewPipeline starts the pipeline of opts; everything stops when the test ends.
func NewPipeline(t *testing.T, opts PipelineOptions) *Pipeline {
	t.Helper()
	p := &Pipeline{env: opts.Env}
	p.Pool, p.DBURL = Postgres(t)
	p.ProcessDBURL = p.DBURL
	if opts.ViaPooler {
		p.ProcessDBURL = PgBouncer(t, p.DBURL)
	}
	p.RDB, p.Prefix = Redis(t)
	p.Store = redisstore.New(p.RDB, p.Prefix)
	p.Kafka = Kafka(t, opts.Kafka...)
	p.Sim = paysim.New(opts.Payment)
	srv := httptest.NewServer(p.Sim.Handler())
	t.Cleanup(srv.Close)
	p.SimURL = srv.URL
	ctx := t.Context()
	if _, err := postgres.NewCatalogStore(p.Pool).UpsertMany(ctx, opts.Products); err != nil {
		t.Fatalf("seed catalog: %v", err)
	}
	if _, err := postgres.NewStockStore(p.Pool).SeedMissing(ctx, opts.Stock); err != nil {
		t.Fatalf("seed stock in Postgres: %v", err)
	}
	if _, err := p.Store.SeedStock(ctx, opts.Stock); err != nil {
		t.Fatalf("seed stock in Redis: %v", err)
	}
	p.Token = p.APIKey(t, "checkout", auth.ScopeOrdersWrite, auth.ScopeOrdersRead)
	p.Keys = map[string]string{}
	for name, scopes := range opts.Keys {
		p.Keys[name] = p.APIKey(t, name, scopes...)
	}
	apiEnv := map[string]string{"API_ADDR": "127.0.0.1:0", "API_DRAIN_DELAY": "0s", "RATE_LIMIT_PER_SECOND": "0"}
	for k, v := range opts.APIEnv {
		apiEnv[k] = v
	}
	p.API = Start(t, "api", api.Run, p.Env(apiEnv))
	return p
}

// APIKey stores a new API key with scopes and returns its token. The api sees it after its next
// key refresh; keys needed from the start belong in PipelineOptions.Keys.
func (p *Pipeline) APIKey(t *testing.T, name string, scopes ...string) string {
	t.Helper()
	tok, k, err := auth.Generate(name, scopes)
	if err != nil {
		t.Fatalf("generate key %s: %v", name, err)
	}
	if err := postgres.NewKeyStore(p.Pool).Create(t.Context(), postgres.APIKey{ID: k.ID, Name: k.Name, SecretHash: k.SecretHash, Scopes: k.Scopes}); err != nil {
		t.Fatalf("store key %s: %v", name, err)
	}
	return tok
}

// Env is the shared process environment (stores, broker, payment client with short timeouts,
// order-worker retries in seconds), then PipelineOptions.Env, then extra.
func (p *Pipeline) Env(extra map[string]string) map[string]string {
	env := map[string]string{
		"DATABASE_URL":                p.ProcessDBURL,
		"DATABASE_MAX_CONNS":          "8",
		"REDIS_ADDRS":                 p.RDB.Options().Addr,
		"REDIS_KEY_PREFIX":            p.Prefix,
		"KAFKA_BROKERS":               strings.Join(p.Kafka.ListenAddrs(), ","),
		"LOG_LEVEL":                   "info",
		"PAYMENT_URL":                 p.SimURL,
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
	for k, v := range p.env {
		env[k] = v
	}
	for k, v := range extra {
		env[k] = v
	}
	return env
}

// Worker starts an order-worker process with Env(extra).
func (p *Pipeline) Worker(t *testing.T, extra map[string]string) *Proc {
	t.Helper()
	return Start(t, "order-worker", orderworker.Run, p.Env(extra))
}

// Answer is the api's answer to one order of PlaceEach.
type Answer struct {
	Status  int
	OrderID string // set when Status is 202
	Body    []byte
}

// PlaceEach posts n orders (body(i) is the i-th) with concurrency c, each with its own
// Idempotency-Key, and calls answer (serialised) with each response. A transport error fails
// the test and gets no answer.
func (p *Pipeline) PlaceEach(t *testing.T, n, c int, body func(i int) []byte, answer func(i int, req []byte, a Answer)) {
	t.Helper()
	var mu sync.Mutex
	sem := make(chan struct{}, c)
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 20 * time.Second}
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			b := body(i)
			req, _ := http.NewRequest(http.MethodPost, p.API.URL+"/v1/orders", bytes.NewReader(b))
			req.Header.Set("Authorization", "Bearer "+p.Token)
			req.Header.Set("Idempotency-Key", uuid.NewString())
			req.Header.Set("Content-Type", "application/json")
			resp, err := client.Do(req)
			if err != nil {
				t.Errorf("order %d: %v", i, err)
				return
			}
			defer resp.Body.Close()
			rb, _ := io.ReadAll(resp.Body)
			a := Answer{Status: resp.StatusCode, Body: rb}
			if resp.StatusCode == http.StatusAccepted {
				var v struct {
					OrderID string `json:"order_id"`
				}
				_ = json.Unmarshal(rb, &v)
				a.OrderID = v.OrderID
			}
			mu.Lock()
			defer mu.Unlock()
			answer(i, b, a)
		})
	}
	wg.Wait()
}

// PlaceMany posts n orders with concurrency c and returns the accepted order ids. Every order
// must be answered 202 with its own order id: any other answer (409 out of stock included: give
// the test the stock its orders need) fails the test, so len of the result is n.
func (p *Pipeline) PlaceMany(t *testing.T, n, c int, body func(i int) []byte) map[string]bool {
	t.Helper()
	accepted := map[string]bool{}
	p.PlaceEach(t, n, c, body, func(i int, _ []byte, a Answer) {
		switch {
		case a.Status != http.StatusAccepted:
			t.Errorf("order %d: %d %s, want 202", i, a.Status, a.Body)
		case a.OrderID == "" || accepted[a.OrderID]:
			t.Errorf("order %d: 202 with order id %q (empty or already given): %s", i, a.OrderID, a.Body)
		default:
			accepted[a.OrderID] = true
		}
	})
	if len(accepted) != n && !t.Failed() {
		t.Fatalf("%d of %d orders accepted", len(accepted), n)
	}
	return accepted
}

// PlaceManyOutOfStock is PlaceMany for tests whose orders ask for more than the stock: a 409
// out-of-stock answer is allowed too. It returns the accepted order ids with the number of the
// order that got each, and how many were refused as out of stock; any other answer fails the
// test, so accepted plus refused is n.
func (p *Pipeline) PlaceManyOutOfStock(t *testing.T, n, c int, body func(i int) []byte) (accepted map[string]int, refused int) {
	t.Helper()
	accepted = map[string]int{}
	p.PlaceEach(t, n, c, body, func(i int, _ []byte, a Answer) {
		switch {
		case a.Status == http.StatusConflict && strings.Contains(string(a.Body), "out-of-stock"):
			refused++
		case a.Status != http.StatusAccepted:
			t.Errorf("order %d: %d %s, want 202 or 409 out of stock", i, a.Status, a.Body)
		case a.OrderID == "":
			t.Errorf("order %d: 202 without an order id: %s", i, a.Body)
		default:
			if _, dup := accepted[a.OrderID]; dup {
				t.Errorf("order %d: 202 with the order id %s of another order", i, a.OrderID)
			}
			accepted[a.OrderID] = i
		}
	})
	if len(accepted)+refused != n && !t.Failed() {
		t.Fatalf("%d accepted + %d refused of %d orders", len(accepted), refused, n)
	}
	return accepted, refused
}

// OrderJSON is the body of an order paid with token; lines are (sku string, quantity int) pairs.
func OrderJSON(token, priority string, lines ...any) []byte {
	return OrderJSONFor("buyer@example.com", token, priority, lines...)
}

// OrderJSONFor is OrderJSON for the customer e-mail address email.
func OrderJSONFor(email, token, priority string, lines ...any) []byte {
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

// WaitDecided waits until n orders have a row in Postgres; it fails the test after within.
func (p *Pipeline) WaitDecided(t *testing.T, n int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		var got int
		if err := p.Pool.QueryRow(t.Context(), `SELECT count(*) FROM orders`).Scan(&got); err != nil {
			t.Fatalf("count orders: %v", err)
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

// Records reads every record of topic.
func (p *Pipeline) Records(t *testing.T, topic string) []*kgo.Record {
	t.Helper()
	return Records(t, p.Kafka, topic)
}

// WaitSettled waits until group has committed every record of topics (lag 0).
func (p *Pipeline) WaitSettled(t *testing.T, group string, topics []string, within time.Duration) {
	t.Helper()
	WaitCommitted(t, p.Kafka, group, topics, within)
}

// Records reads every record of topic on cluster (up to its end offsets when called).
func Records(t testing.TB, cluster *kfake.Cluster, topic string) []*kgo.Record {
	t.Helper()
	return RecordsAt(t, cluster.ListenAddrs(), topic)
}

// RecordsAt is Records on the broker at addrs (kfake or real Kafka).
func RecordsAt(t testing.TB, addrs []string, topic string) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.ConsumeTopics(topic),
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

// WaitCommitted waits until group has committed every record of topics on cluster (lag 0): all
// its work on them is durable. It fails the test after within.
func WaitCommitted(t testing.TB, cluster *kfake.Cluster, group string, topics []string, within time.Duration) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	deadline := time.Now().Add(within)
	for {
		lag, total := int64(-1), int64(0)
		ends, err := adm.ListEndOffsets(t.Context(), topics...)
		if err == nil {
			var committed kadm.OffsetResponses
			if committed, err = adm.FetchOffsets(t.Context(), group); err == nil {
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
			t.Fatalf("%s not settled after %s: lag %d of %d records on %v (%v)", group, within, lag, total, topics, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

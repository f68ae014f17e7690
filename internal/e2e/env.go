// Package e2e runs orderpipe end to end on one machine in a private environment and breaks it
// on purpose: its own Kafka-protocol broker (`orderctl broker`, with a fault-injection control
// endpoint), its own redis-server and Postgres cluster, and every service (api, order-worker
// replicas, inventory-sync, notifier, the payment simulator and the e-mail sink) as real OS
// processes from the built binaries, all on loopback. A Supervisor starts, stops, kills -9 and
// restarts them; chaos steps of a scenario (internal/loadgen) only ever touch processes the run
// started. A run seeds the scenario, plays its load, executes its chaos steps at their offsets,
// samples consumer lag, waits for the pipeline to settle, runs the invariant checker
// (internal/checker) and writes a report (Markdown, JSON and an SVG plot).
package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/orderpipe/orderpipe/internal/auth"
	"github.com/orderpipe/orderpipe/internal/kafka"
	"github.com/orderpipe/orderpipe/internal/postgres"
	"github.com/orderpipe/orderpipe/internal/redisstore"
	"github.com/orderpipe/orderpipe/internal/topology"
)

// Options configures a private environment.
type Options struct {
	// Bin is the directory holding api, order-worker, inventory-sync, notifier and orderctl
	// (make build puts them in bin/).
	Bin string
	// Dir holds data and logs; empty: a new temporary directory, removed by Close unless Keep.
	Dir  string
	Keep bool
	// Partitions per topic (default 6) and broker nodes (default 3, so a node can be removed).
	Partitions  int
	BrokerNodes int
	// Workers is the number of order-worker replicas to start (default 1).
	Workers int
	// Payment latency, jitter and decline and fault rates of the simulator.
	PaymentLatency, PaymentJitter time.Duration
	DeclineRate, FaultRate        float64
	// Env is added to (or overrides) the environment of every service; APIEnv of the api only.
	Env, APIEnv map[string]string
	// Progress receives one line per step (nil: discarded).
	Progress io.Writer
	// KillWait is how long a kill or stop step of a consumer waits for its group to have work in
	// hand (records not yet committed) before it signals the process anyway, unconfirmed
	// (default 10s).
	KillWait time.Duration
}

func (o *Options) defaults() error {
	if o.Bin == "" {
		return errors.New("e2e: Options.Bin (the directory of the built binaries) is required")
	}
	for _, b := range []string{"api", "order-worker", "inventory-sync", "notifier", "orderctl"} {
		if _, err := os.Stat(filepath.Join(o.Bin, b)); err != nil {
			return fmt.Errorf("e2e: binary %s missing (run make build): %w", b, err)
		}
	}
	if o.Partitions == 0 {
		o.Partitions = 6
	}
	if o.BrokerNodes == 0 {
		o.BrokerNodes = 3
	}
	if o.Workers == 0 {
		o.Workers = 1
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	if o.KillWait == 0 {
		o.KillWait = 10 * time.Second
	}
	return nil
}

// Env is a running private environment.
type Env struct {
	Dir         string
	Sup         *Supervisor
	Brokers     []string
	ControlURL  string // the broker's fault-injection endpoint
	RedisAddr   string
	Prefix      string // Redis key prefix of the services
	DatabaseURL string
	PaymentURL  string
	MailURL     string // the e-mail sink's listing page
	MailDir     string // its .eml files
	SMTPAddr    string
	APIURL      string
	Token       string // an API key with orders:write and orders:read
	// CatalogToken is an API key with catalog:write, for the scenario's promotions.
	CatalogToken string

	opts     Options
	pool     *pgxpool.Pool
	rdb      *redis.Client
	pgPort   int
	mu       sync.Mutex
	replicas int // order-worker replicas started so far (names are never reused)
	ports    map[string]string
	extra    map[string]map[string]string // per service: settings beyond serviceEnv
}

// Start builds the environment: broker, topics, redis, postgres, migrations, an API key, the
// payment simulator, the e-mail sink, order-worker replicas, inventory-sync, the notifier and
// the api. On error everything started so far is stopped.
func Start(ctx context.Context, opts Options) (_ *Env, err error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	dir := opts.Dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "orderpipe-e2e-"); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	// Postgres (running as the postgres user) must be able to reach its data directory.
	_ = os.Chmod(dir, 0o755)
	sup, err := NewSupervisor(filepath.Join(dir, "logs"))
	if err != nil {
		return nil, err
	}
	e := &Env{Dir: dir, Sup: sup, opts: opts, Prefix: "op:", ports: map[string]string{}, extra: map[string]map[string]string{}}
	defer func() {
		if err != nil {
			e.Close()
		}
	}()
	say := func(f string, a ...any) { fmt.Fprintf(opts.Progress, "e2e: "+f+"\n", a...) }

	// The broker, with its control endpoint; it prints its addresses.
	addrs := make(chan string, 2)
	args := []string{"broker", "--data-dir", filepath.Join(dir, "kafka"), "--control-addr", "127.0.0.1:0"}
	for range opts.BrokerNodes {
		args = append(args, "--port", "0")
	}
	if _, err = sup.Start(ctx, Spec{
		Name: "broker", Group: "broker",
		Cmd: func() *exec.Cmd { return exec.Command(filepath.Join(opts.Bin, "orderctl"), args...) },
		Line: func(l string) {
			if rest, ok := strings.CutPrefix(l, "broker listening on ["); ok {
				addrs <- "B" + rest[:strings.Index(rest, "]")]
			} else if rest, ok := strings.CutPrefix(l, "broker control on "); ok {
				addrs <- "C" + strings.TrimSpace(rest)
			}
		},
	}); err != nil {
		return nil, err
	}
	for range 2 {
		select {
		case a := <-addrs:
			if a[0] == 'B' {
				e.Brokers = strings.Fields(a[1:])
			} else {
				e.ControlURL = a[1:]
			}
		case <-time.After(30 * time.Second):
			return nil, errors.New("broker did not print its addresses within 30s (see logs/broker.log)")
		}
	}
	if err = e.provisionTopics(ctx); err != nil {
		return nil, err
	}
	say("broker %v (control %s), topics ready", e.Brokers, e.ControlURL)

	// Redis and Postgres of our own.
	rport, err := freePort()
	if err != nil {
		return nil, err
	}
	rdir := filepath.Join(dir, "redis")
	if err = os.MkdirAll(rdir, 0o755); err != nil {
		return nil, err
	}
	if _, err = sup.Start(ctx, redisSpec(rdir, rport)); err != nil {
		return nil, err
	}
	e.RedisAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(rport))
	e.rdb = redis.NewClient(&redis.Options{Addr: e.RedisAddr})
	if e.pgPort, err = freePort(); err != nil {
		return nil, err
	}
	pgSpec, err := initPostgres(ctx, filepath.Join(dir, "pg"), e.pgPort)
	if err != nil {
		return nil, err
	}
	if _, err = sup.Start(ctx, pgSpec); err != nil {
		return nil, err
	}
	if err = createDatabase(ctx, postgresURL(e.pgPort, "postgres"), "orderpipe"); err != nil {
		return nil, err
	}
	e.DatabaseURL = postgresURL(e.pgPort, "orderpipe")
	if e.pool, err = postgres.Open(ctx, e.DatabaseURL, 8); err != nil {
		return nil, err
	}
	if _, err = postgres.Migrate(ctx, e.pool); err != nil {
		return nil, err
	}
	tok, k, err := auth.Generate("e2e-checkout", []string{auth.ScopeOrdersWrite, auth.ScopeOrdersRead})
	if err != nil {
		return nil, err
	}
	if err = postgres.NewKeyStore(e.pool).Create(ctx, postgres.APIKey{ID: k.ID, Name: k.Name, SecretHash: k.SecretHash, Scopes: k.Scopes}); err != nil {
		return nil, fmt.Errorf("store API key: %w", err)
	}
	e.Token = tok
	if e.CatalogToken, err = storeKey(ctx, e.pool, "e2e-merchandiser", auth.ScopeCatalogWrite); err != nil {
		return nil, err
	}
	say("redis %s, postgres %s (private), migrated", e.RedisAddr, e.DatabaseURL)

	// Third parties: the payment simulator and the e-mail sink.
	if err = e.startPaysim(ctx); err != nil {
		return nil, err
	}
	smtp, err := freeAddr()
	if err != nil {
		return nil, err
	}
	mailHTTP, err := freeAddr()
	if err != nil {
		return nil, err
	}
	e.SMTPAddr, e.MailURL, e.MailDir = smtp, "http://"+mailHTTP, filepath.Join(dir, "mail")
	if _, err = sup.Start(ctx, Spec{
		Name: "mailsink", Group: "mailsink",
		Cmd: func() *exec.Cmd {
			c := exec.Command(filepath.Join(opts.Bin, "orderctl"), "mailsink", "--addr", smtp, "--dir", e.MailDir, "--http-addr", mailHTTP)
			c.Env = e.serviceEnv(nil)
			return c
		},
		Ready: func(ctx context.Context) error { return waitHTTP(ctx, e.MailURL+"/") },
	}); err != nil {
		return nil, err
	}
	say("paysim %s, mailsink %s", e.PaymentURL, e.MailURL)
	return e, nil
}

// storeKey creates an API key with scopes in Postgres and returns its token.
func storeKey(ctx context.Context, pool *pgxpool.Pool, name string, scopes ...string) (string, error) {
	tok, k, err := auth.Generate(name, scopes)
	if err != nil {
		return "", err
	}
	if err := postgres.NewKeyStore(pool).Create(ctx, postgres.APIKey{ID: k.ID, Name: k.Name, SecretHash: k.SecretHash, Scopes: k.Scopes}); err != nil {
		return "", fmt.Errorf("store API key %s: %w", name, err)
	}
	return tok, nil
}

// StartServices starts the order-worker replicas, inventory-sync, the notifier and the api.
// Seed the catalog and stock before (the api caches the catalog, refreshing it every 5s).
func (e *Env) StartServices(ctx context.Context) error {
	for range e.opts.Workers {
		if err := e.AddWorker(ctx); err != nil {
			return err
		}
	}
	for _, s := range []struct{ name, bin, addrVar string }{
		{"inventory-sync", "inventory-sync", "INVENTORY_ADMIN_ADDR"},
		{"notifier", "notifier", "NOTIFIER_ADMIN_ADDR"},
	} {
		if err := e.startService(ctx, s.name, s.name, s.bin, s.addrVar, nil); err != nil {
			return err
		}
	}
	if err := e.startService(ctx, "api", "api", "api", "API_ADDR", e.opts.APIEnv); err != nil {
		return err
	}
	e.APIURL = "http://" + e.port("api")
	fmt.Fprintf(e.opts.Progress, "e2e: services up: api %s, %d order-worker, inventory-sync, notifier\n", e.APIURL, e.opts.Workers)
	return nil
}

func (e *Env) port(name string) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.ports[name]
}

// startService starts bin as process name (in group) with its listen address in addrVar.
func (e *Env) startService(ctx context.Context, name, group, bin, addrVar string, extra map[string]string) error {
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	e.mu.Lock()
	e.ports[name] = addr
	e.mu.Unlock()
	env := map[string]string{addrVar: addr}
	for k, v := range extra {
		env[k] = v
	}
	e.mu.Lock()
	e.extra[name] = env
	e.mu.Unlock()
	_, err = e.Sup.Start(ctx, Spec{
		Name: name, Group: group,
		Cmd: func() *exec.Cmd {
			c := exec.Command(filepath.Join(e.opts.Bin, bin))
			e.mu.Lock()
			c.Env = e.serviceEnv(e.extra[name])
			e.mu.Unlock()
			return c
		},
		Ready: func(ctx context.Context) error { return waitHTTP(ctx, "http://"+addr+"/readyz") },
	})
	return err
}

// Reconfigure stops the named service gracefully, changes its settings (an empty value removes
// one) and starts it again, waiting until it is ready.
func (e *Env) Reconfigure(ctx context.Context, name string, set map[string]string) error {
	p, ok := e.Sup.Get(name)
	if !ok {
		return fmt.Errorf("no process %s", name)
	}
	if err := e.Sup.Stop(p); err != nil {
		return err
	}
	e.mu.Lock()
	for k, v := range set {
		if v == "" {
			delete(e.extra[name], k)
		} else {
			e.extra[name][k] = v
		}
	}
	e.mu.Unlock()
	return e.Sup.Restart(ctx, p)
}

// AddWorker starts one more order-worker replica (a rebalance of its group).
func (e *Env) AddWorker(ctx context.Context) error {
	e.mu.Lock()
	e.replicas++
	name := fmt.Sprintf("order-worker-%d", e.replicas)
	e.mu.Unlock()
	return e.startService(ctx, name, "order-worker", "order-worker", "WORKER_ADMIN_ADDR", nil)
}

// ScaleWorkers starts or gracefully stops order-worker replicas until n run.
func (e *Env) ScaleWorkers(ctx context.Context, n int) error {
	if n < 0 {
		return fmt.Errorf("replicas: want 0 or more, got %d", n)
	}
	for len(e.Sup.Group("order-worker")) < n {
		if err := e.AddWorker(ctx); err != nil {
			return err
		}
	}
	for {
		running := e.Sup.Group("order-worker")
		if len(running) <= n {
			return nil
		}
		last := running[len(running)-1]
		if err := e.Sup.Stop(last); err != nil {
			return err
		}
		e.Sup.Remove(last.Name())
	}
}

// serviceEnv is the environment of every service: the private stores and broker, short retry
// tiers and reconciliation intervals so a run settles in minutes, then Options.Env, then extra.
func (e *Env) serviceEnv(extra map[string]string) []string {
	m := map[string]string{
		"PATH":                     os.Getenv("PATH"),
		"DATABASE_URL":             e.DatabaseURL,
		"DATABASE_MAX_CONNS":       "12",
		"REDIS_ADDRS":              e.RedisAddr,
		"REDIS_KEY_PREFIX":         e.Prefix,
		"KAFKA_BROKERS":            strings.Join(e.Brokers, ","),
		"KAFKA_PARTITIONS":         strconv.Itoa(e.opts.Partitions),
		"LOG_FORMAT":               "json",
		"LOG_LEVEL":                "info",
		"PAYMENT_URL":              e.PaymentURL,
		"SMTP_HOST":                hostOf(e.SMTPAddr),
		"SMTP_PORT":                portOf(e.SMTPAddr),
		"SMTP_TLS":                 "off",
		"API_DRAIN_DELAY":          "0s",
		"RATE_LIMIT_PER_SECOND":    "0",
		"ORDER_WORKER_RETRY_TIERS": "5s,20s",
		"NOTIFIER_RETRY_TIERS":     "5s,20s",
		"REPORTS_RETRY_TIERS":      "5s",
		"RECONCILE_INTERVAL":       "5s",
		"KAFKA_SESSION_TIMEOUT":    "6s",
		"SMTP_TIMEOUT":             "5s",
		"NOTIFIER_SEND_LEASE":      "15s",
	}
	for k, v := range e.opts.Env {
		m[k] = v
	}
	for k, v := range extra {
		m[k] = v
	}
	out := make([]string, 0, len(m))
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	return out
}

func hostOf(addr string) string { h, _, _ := net.SplitHostPort(addr); return h }
func portOf(addr string) string { _, p, _ := net.SplitHostPort(addr); return p }

func (e *Env) startPaysim(ctx context.Context) error {
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	e.PaymentURL = "http://" + addr
	o := e.opts
	_, err = e.Sup.Start(ctx, Spec{
		Name: "paysim", Group: "paysim",
		Cmd: func() *exec.Cmd {
			c := exec.Command(filepath.Join(o.Bin, "orderctl"), "paysim", "--addr", addr,
				"--latency", o.PaymentLatency.String(), "--jitter", o.PaymentJitter.String(),
				"--decline-rate", strconv.FormatFloat(o.DeclineRate, 'g', -1, 64),
				"--fault-rate", strconv.FormatFloat(o.FaultRate, 'g', -1, 64))
			c.Env = e.serviceEnv(nil)
			return c
		},
		Ready: func(ctx context.Context) error { return waitHTTP(ctx, e.PaymentURL+"/healthz") },
	})
	return err
}

func (e *Env) provisionTopics(ctx context.Context) error {
	cl, err := kafka.NewClient(kafka.ClientConfig{Brokers: e.Brokers, ClientID: "orderpipe-e2e"})
	if err != nil {
		return err
	}
	defer cl.Close()
	specs := topology.Topics(topology.Settings{Partitions: int32(e.opts.Partitions), Replication: 1})
	_, err = kafka.EnsureTopics(ctx, kadm.NewClient(cl), specs, true)
	return err
}

// Pool is a Postgres pool on the private database (reconnecting after a restart).
func (e *Env) Pool() *pgxpool.Pool { return e.pool }

// Redis is a client of the private redis-server.
func (e *Env) Redis() *redis.Client { return e.rdb }

// Store is the services' Redis store (same prefix).
func (e *Env) Store() *redisstore.Store { return redisstore.New(e.rdb, e.Prefix) }

// Close stops every process (api first, stores last) and removes the directory unless kept.
func (e *Env) Close() {
	if e.pool != nil {
		e.pool.Close()
	}
	if e.rdb != nil {
		_ = e.rdb.Close()
	}
	e.Sup.StopAll([]string{"api", "order-worker", "inventory-sync", "notifier", "paysim", "mailsink", "broker", "redis", "postgres"})
	if !e.opts.Keep && e.opts.Dir == "" {
		_ = os.RemoveAll(e.Dir)
	}
}

func waitHTTP(ctx context.Context, url string) error {
	return poll(ctx, func(ctx context.Context) error {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s answered %d", url, resp.StatusCode)
		}
		return nil
	})
}

// createDatabase creates db on the server at adminURL.
func createDatabase(ctx context.Context, adminURL, db string) error {
	pool, err := pgxpool.New(ctx, adminURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	if _, err := pool.Exec(ctx, "CREATE DATABASE "+db); err != nil {
		return fmt.Errorf("create database %s: %w", db, err)
	}
	return nil
}

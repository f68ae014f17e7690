package orderctl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/spf13/cobra"

	"github.com/orderpipe/orderpipe/internal/auth"
	"github.com/orderpipe/orderpipe/internal/demo"
	"github.com/orderpipe/orderpipe/internal/kafkaserver"
	"github.com/orderpipe/orderpipe/internal/postgres"
)

type devFlags struct {
	broker          string // engine of `orderctl broker`: kfake or kafka
	dataDir         string
	apiAddr         string
	brokerPort      int
	paysimAddr      string
	workerAdminAddr string
	smtpAddr        string
	mailHTTPAddr    string
	notifierAddr    string
	inventoryAddr   string
}

func (e *env) devCmd() *cobra.Command {
	var f devFlags
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run the whole pipeline locally: broker, topics, migrations, demo data and keys, api",
		Long: "Starts a standalone Kafka-protocol broker (kfake; with --broker kafka a real Apache Kafka\n" +
			"node, see `orderctl broker --help`) with a data directory, creates the\n" +
			"topics, creates the database if missing and migrates it, loads the demo catalog and stock,\n" +
			"prints demo API keys, and runs the api (and the other services as they become available)\n" +
			"as child processes from the same bin/ directory. Ctrl-C stops everything gracefully.\n" +
			"Uses the Postgres and Redis at DATABASE_URL and REDIS_ADDRS; when nothing answers on such a\n" +
			"loopback address, starts a private instance from the installed binaries (Debian's postgresql\n" +
			"and redis-server), with its data under --data-dir, and says so.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return e.dev(cmd.Context(), f) },
	}
	cmd.Flags().StringVar(&f.broker, "broker", engineKfake, "broker engine: kfake (in process, no Java) or kafka (one real Apache Kafka node; needs java and mvn)")
	cmd.Flags().StringVar(&f.dataDir, "data-dir", ".data", "directory for the broker's data and the demo keys")
	cmd.Flags().StringVar(&f.apiAddr, "api-addr", "127.0.0.1:8080", "listen address of the api")
	cmd.Flags().IntVar(&f.brokerPort, "broker-port", 9092, "port of the development broker")
	cmd.Flags().StringVar(&f.paysimAddr, "paysim-addr", "127.0.0.1:8090", "listen address of the payment-provider simulator")
	cmd.Flags().StringVar(&f.workerAdminAddr, "worker-admin-addr", "127.0.0.1:9091", "admin address (/readyz, /metrics) of order-worker")
	cmd.Flags().StringVar(&f.smtpAddr, "smtp-addr", "127.0.0.1:2525", "SMTP address of the local e-mail sink")
	cmd.Flags().StringVar(&f.mailHTTPAddr, "mail-http-addr", "127.0.0.1:8025", "listing page of the local e-mail sink")
	cmd.Flags().StringVar(&f.notifierAddr, "notifier-admin-addr", "127.0.0.1:9095", "admin address of the notifier")
	cmd.Flags().StringVar(&f.inventoryAddr, "inventory-admin-addr", "127.0.0.1:9093", "admin address of inventory-sync")
	return cmd
}

func (e *env) dev(ctx context.Context, f devFlags) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	bin := filepath.Dir(self)
	apiBin := filepath.Join(bin, "api")
	if _, err := os.Stat(apiBin); err != nil {
		return fmt.Errorf("%s not found: build every binary into one directory first (make build): %w", apiBin, err)
	}
	if err := os.MkdirAll(f.dataDir, 0o755); err != nil {
		return err
	}

	var children []*child
	exited := make(chan error, 16)
	defer func() {
		for i := len(children) - 1; i >= 0; i-- {
			children[i].stop()
		}
	}()
	servers, err := e.privateServices(ctx, f.dataDir, exited)
	children = append(children, servers...)
	if err != nil {
		return err
	}
	if err := createDatabase(ctx, e.cfg.DatabaseURL); err != nil {
		return err
	}

	brokerAddr := fmt.Sprintf("127.0.0.1:%d", f.brokerPort)
	e.cfg.KafkaBrokers = []string{brokerAddr}
	childEnv := append(os.Environ(), "KAFKA_BROKERS="+brokerAddr, "DATABASE_URL="+e.cfg.DatabaseURL)
	var broker *exec.Cmd
	switch f.broker {
	case engineKfake:
		broker = exec.Command(self, "broker", "--data-dir", filepath.Join(f.dataDir, "kafka"), "--port", fmt.Sprint(f.brokerPort))
	case engineKafka:
		broker = exec.Command(self, "broker", "--engine", engineKafka, "--nodes", "1",
			"--data-dir", filepath.Join(f.dataDir, "apache-kafka"), "--port", fmt.Sprint(f.brokerPort))
	default:
		return usageErr("--broker %q: want %s or %s", f.broker, engineKfake, engineKafka)
	}
	broker.Env, broker.Stdout, broker.Stderr = childEnv, e.stdout, os.Stderr
	c, err := startChild(broker, exited)
	if err != nil {
		return err
	}
	children = append(children, c)
	if f.broker == engineKafka {
		// The first start resolves the server jars from Maven Central; a JVM then takes seconds
		// until it serves metadata (a listening port is not enough).
		fmt.Fprintln(e.stdout, "broker: starting Apache Kafka (one node)…")
		waitCtx, cancel := context.WithTimeout(ctx, 5*time.Minute)
		err := waitKafka(waitCtx, brokerAddr, exited)
		cancel()
		if err != nil {
			return fmt.Errorf("broker did not come up: %w", err)
		}
	} else if err := waitTCP(ctx, brokerAddr, 15*time.Second); err != nil {
		return fmt.Errorf("broker did not come up: %w", err)
	}
	if _, err := e.ensureTopics(ctx, true); err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, "topics: ready")

	pool, err := e.pool(ctx)
	if err != nil {
		return err
	}
	applied, err := postgres.Migrate(ctx, pool)
	if err != nil {
		pool.Close()
		return err
	}
	fmt.Fprintf(e.stdout, "migrations: %d applied\n", len(applied))
	if err := e.seed(ctx, pool); err != nil {
		pool.Close()
		return err
	}
	keys, err := e.demoKeys(ctx, filepath.Join(f.dataDir, "demo-keys.json"))
	if err != nil {
		pool.Close()
		return err
	}
	whSecret, err := demoWarehouse(ctx, postgres.NewInventoryStore(pool), filepath.Join(f.dataDir, "demo-warehouse-secret"))
	pool.Close()
	if err != nil {
		return err
	}

	// The payment provider (simulator) and the order worker.
	sim := exec.Command(self, "paysim", "--addr", f.paysimAddr, "--latency", "60ms", "--jitter", "40ms", "--decline-rate", "0.03", "--fault-rate", "0.01")
	sim.Env, sim.Stdout, sim.Stderr = childEnv, os.Stderr, os.Stderr
	if c, err = startChild(sim, exited); err != nil {
		return err
	}
	children = append(children, c)
	if err := waitHTTP(ctx, "http://"+f.paysimAddr+"/healthz", 15*time.Second); err != nil {
		return fmt.Errorf("payment simulator did not come up: %w", err)
	}
	worker := exec.Command(filepath.Join(bin, "order-worker"))
	worker.Env = append(childEnv, "PAYMENT_URL=http://"+f.paysimAddr, "WORKER_ADMIN_ADDR="+f.workerAdminAddr, "LOG_FORMAT=text")
	worker.Stdout, worker.Stderr = os.Stderr, os.Stderr
	if c, err = startChild(worker, exited); err != nil {
		return err
	}
	children = append(children, c)
	if err := waitHTTP(ctx, "http://"+f.workerAdminAddr+"/readyz", 30*time.Second); err != nil {
		return fmt.Errorf("order-worker did not become ready: %w", err)
	}

	// inventory-sync: warehouse stock events, the hold reaper and reconciliation.
	inv := exec.Command(filepath.Join(bin, "inventory-sync"))
	inv.Env = append(childEnv, "INVENTORY_ADMIN_ADDR="+f.inventoryAddr, "LOG_FORMAT=text")
	inv.Stdout, inv.Stderr = os.Stderr, os.Stderr
	if c, err = startChild(inv, exited); err != nil {
		return err
	}
	children = append(children, c)
	if err := waitHTTP(ctx, "http://"+f.inventoryAddr+"/readyz", 30*time.Second); err != nil {
		return fmt.Errorf("inventory-sync did not become ready: %w", err)
	}

	// The local e-mail sink and the notifier (e-mails and sales reports, low priority).
	smtpHost, smtpPort, err := net.SplitHostPort(f.smtpAddr)
	if err != nil {
		return usageErr("--smtp-addr: %v", err)
	}
	sink := exec.Command(self, "mailsink", "--addr", f.smtpAddr, "--dir", filepath.Join(f.dataDir, "mail"), "--http-addr", f.mailHTTPAddr)
	sink.Env, sink.Stdout, sink.Stderr = childEnv, os.Stderr, os.Stderr
	if c, err = startChild(sink, exited); err != nil {
		return err
	}
	children = append(children, c)
	if err := waitTCP(ctx, f.smtpAddr, 15*time.Second); err != nil {
		return fmt.Errorf("e-mail sink did not come up: %w", err)
	}
	notifier := exec.Command(filepath.Join(bin, "notifier"))
	notifier.Env = append(childEnv, "NOTIFIER_ADMIN_ADDR="+f.notifierAddr, "SMTP_HOST="+smtpHost, "SMTP_PORT="+smtpPort,
		"SMTP_TLS=off", "LOG_FORMAT=text", "REPORTS_DAILY_TO=ops@shop.example")
	notifier.Stdout, notifier.Stderr = os.Stderr, os.Stderr
	if c, err = startChild(notifier, exited); err != nil {
		return err
	}
	children = append(children, c)
	if err := waitHTTP(ctx, "http://"+f.notifierAddr+"/readyz", 30*time.Second); err != nil {
		return fmt.Errorf("notifier did not become ready: %w", err)
	}

	apiCmd := exec.Command(apiBin)
	apiCmd.Env = append(childEnv, "API_ADDR="+f.apiAddr, "API_DRAIN_DELAY=0s", "LOG_FORMAT=text")
	apiCmd.Stdout, apiCmd.Stderr = os.Stderr, os.Stderr
	if c, err = startChild(apiCmd, exited); err != nil {
		return err
	}
	children = append(children, c)
	base := "http://" + f.apiAddr
	if err := waitHTTP(ctx, base+"/readyz", 30*time.Second); err != nil {
		return fmt.Errorf("api did not become ready: %w", err)
	}
	e.banner(base, brokerAddr, f, keys, whSecret)

	select {
	case <-ctx.Done():
		fmt.Fprintln(e.stdout, "stopping…")
		return nil
	case err := <-exited:
		return err
	}
}

func (e *env) banner(base, broker string, f devFlags, keys map[string]string, whSecret []byte) {
	hot := demo.HotSKUs()[0]
	fmt.Fprintf(e.stdout, `
orderpipe is running
  api      %[1]s   (metrics %[1]s/metrics, readiness %[1]s/readyz)
  broker   %[2]s   (%[14]s; kcat -b %[2]s -L)
  payments http://%[6]s   (simulator: GET /v1/stats)
  worker   http://%[7]s   (order-worker: /readyz, /metrics)
  stock    http://%[10]s   (inventory-sync: /readyz, /metrics; publish stock events to inventory.stock)
  e-mail   http://%[8]s   (every e-mail the notifier sent; .eml files in %[9]s)

demo API keys (also in %[11]s)
  checkout  %[3]s   scopes orders:write, orders:read
  ops       %[4]s   scopes catalog:write, inventory:write, reports:read, orders:read, accounts:write

demo warehouse %[12]s (registered for POST /v1/warehouse/stock; orderctl warehouses list)
  webhook secret  %[13]s

try it
  curl -s %[1]s/v1/inventory/%[5]s
  curl -s -X POST %[1]s/v1/orders \
    -H "Authorization: Bearer %[3]s" \
    -H "Idempotency-Key: $(cat /proc/sys/kernel/random/uuid)" \
    -H "Content-Type: application/json" \
    -d '{"customer_id":"c-1001","email":"buyer@example.com","priority":"standard","lines":[{"sku":"%[5]s","quantity":1}],"payment":{"method":"card","token":"tok_visa_4242"},"shipping_address":{"name":"Ada Buyer","line1":"Hauptstr. 1","city":"Berlin","postal_code":"10115","country":"DE"}}'

Ctrl-C stops everything.
`, base, broker, keys["checkout"], keys["ops"], hot, f.paysimAddr, f.workerAdminAddr, f.mailHTTPAddr, filepath.Join(f.dataDir, "mail"), f.inventoryAddr, filepath.Join(f.dataDir, "demo-keys.json"), demoWarehouseID, whSecret, brokerEngineName(f.broker))
}

// demoWarehouseID is the warehouse of the README's examples ("For warehouse integrators").
const demoWarehouseID = "WH-BER-1"

// demoWarehouse registers the demo warehouse with the webhook secret saved in path (a new one the
// first time), so the README's signed webhook example runs against `make run` and the secret
// stays the same across restarts. It returns the secret.
func demoWarehouse(ctx context.Context, s *postgres.InventoryStore, path string) ([]byte, error) {
	secret, err := os.ReadFile(path)
	if err != nil || len(secret) < 16 {
		if secret, err = newWarehouseSecret(); err != nil {
			return nil, err
		}
		if err := os.WriteFile(path, secret, 0o600); err != nil {
			return nil, fmt.Errorf("save the demo warehouse secret: %w", err)
		}
	}
	if err := s.PutWarehouse(ctx, postgres.Warehouse{ID: demoWarehouseID, Name: "Berlin (demo)", Secret: secret}); err != nil {
		return nil, err
	}
	return secret, nil
}

// demoKeys reuses the demo keys saved in path while they are still valid, and creates them
// otherwise, so `make run` prints the same keys across restarts.
func (e *env) demoKeys(ctx context.Context, path string) (map[string]string, error) {
	want := map[string][]string{
		"checkout": {auth.ScopeOrdersWrite, auth.ScopeOrdersRead},
		"ops":      {auth.ScopeCatalogWrite, auth.ScopeInventoryWrite, auth.ScopeReportsRead, auth.ScopeOrdersRead, auth.ScopeAccountsWrite},
	}
	saved := map[string]string{}
	if b, err := os.ReadFile(path); err == nil {
		_ = json.Unmarshal(b, &saved)
	}
	p, err := e.pool(ctx)
	if err != nil {
		return nil, err
	}
	defer p.Close()
	rows, err := postgres.NewKeyStore(p).All(ctx)
	if err != nil {
		return nil, err
	}
	live := map[string][]string{} // scopes of the keys not revoked
	for _, r := range rows {
		if r.RevokedAt == nil {
			live[r.ID] = r.Scopes
		}
	}
	out := map[string]string{}
	for name, scopes := range want {
		if tok, ok := saved[name]; ok {
			// A saved key is reused while it is valid and has the scopes this version gives it.
			if id, _, err := auth.Parse(tok); err == nil && live[id] != nil && sameScopes(live[id], scopes) {
				out[name] = tok
				continue
			}
		}
		tok, err := e.createKey(ctx, "demo-"+name, scopes)
		if err != nil {
			return nil, err
		}
		out[name] = tok
	}
	b, _ := json.MarshalIndent(out, "", "  ")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return nil, err
	}
	return out, nil
}

func sameScopes(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// createDatabase creates the database named in dbURL when it does not exist, connecting to the
// server's maintenance database.
func createDatabase(ctx context.Context, dbURL string) error {
	u, err := url.Parse(dbURL)
	if err != nil {
		return fmt.Errorf("DATABASE_URL: %w", err)
	}
	name := strings.TrimPrefix(u.Path, "/")
	if name == "" || name == "postgres" {
		return nil
	}
	admin := *u
	admin.Path = "/postgres"
	conn, err := pgx.Connect(ctx, admin.String())
	if err != nil {
		return fmt.Errorf("connect to postgres to create database %s: %w", name, err)
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&exists); err != nil {
		return fmt.Errorf("look up database %s: %w", name, err)
	}
	if exists {
		return nil
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return fmt.Errorf("create database %s: %w", name, err)
	}
	return nil
}

func brokerEngineName(engine string) string {
	if engine == engineKafka {
		return "Apache Kafka, one node"
	}
	return "kfake"
}

// waitKafka waits until the broker at addr serves metadata, or the broker process (or any other
// child) exits.
func waitKafka(ctx context.Context, addr string, exited <-chan error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go func() {
		select {
		case err := <-exited:
			cancel(err)
		case <-ctx.Done():
		}
	}()
	err := kafkaserver.WaitReady(ctx, []string{addr}, 1)
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) && !errors.Is(cause, context.DeadlineExceeded) {
		return cause
	}
	return err
}

func waitTCP(ctx context.Context, addr string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		c, err := net.DialTimeout("tcp", addr, 500*time.Millisecond)
		if err == nil {
			return c.Close()
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return errors.Join(err, ctx.Err())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func waitHTTP(ctx context.Context, u string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("%s answered %d", u, resp.StatusCode)
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return errors.Join(err, ctx.Err())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// child is a process dev started; stop ends it gracefully (SIGTERM, then SIGKILL after 20s).
type child struct {
	cmd  *exec.Cmd
	done chan struct{}
}

func startChild(cmd *exec.Cmd, exited chan<- error) (*child, error) {
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", filepath.Base(cmd.Path), err)
	}
	c := &child{cmd: cmd, done: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		close(c.done)
		exited <- fmt.Errorf("%s exited: %v", filepath.Base(cmd.Path), err)
	}()
	return c, nil
}

func (c *child) stop() {
	select {
	case <-c.done:
		return
	default:
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(20 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.done
	}
}

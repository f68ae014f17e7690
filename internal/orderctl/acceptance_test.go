package orderctl_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderpipe/orderpipe/internal/event"
	"github.com/orderpipe/orderpipe/internal/inventorysync"
	"github.com/orderpipe/orderpipe/internal/mailsink"
	"github.com/orderpipe/orderpipe/internal/notifier"
	"github.com/orderpipe/orderpipe/internal/orderctl"
	"github.com/orderpipe/orderpipe/internal/orderworker"
	"github.com/orderpipe/orderpipe/internal/paysim"
	"github.com/orderpipe/orderpipe/internal/postgres"
	"github.com/orderpipe/orderpipe/internal/testenv"
	"github.com/orderpipe/orderpipe/internal/topology"
)

// The acceptance tests of the ops toolkit (issue 6) and the runbook tests (runbook_test.go) run
// the whole system: the real api, order-worker, inventory-sync and notifier processes (their Run
// functions in this test process), real Postgres and Redis, an in-process Kafka-protocol broker,
// the payment simulator over HTTP and the SMTP sink. Every ops step goes through orderctl.Run
// with the same arguments a person would type.

// sysSKUs are the catalog of the system tests.
var sysSKUs = []string{"BRK-PAD-1001", "FLT-OIL-2001", "BAT-5001", "WIP-6001", "TYR-WIN-7101"}

// sysProcs are the worker processes of the system, by name.
var sysProcs = map[string]testenv.RunFunc{
	"order-worker":   orderworker.Run,
	"inventory-sync": inventorysync.Run,
	"notifier":       notifier.Run,
}

// system is one test's running orderpipe.
type system struct {
	*testenv.Pipeline
	sink *mailsink.Sink

	mu    sync.Mutex
	procs map[string]*testenv.Proc
	extra map[string]string // settings of the worker processes beyond Pipeline.Env (DATABASE_URL after a failover)
}

type sysOptions struct {
	stock   int64             // on hand per SKU
	payment paysim.Config     // the payment simulator
	env     map[string]string // settings of every process (api included), over the system's defaults
	pooler  bool              // every process reaches Postgres through a PgBouncer in transaction mode
}

// newSystem starts the api and the three worker processes.
func newSystem(t *testing.T, o sysOptions) *system {
	t.Helper()
	s := &system{procs: map[string]*testenv.Proc{}, extra: map[string]string{}}
	var err error
	if s.sink, err = mailsink.Start(mailsink.Config{Addr: "127.0.0.1:0"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.sink.Close() })
	host, port, _ := net.SplitHostPort(s.sink.Addr())
	env := map[string]string{
		"KAFKA_SESSION_TIMEOUT":         "6s",
		"DATABASE_MAX_CONNS":            "6",
		"INVENTORY_ADMIN_ADDR":          "127.0.0.1:0",
		"NOTIFIER_ADMIN_ADDR":           "127.0.0.1:0",
		"NOTIFIER_RETRY_IN_PLACE":       "1s",
		"NOTIFIER_RETRY_TIERS":          "2s,4s",
		"REPORTS_RETRY_TIERS":           "2s",
		"NOTIFIER_SEND_LEASE":           "12s",
		"NOTIFIER_MAX_SENDS":            "8",
		"NOTIFIER_LAG_CHECK_INTERVAL":   "200ms",
		"SMTP_HOST":                     host,
		"SMTP_PORT":                     port,
		"SMTP_TLS":                      "off",
		"SMTP_TIMEOUT":                  "5s",
		"INVENTORY_SYNC_RETRY_IN_PLACE": "1s",
		"INVENTORY_SYNC_MAX_BACKOFF":    "200ms",
		// What testenv.Kafka provisions, so that `orderctl topics` finds the layout it expects.
		"KAFKA_PARTITIONS": "3",
		// The tests run reconciliation with orderctl, as the runbook does.
		"RECONCILE_INTERVAL": "1h",
		// Generous payment timeouts and in-place retries: a slow, busy machine must not park a
		// healthy order in the dead-letter topic.
		"PAYMENT_TIMEOUT":             "5s",
		"ORDER_WORKER_RETRY_IN_PLACE": "10s",
	}
	for k, v := range o.env {
		env[k] = v
	}
	var products []postgres.Product
	stock := map[string]int64{}
	for i, sku := range sysSKUs {
		products = append(products, postgres.Product{SKU: sku, Name: "Part " + sku, Category: []string{"brakes", "filters", "batteries", "wipers", "tyres"}[i],
			Brand: "Bosch", PriceMinor: int64(1000 + 250*i), Currency: "EUR", Active: true})
		stock[sku] = o.stock
	}
	s.Pipeline = testenv.NewPipeline(t, testenv.PipelineOptions{Products: products, Stock: stock, Payment: o.payment, Env: env, ViaPooler: o.pooler})
	for name := range sysProcs {
		s.start(t, name)
	}
	return s
}

// start starts (or restarts) the process name with the system's environment.
func (s *system) start(t *testing.T, name string) *testenv.Proc {
	t.Helper()
	s.mu.Lock()
	env := s.Env(s.extra)
	s.mu.Unlock()
	p := testenv.Start(t, name, sysProcs[name], env)
	s.mu.Lock()
	s.procs[name] = p
	s.mu.Unlock()
	return p
}

// stop stops the process name gracefully (it commits and leaves its group).
func (s *system) stop(t *testing.T, name string) {
	t.Helper()
	s.mu.Lock()
	p := s.procs[name]
	delete(s.procs, name)
	s.mu.Unlock()
	if p == nil {
		t.Fatalf("stop %s: not running", name)
	}
	if err := p.Stop(); err != nil {
		t.Fatalf("stop %s: %v\n%s", name, err, p.Logs.String())
	}
}

func (s *system) proc(name string) *testenv.Proc {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.procs[name]
}

// ctl runs orderctl with args against the system, as ops would, and returns its exit code and
// output (the error's text appended, as the binary prints it).
func (s *system) ctl(t *testing.T, args ...string) (int, string) {
	t.Helper()
	return s.ctlCtx(t.Context(), args...)
}

func (s *system) ctlCtx(ctx context.Context, args ...string) (int, string) {
	s.mu.Lock()
	env := s.Env(s.extra)
	s.mu.Unlock()
	var out syncBuffer
	err := orderctl.Run(ctx, args, func(k string) string { return env[k] }, &out)
	if err != nil {
		out.WriteString("orderctl: " + err.Error() + "\n")
	}
	return orderctl.Code(err), out.String()
}

// mustCtl is ctl that fails the test unless the exit code is want.
func (s *system) mustCtl(t *testing.T, want int, args ...string) string {
	t.Helper()
	code, out := s.ctl(t, args...)
	if code != want {
		t.Fatalf("orderctl %s: exit %d, want %d\n%s", strings.Join(args, " "), code, want, out)
	}
	return out
}

// lag is `orderctl lag --output json` for groups.
func (s *system) lag(t *testing.T, groups ...string) orderctl.LagReport {
	t.Helper()
	args := []string{"lag", "--output", "json"}
	for _, g := range groups {
		args = append(args, "--group", g)
	}
	out := s.mustCtl(t, orderctl.ExitOK, args...)
	var rep orderctl.LagReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("lag json: %v\n%s", err, out)
	}
	return rep
}

// waitLagZero waits until `orderctl lag` shows lag 0 for every group given, each having committed
// on every partition that has records (so lag 0 is not a group that has not started).
func (s *system) waitLagZero(t *testing.T, within time.Duration, groups ...string) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		rep := s.lag(t, groups...)
		var behind []string
		for _, g := range rep.Groups {
			uncommitted := 0 // partitions with records the group never committed on
			for _, p := range g.Partitions {
				if p.Committed < 0 && p.End > 0 {
					uncommitted++
				}
			}
			if g.TotalLag != 0 || g.Error != "" || uncommitted > 0 {
				behind = append(behind, fmt.Sprintf("%s lag %d (%d partitions with records never committed) %s", g.Group, g.TotalLag, uncommitted, g.Error))
			}
		}
		if len(behind) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("lag not 0 after %s: %s", within, strings.Join(behind, "; "))
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// allGroups are the consumer groups of the system.
func allGroups() []string {
	var gs []string
	for _, g := range topology.Groups() {
		gs = append(gs, g.Name)
	}
	return gs
}

// produce writes records and waits for the broker.
func (s *system) produce(t *testing.T, recs ...*kgo.Record) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.Kafka.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(t.Context(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// stockEvent is the record of a warehouse stock event, as a warehouse system publishes it.
func stockEvent(t *testing.T, d event.StockData) *kgo.Record {
	t.Helper()
	env, err := event.NewStockEnvelope(uuid.NewString(), "warehouse/"+d.Header().WarehouseID, d)
	if err != nil {
		t.Fatal(err)
	}
	return env.Record(event.TopicInventoryStock, []byte(d.Header().SKU))
}

// place posts n one-line orders (SKU round robin, quantity 1..3, e-mail buyer-<tag>-<i>) paid
// with token(i), and returns the accepted order ids by e-mail address; any answer but 202 fails.
func (s *system) place(t *testing.T, tag string, n, c int, token func(i int) string) map[string]string {
	t.Helper()
	accepted := map[string]string{}
	s.PlaceEach(t, n, c, func(i int) []byte {
		return testenv.OrderJSONFor(fmt.Sprintf("buyer-%s-%d@example.com", tag, i), token(i), []string{"standard", "express"}[i%5/4],
			sysSKUs[i%len(sysSKUs)], 1+i%3)
	}, func(i int, _ []byte, a testenv.Answer) {
		if a.Status != http.StatusAccepted {
			t.Errorf("order %d: %d %s", i, a.Status, a.Body)
			return
		}
		accepted[fmt.Sprintf("buyer-%s-%d@example.com", tag, i)] = a.OrderID
	})
	if t.Failed() {
		t.FailNow()
	}
	return accepted
}

func okToken(int) string { return "tok_visa_4242" }

// mails counts the messages the SMTP sink received, by recipient.
func (s *system) mails() map[string]int {
	out := map[string]int{}
	for _, m := range s.sink.Messages() {
		for _, r := range m.To {
			out[strings.ToLower(r)]++
		}
	}
	return out
}

func total(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// waitFor polls cond until it holds; it fails the test after within.
func waitFor(t *testing.T, within time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached after %s (%s)", what, within, state)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// orderStatuses counts the orders in Postgres by status (cancelled ones as cancelled/<reason>).
func (s *system) orderStatuses(t *testing.T) map[string]int {
	t.Helper()
	rows, err := s.Pool.Query(t.Context(), `SELECT status || coalesce('/' || cancel_reason, ''), count(*) FROM orders GROUP BY 1`)
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

// tableSnapshot is every row of every table of the test's schema, as text, sorted; with a
// checksum per table.
type tableSnapshot struct {
	rows map[string][]string
	sums map[string]string
}

// snapshot reads every table of the schema (goose's version table included).
func (s *system) snapshot(t *testing.T) tableSnapshot {
	t.Helper()
	ctx := t.Context()
	rows, err := s.Pool.Query(ctx, `SELECT table_name FROM information_schema.tables
WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, n)
	}
	rows.Close()
	if len(tables) < 10 {
		t.Fatalf("snapshot: only %d tables in the schema: %v", len(tables), tables)
	}
	snap := tableSnapshot{rows: map[string][]string{}, sums: map[string]string{}}
	for _, tbl := range tables {
		q := fmt.Sprintf(`SELECT t::text FROM %q t ORDER BY 1`, tbl)
		rs, err := s.Pool.Query(ctx, q)
		if err != nil {
			t.Fatalf("snapshot %s: %v", tbl, err)
		}
		var all []string
		for rs.Next() {
			var r string
			if err := rs.Scan(&r); err != nil {
				t.Fatal(err)
			}
			all = append(all, r)
		}
		rs.Close()
		if err := rs.Err(); err != nil {
			t.Fatalf("snapshot %s: %v", tbl, err)
		}
		var sum string
		if err := s.Pool.QueryRow(ctx, fmt.Sprintf(`SELECT count(*) || ':' || coalesce(md5(string_agg(t::text, E'\n' ORDER BY t::text)), '') FROM %q t`, tbl)).Scan(&sum); err != nil {
			t.Fatalf("checksum %s: %v", tbl, err)
		}
		snap.rows[tbl], snap.sums[tbl] = all, sum
	}
	return snap
}

// diff describes how b differs from a, table by table, with a few rows of each side.
func (a tableSnapshot) diff(b tableSnapshot) string {
	var out []string
	var names []string
	for n := range a.sums {
		names = append(names, n)
	}
	for n := range b.sums {
		if _, ok := a.sums[n]; !ok {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		if a.sums[n] == b.sums[n] {
			continue
		}
		only := func(x, y []string) []string {
			var d []string
			for _, r := range x {
				if _, found := slices.BinarySearch(y, r); !found {
					d = append(d, r)
				}
			}
			return d
		}
		before, after := only(a.rows[n], b.rows[n]), only(b.rows[n], a.rows[n])
		out = append(out, fmt.Sprintf("table %s: checksum %s -> %s; %d rows only before, %d only after; e.g.\n  before: %v\n  after:  %v",
			n, a.sums[n], b.sums[n], len(before), len(after), first(before, 3), first(after, 3)))
	}
	return strings.Join(out, "\n")
}

func first(s []string, n int) []string { return s[:min(n, len(s))] }

// syncBuffer is a goroutine-safe output buffer.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) WriteString(s string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.b.WriteString(s)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// Replay safety, end to end (issue 6 acceptance): 2,000 orders through the whole pipeline
// (warehouse stock events, payment, confirmation and cancellation e-mails, sales reports,
// shipments), every table snapshotted with a checksum each, then every consumer group replayed
// from the beginning with `orderctl replay --to-start --execute`; after lag 0 every table is
// identical, and no e-mail and no capture was added.
func TestAcceptanceReplayEveryGroupChangesNothing(t *testing.T) {
	t.Parallel()
	s := newSystem(t, sysOptions{stock: 2000, payment: paysim.Config{DeclineRate: 0.05, Seed: 6}})

	// A warehouse reports its stock of every SKU (levels, then a delivery).
	var seq int64
	var stock []*kgo.Record
	for _, sku := range sysSKUs {
		seq++
		stock = append(stock, stockEvent(t, event.StockLevel{StockHeader: event.StockHeader{WarehouseID: "WH-BER", SKU: sku, Seq: seq, OccurredAt: time.Now().UTC()}, OnHand: 1500}))
		seq++
		stock = append(stock, stockEvent(t, event.StockAdjusted{StockHeader: event.StockHeader{WarehouseID: "WH-BER", SKU: sku, Seq: seq, OccurredAt: time.Now().UTC()}, Delta: 200, Reason: event.ReasonReceived}))
	}
	s.produce(t, stock...)

	const n = 2000
	accepted := s.place(t, "r", n, 32, okToken)
	if len(accepted) != n {
		t.Fatalf("%d of %d orders accepted", len(accepted), n)
	}
	s.waitLagZero(t, 120*time.Second, topology.GroupOrderWorker, topology.GroupInventorySync)

	// The warehouse ships 40 confirmed orders: shipments, OrderShipped events, shipped e-mails.
	s.shipConfirmed(t, &seq, 40)
	s.waitLagZero(t, 120*time.Second, allGroups()...)

	statuses := s.orderStatuses(t)
	if statuses["confirmed"]+statuses["shipped"]+statuses["cancelled/payment_declined"] != n || statuses["shipped"] != 40 || statuses["cancelled/payment_declined"] == 0 {
		t.Fatalf("orders by status %v, want %d decided: confirmed, 40 shipped, some declined", statuses, n)
	}
	// One e-mail per order, one more per shipment.
	mails := s.mails()
	waitFor(t, 60*time.Second, "every e-mail sent", func() (bool, string) {
		mails = s.mails()
		return total(mails) == n+40, fmt.Sprintf("%d e-mails, want %d", total(mails), n+40)
	})
	stats := s.Sim.Stats()
	if stats.Captures == 0 || len(stats.DoubleCaptured) != 0 {
		t.Fatalf("payment simulator: %d captures, double captured %v", stats.Captures, stats.DoubleCaptured)
	}
	before := s.snapshot(t)

	// The replay, as the runbook does it: stop every consumer, move each group to the start
	// (dry run, then --execute), start them again, wait for lag 0.
	for _, name := range []string{"order-worker", "inventory-sync", "notifier"} {
		s.stop(t, name)
	}
	for _, g := range allGroups() {
		out := s.mustCtl(t, orderctl.ExitOK, "replay", "--group", g, "--to-start", "--wait", "30s")
		if !strings.Contains(out, "dry run") {
			t.Fatalf("replay %s dry run: no dry-run notice\n%s", g, out)
		}
		var rep orderctl.ReplayReport
		out = s.mustCtl(t, orderctl.ExitOK, "replay", "--group", g, "--to-start", "--wait", "30s", "--execute", "--output", "json")
		if err := json.Unmarshal([]byte(out), &rep); err != nil || !rep.Executed || rep.Reprocess == 0 {
			t.Fatalf("replay %s --execute: %v, want executed with records to re-process\n%s", g, err, out)
		}
		t.Logf("replay %s: %d records to re-process", g, rep.Reprocess)
	}
	for _, name := range []string{"order-worker", "inventory-sync", "notifier"} {
		s.start(t, name)
	}
	s.waitLagZero(t, 120*time.Second, topology.GroupOrderWorker, topology.GroupInventorySync)
	s.waitLagZero(t, 120*time.Second, allGroups()...)

	after := s.snapshot(t)
	if d := before.diff(after); d != "" {
		t.Fatalf("the replay changed the tables:\n%s", d)
	}
	if got := s.mails(); total(got) != total(mails) {
		t.Fatalf("the replay sent %d more e-mails", total(got)-total(mails))
	}
	st := s.Sim.Stats()
	if st.Captures != stats.Captures || st.Refunds != stats.Refunds || len(st.DoubleCaptured) != 0 {
		t.Fatalf("payment simulator after the replay: %d captures, %d refunds, double %v; before %d, %d",
			st.Captures, st.Refunds, st.DoubleCaptured, stats.Captures, stats.Refunds)
	}
	// Stock conservation (I4): Redis still agrees with Postgres.
	if code, out := s.ctl(t, "reconcile"); code != orderctl.ExitOK {
		t.Fatalf("reconcile after the replay: exit %d\n%s", code, out)
	}
	t.Logf("replayed: %d tables identical, %d e-mails, %d captures (%d charge requests before, %d after)",
		len(after.sums), total(mails), st.Captures, stats.Requests, st.Requests)
}

// getOrder is GET /v1/orders/{id}: the status and, while parked, the dead-letter note.
func (s *system) getOrder(t *testing.T, id string) (status string, deadLetter string) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, s.API.URL+"/v1/orders/"+id, nil)
	req.Header.Set("Authorization", "Bearer "+s.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v struct {
		Status     string `json:"status"`
		DeadLetter *struct {
			ErrorClass string `json:"error_class"`
		} `json:"dead_letter"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		t.Fatalf("GET order %s: %d: %v", id, resp.StatusCode, err)
	}
	if v.DeadLetter != nil {
		deadLetter = v.DeadLetter.ErrorClass
	}
	return v.Status, deadLetter
}

// dlqTotal is `orderctl dlq count --group order-worker --output json`'s total.
func (s *system) dlqTotal(t *testing.T, extra ...string) int {
	t.Helper()
	out := s.mustCtl(t, orderctl.ExitOK, append([]string{"dlq", "count", "--group", "order-worker", "--output", "json"}, extra...)...)
	var c struct {
		Total int `json:"total"`
	}
	if err := json.Unmarshal([]byte(out), &c); err != nil {
		t.Fatalf("dlq count json: %v\n%s", err, out)
	}
	return c.Total
}

// redriveEnv makes order-worker give up on a failing order quickly: a short in-place retry and
// short retry tiers, so a payment outage parks orders in order-worker.dlq within seconds.
var redriveEnv = map[string]string{
	"ORDER_WORKER_RETRY_IN_PLACE": "300ms",
	"ORDER_WORKER_RETRY_TIERS":    "300ms,300ms",
}

// Dead-letter re-drive, end to end (issue 6 acceptance, and runbook procedure 3): orders placed
// during a payment outage are dead-lettered; after the outage `orderctl dlq redrive --execute`
// puts them back; a re-drive interrupted half-way (its context cancelled, as Ctrl-C does)
// resumes without sending anything twice; every order completes exactly once (one order row,
// one capture, one e-mail); an order that keeps failing comes back to the dead-letter topic
// with its re-drive count and is refused by the loop guard with a message naming it.
func TestAcceptanceDeadLetterRedrive(t *testing.T) {
	t.Parallel()
	rb := readRunbook(t) // the ops steps are runbook procedure 3's, verbatim
	s := newSystem(t, sysOptions{stock: 1000, env: redriveEnv})

	// The provider goes down; orders keep being accepted and end in the dead-letter topic.
	s.Sim.SetDown(true)
	const n = 40
	accepted := s.place(t, "o", n, 8, okToken)
	// tok_fail: the provider answers 503 for this token whatever happens (it never recovers).
	poison := s.place(t, "f", 1, 1, func(int) string { return "tok_fail_always" })["buyer-f-0@example.com"]
	waitFor(t, 60*time.Second, "every order dead-lettered", func() (bool, string) {
		got := s.dlqTotal(t)
		return got == n+1, fmt.Sprintf("%d dead letters, want %d", got, n+1)
	})
	s.waitLagZero(t, 30*time.Second, topology.GroupOrderWorker)
	for _, id := range []string{accepted["buyer-o-0@example.com"], poison} {
		if status, dl := s.getOrder(t, id); status != "pending" || dl != "transient" {
			t.Fatalf("order %s during the outage: status %q, dead letter %q, want pending and transient", id, status, dl)
		}
	}
	if st := s.Sim.Stats(); st.Captures != 0 {
		t.Fatalf("%d captures during the outage", st.Captures)
	}

	// The provider is back. The worker's short retries were there to park orders quickly; from
	// now on it retries for seconds, so that a busy machine does not park a
	// re-driven order again.
	s.Sim.SetDown(false)
	s.stop(t, "order-worker")
	s.mu.Lock()
	s.extra["ORDER_WORKER_RETRY_IN_PLACE"], s.extra["ORDER_WORKER_RETRY_TIERS"] = "4s", "1s,2s"
	s.mu.Unlock()
	s.start(t, "order-worker")

	// Runbook: count, dry run, then --execute.
	out := rb.run(t, s, 3, orderctl.ExitOK, "orderctl dlq count --group order-worker --class transient", nil)
	if !regexp.MustCompile(fmt.Sprintf(`total\s+%d\n`, n+1)).MatchString(out) {
		t.Fatalf("dlq count: want a total of %d\n%s", n+1, out)
	}
	placedBefore := len(s.Records(t, event.TopicOrdersPlaced)) + len(s.Records(t, event.TopicOrdersPlacedPriority))
	out = rb.run(t, s, 3, orderctl.ExitOK, "orderctl dlq redrive --group order-worker --class transient", nil)
	if !strings.Contains(out, fmt.Sprintf("summary: would re-drive %d, refused by the loop guard 0", n+1)) || !strings.Contains(out, "nothing was sent") {
		t.Fatalf("dry run:\n%s", out)
	}
	if got := len(s.Records(t, event.TopicOrdersPlaced)) + len(s.Records(t, event.TopicOrdersPlacedPriority)); got != placedBefore {
		t.Fatalf("the dry run published %d records", got-placedBefore)
	}

	// One order re-driven by key first (issue 18 row 1): the runbook's check still finds every
	// other parked order (before, the filtered run moved the progress past them: "would re-drive 0").
	first := accepted["buyer-o-0@example.com"]
	if code, out := s.ctl(t, "dlq", "redrive", "--group", "order-worker", "--class", "transient", "--key", first, "--execute"); code != orderctl.ExitOK ||
		!strings.Contains(out, "summary: re-driven 1,") {
		t.Fatalf("re-drive by key: exit %d\n%s", code, out)
	}
	out = rb.run(t, s, 3, orderctl.ExitOK, "orderctl dlq redrive --group order-worker", nil)
	if !strings.Contains(out, fmt.Sprintf("summary: would re-drive %d,", n)) || strings.Contains(out, "key "+first+" ") {
		t.Fatalf("the runbook's check after a re-drive by key: want the %d other orders\n%s", n, out)
	}

	// --execute, interrupted after the second batch has been acknowledged (the test sets --batch
	// 5 so that there are several batches; the default is 500).
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	w := &cancelOn{s: "progress: 8/40 re-driven", cancel: cancel}
	execute := rb.cmd(t, 3, "orderctl dlq redrive --group order-worker --class transient --execute", nil)
	err := orderctl.Run(ctx, append(execute, "--batch", "5"), func(k string) string { return s.Env(nil)[k] }, w)
	out = w.buf.String()
	if orderctl.Code(err) != orderctl.ExitError || !strings.Contains(out, "summary: re-driven 10,") || !strings.Contains(out, "run the same command again to continue") {
		t.Fatalf("interrupted re-drive: exit %d (%v), want 1 after 10 re-driven\n%s", orderctl.Code(err), err, out)
	}
	// The runbook's command again: the other 30, none of the first 11 again.
	out = rb.run(t, s, 3, orderctl.ExitOK, "orderctl dlq redrive --group order-worker --class transient --execute", nil)
	if !strings.Contains(out, fmt.Sprintf("summary: re-driven %d, refused by the loop guard 0", n+1-10-1)) {
		t.Fatalf("resumed re-drive:\n%s", out)
	}
	redriven := map[string]int{}
	for _, topic := range []string{event.TopicOrdersPlaced, event.TopicOrdersPlacedPriority} {
		for _, r := range s.Records(t, topic) {
			if dlqHeader(r, orderctl.HeaderRedriveCount) != "" {
				if dlqHeader(r, orderctl.HeaderRedriveCount) != "1" || dlqHeader(r, event.HeaderID) == "" {
					t.Fatalf("re-driven %s: redrive-count %q, ce_id %q", r.Key, dlqHeader(r, orderctl.HeaderRedriveCount), dlqHeader(r, event.HeaderID))
				}
				redriven[string(r.Key)]++
			}
		}
	}
	if len(redriven) != n+1 || total(redriven) != n+1 {
		t.Fatalf("re-driven records: %d orders, %d records, want %d each once", len(redriven), total(redriven), n+1)
	}

	// Every order completes exactly once; the one that keeps failing is back in the DLQ.
	waitFor(t, 90*time.Second, "re-driven orders decided", func() (bool, string) {
		st := s.orderStatuses(t)
		return st["confirmed"] == n, fmt.Sprintf("orders %v, %d dead letters", st, s.dlqTotal(t))
	})
	waitFor(t, 90*time.Second, "the failing order dead-lettered again", func() (bool, string) {
		got := s.dlqTotal(t, "--all")
		return got == n+2, fmt.Sprintf("%d dead letters, want %d", got, n+2)
	})
	// Outstanding: only the failing order's new dead letter (the decided orders' ones are
	// handled, its first one superseded).
	if got := s.dlqTotal(t); got != 1 {
		t.Fatalf("%d outstanding dead letters, want 1 (the failing order's)", got)
	}
	s.waitLagZero(t, 60*time.Second, allGroups()...)
	st := s.Sim.Stats()
	if st.Captures != n || st.CapturedOrders != n || len(st.DoubleCaptured) != 0 {
		t.Fatalf("payment simulator: %d captures of %d orders, double %v; want %d once each", st.Captures, st.CapturedOrders, st.DoubleCaptured, n)
	}
	var orderRows int
	if err := s.Pool.QueryRow(t.Context(), `SELECT count(*) FROM orders WHERE id = ANY($1::uuid[])`, mapValues(accepted)).Scan(&orderRows); err != nil || orderRows != n {
		t.Fatalf("order rows: %d (%v), want %d", orderRows, err, n)
	}
	waitFor(t, 30*time.Second, "one e-mail per order", func() (bool, string) {
		m := s.mails()
		return total(m) == n, fmt.Sprintf("%d e-mails", total(m))
	})
	for addr := range accepted {
		if got := s.mails()[addr]; got != 1 {
			t.Fatalf("%s got %d e-mails, want 1", addr, got)
		}
	}
	if status, dl := s.getOrder(t, poison); status != "pending" || dl != "transient" {
		t.Fatalf("the failing order: status %q, dead letter %q, want pending and transient", status, dl)
	}

	// Loop guard: re-driven once already, so a re-drive limited to 1 refuses it, by name.
	code, out := s.ctl(t, "dlq", "redrive", "--group", "order-worker", "--execute", "--max-redrives", "1")
	if code != orderctl.ExitRefused || !strings.Contains(out, "(key "+poison+"): re-driven 1 times already, the --max-redrives limit 1") ||
		!strings.Contains(out, "summary: re-driven 0, refused by the loop guard 1") {
		t.Fatalf("loop guard: exit %d, want %d\n%s", code, orderctl.ExitRefused, out)
	}
	// Runbook check after: what is left to send is the failing order alone (a refused record is
	// never moved past), lag 0, captures = captured payments = confirmed.
	out = rb.run(t, s, 3, orderctl.ExitOK, "orderctl dlq redrive --group order-worker", nil)
	if !strings.Contains(out, "summary: would re-drive 1,") || !strings.Contains(out, "key "+poison+" ") {
		t.Fatalf("after the re-drive, want the failing order %s alone left to send:\n%s", poison, out)
	}
	rb.run(t, s, 3, orderctl.ExitOK, "orderctl lag", nil)
	rows := rb.sql(t, s, 3, 0, nil)
	if want := fmt.Sprint(s.Sim.Stats().Captures); len(rows) != 1 || rows[0][0] != want || rows[0][1] != want {
		t.Fatalf("captured payments and confirmed orders %v, want %s each (the provider's captures)", rows, want)
	}
}

func mapValues(m map[string]string) []string {
	var out []string
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// Every process (api, order-worker, inventory-sync, notifier) and orderctl reach Postgres only
// through a real PgBouncer in transaction mode (README, "Scale"): stock events, orders, shipments,
// e-mails and a reconciliation all work, once each.
func TestAcceptanceEveryProcessThroughATransactionPooler(t *testing.T) {
	t.Parallel()
	s := newSystem(t, sysOptions{stock: 400, payment: paysim.Config{DeclineRate: 0.05, Seed: 9}, pooler: true})
	if s.ProcessDBURL == s.DBURL {
		t.Fatal("the processes do not use the pooler")
	}
	var seq int64
	var stock []*kgo.Record
	for _, sku := range sysSKUs {
		seq++
		stock = append(stock, stockEvent(t, event.StockLevel{StockHeader: event.StockHeader{WarehouseID: "WH-BER", SKU: sku, Seq: seq, OccurredAt: time.Now().UTC()}, OnHand: 300}))
	}
	s.produce(t, stock...)
	const n = 300
	accepted := s.place(t, "p", n, 16, okToken)
	if len(accepted) != n {
		t.Fatalf("%d of %d orders accepted", len(accepted), n)
	}
	s.waitLagZero(t, 120*time.Second, topology.GroupOrderWorker, topology.GroupInventorySync)

	s.shipConfirmed(t, &seq, 10)
	s.waitLagZero(t, 120*time.Second, allGroups()...)

	statuses := s.orderStatuses(t)
	if statuses["confirmed"]+statuses["shipped"]+statuses["cancelled/payment_declined"] != n || statuses["shipped"] != 10 {
		t.Fatalf("orders by status %v, want %d decided, 10 shipped", statuses, n)
	}
	waitFor(t, 60*time.Second, "every e-mail sent once", func() (bool, string) {
		mails := s.mails()
		return total(mails) == n+10, fmt.Sprintf("%d e-mails, want %d", total(mails), n+10)
	})
	s.mustCtl(t, orderctl.ExitOK, "reconcile")
	if xacts := testenv.PoolerTransactions(t, s.ProcessDBURL); xacts < n/10 {
		t.Fatalf("the pooler served %d transactions: the processes did not go through it", xacts)
	}
}

// shipConfirmed has warehouse WH-BER ship the allocations of n confirmed orders (the first by id),
// numbering its events after *seq, and fails the test unless there are n to ship.
func (s *system) shipConfirmed(t *testing.T, seq *int64, n int) {
	t.Helper()
	rows, err := s.Pool.Query(t.Context(), `SELECT o.id::text, a.sku, a.quantity FROM orders o JOIN allocations a ON a.order_id = o.id
WHERE o.status = 'confirmed' ORDER BY o.id LIMIT $1`, n)
	if err != nil {
		t.Fatal(err)
	}
	var shipped []*kgo.Record
	for rows.Next() {
		var id, sku string
		var qty int64
		if err := rows.Scan(&id, &sku, &qty); err != nil {
			t.Fatal(err)
		}
		*seq++
		shipped = append(shipped, stockEvent(t, event.StockShipped{StockHeader: event.StockHeader{WarehouseID: "WH-BER", SKU: sku, Seq: *seq, OccurredAt: time.Now().UTC()}, OrderID: id, Quantity: qty}))
	}
	rows.Close()
	if len(shipped) != n {
		t.Fatalf("%d confirmed orders to ship, want %d (statuses %v)", len(shipped), n, s.orderStatuses(t))
	}
	s.produce(t, shipped...)
}

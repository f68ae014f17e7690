package orderctl_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderpipe/orderpipe/internal/api"
	"github.com/orderpipe/orderpipe/internal/event"
	"github.com/orderpipe/orderpipe/internal/mailsink"
	"github.com/orderpipe/orderpipe/internal/orderctl"
	"github.com/orderpipe/orderpipe/internal/paysim"
	"github.com/orderpipe/orderpipe/internal/testenv"
	"github.com/orderpipe/orderpipe/internal/topology"
)

// The runbook tests perform each procedure of docs/runbook.md against the running system (see
// acceptance_test.go), with the commands and SQL read from the runbook itself: a command the
// test runs is looked up verbatim in its procedure, so the runbook cannot drift from what is
// tested.

// runbookProcedures maps each numbered procedure of docs/runbook.md to the test that performs it.
var runbookProcedures = map[int]struct {
	title string
	test  func(*testing.T)
}{
	1: {"A consumer is down and its group lags", TestRunbook1ConsumerDown},
	2: {"A bad deploy produced wrong outcomes for a time window", TestRunbook2BadDeploy},
	3: {"The payment provider is down", TestAcceptanceDeadLetterRedrive},
	4: {"Redis was lost", TestRunbook4RedisLost},
	5: {"Postgres failed over", TestRunbook5PostgresFailover},
	6: {"Poison records", TestRunbook6PoisonRecords},
	7: {"Stock drift, guard refusals and warehouse shortfalls", TestRunbook7StockDrift},
	8: {"E-mail is failing", TestRunbook8EmailFailing},
}

// runbook is docs/runbook.md split into its sections: 0 is the introduction, first look and
// every other unnumbered section, 1..n the numbered procedures.
type runbook map[int]string

func readRunbook(t *testing.T) runbook {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "docs", "runbook.md"))
	if err != nil {
		t.Fatal(err)
	}
	rb := runbook{}
	heading := regexp.MustCompile(`^(\d+)\. `)
	for i, sec := range strings.Split(string(b), "\n## ") {
		if i == 0 {
			rb[0] = sec
			continue
		}
		if m := heading.FindStringSubmatch(sec); m != nil {
			n, _ := strconv.Atoi(m[1])
			rb[n] = sec
		} else {
			rb[0] += "\n## " + sec
		}
	}
	return rb
}

// blocks returns the fenced code blocks of language lang in section n.
func (rb runbook) blocks(n int, lang string) []string {
	var out []string
	re := regexp.MustCompile("(?s)```" + lang + "\n(.*?)```")
	for _, m := range re.FindAllStringSubmatch(rb[n], -1) {
		var lines []string
		for _, l := range strings.Split(m[1], "\n") {
			lines = append(lines, strings.TrimPrefix(l, "   ")) // blocks inside list items are indented
		}
		out = append(out, strings.Join(lines, "\n"))
	}
	return out
}

// commands returns every orderctl command line of the sh blocks of section n.
func (rb runbook) commands(n int) []string {
	var out []string
	for _, b := range rb.blocks(n, "sh") {
		for _, l := range strings.Split(b, "\n") {
			if l = strings.TrimSpace(l); strings.HasPrefix(l, "orderctl ") {
				out = append(out, l)
			}
		}
	}
	return out
}

// cmd checks that line is a command of procedure n, verbatim, and returns its orderctl
// arguments with the placeholders of vars filled in.
func (rb runbook) cmd(t *testing.T, n int, line string, vars map[string]string) []string {
	t.Helper()
	if !slices.Contains(rb.commands(n), line) {
		t.Fatalf("runbook procedure %d has no command %q; it has:\n%s", n, line, strings.Join(rb.commands(n), "\n"))
	}
	for k, v := range vars {
		line = strings.ReplaceAll(line, k, v)
	}
	if strings.Contains(line, "<") {
		t.Fatalf("runbook command %q: a placeholder is not filled in", line)
	}
	return strings.Fields(line)[1:]
}

// run runs the runbook command line of procedure n against s and checks its exit code.
func (rb runbook) run(t *testing.T, s *system, n int, want int, line string, vars map[string]string) string {
	t.Helper()
	return s.mustCtl(t, want, rb.cmd(t, n, line, vars)...)
}

// sql runs the i-th SQL block of procedure n as psql would (one connection, statements in
// order) and returns the rows of its last statement, each column as text ("" for NULL).
func (rb runbook) sql(t *testing.T, s *system, n, i int, vars map[string]string) [][]string {
	t.Helper()
	blocks := rb.blocks(n, "sql")
	if i >= len(blocks) {
		t.Fatalf("runbook procedure %d has %d SQL blocks, want block %d", n, len(blocks), i)
	}
	q := blocks[i]
	for k, v := range vars {
		q = strings.ReplaceAll(q, k, v)
	}
	if strings.Contains(q, "'<") {
		t.Fatalf("runbook SQL %d of procedure %d: a placeholder is not filled in:\n%s", i, n, q)
	}
	conn, err := pgx.Connect(t.Context(), s.DBURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	results, err := conn.PgConn().Exec(t.Context(), q).ReadAll()
	if err != nil {
		t.Fatalf("runbook SQL %d of procedure %d: %v\n%s", i, n, err, q)
	}
	var out [][]string
	if len(results) > 0 {
		for _, r := range results[len(results)-1].Rows {
			var row []string
			for _, c := range r {
				row = append(row, string(c))
			}
			out = append(out, row)
		}
	}
	return out
}

// Every numbered procedure of the runbook has a test, and every test's procedure is there.
func TestRunbookEveryProcedureIsTested(t *testing.T) {
	t.Parallel()
	rb := readRunbook(t)
	for n, p := range runbookProcedures {
		if !strings.HasPrefix(rb[n], fmt.Sprintf("%d. %s", n, p.title)) {
			t.Errorf("runbook procedure %d: want the title %q, the section starts with %q", n, p.title, first([]string{rb[n]}, 1))
		}
	}
	for n := range rb {
		if _, ok := runbookProcedures[n]; n > 0 && !ok {
			t.Errorf("runbook procedure %d has no test in runbookProcedures", n)
		}
	}
}

// Every orderctl line of the runbook is a valid command line: its subcommands and flags exist
// and their values parse (checked with --help, which parses everything and runs nothing).
func TestRunbookCommandsParse(t *testing.T) {
	t.Parallel()
	rb := readRunbook(t)
	vars := map[string]string{"<H>": "2026-11-27T08:00:00Z", "<P:O>": "0:0", "<key>": "ord-1"}
	n := 0
	for sec := range rb { // every section: the introduction and each procedure
		for _, line := range rb.commands(sec) {
			args := rb.cmd(t, sec, line, vars)
			var out bytes.Buffer
			err := orderctl.Run(t.Context(), append(args, "--help"), func(string) string { return "" }, &out)
			if err != nil || !strings.Contains(out.String(), "Usage:") {
				t.Errorf("runbook command %q does not parse: exit %d %v\n%s", line, orderctl.Code(err), err, out.String())
			}
			n++
		}
	}
	if n < 20 {
		t.Fatalf("found %d orderctl commands in the runbook, want every one (at least 20)", n)
	}
}

// lagRows returns LAG and MEMBER of group's rows in an `orderctl lag` table.
func lagRows(table, group string) (lags []int64, members []string) {
	for _, l := range strings.Split(table, "\n") {
		f := strings.Fields(l)
		if len(f) >= 9 && f[0] == group {
			n, err := strconv.ParseInt(f[6], 10, 64)
			if err != nil {
				n = -1
			}
			lags, members = append(lags, n), append(members, f[7])
		}
	}
	return lags, members
}

// lagWatcher cancels `orderctl lag --watch` once a complete refresh shows lag 0 on all rows of
// a group (at least rows of them, and a member).
type lagWatcher struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	group  string
	rows   int // rows of the group in a complete refresh
	cancel context.CancelFunc
	zero   bool
}

func (w *lagWatcher) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	refreshes := strings.Split(w.buf.String(), "\nat ")
	last := refreshes[len(refreshes)-1]
	// A refresh of a group with a member is complete once the members table has its first row.
	_, members, found := strings.Cut(last, "MEMBER-ID")
	complete := found && strings.Count(members, "\n") >= 2 && strings.HasSuffix(members, "\n")
	if lags, _ := lagRows(last, w.group); complete && len(lags) >= w.rows {
		zero := true
		for _, l := range lags {
			zero = zero && l == 0
		}
		if zero {
			w.zero = true
			w.cancel()
		}
	}
	return len(p), nil
}

func readyz(t *testing.T, p *testenv.Proc) (int, string) {
	t.Helper()
	resp, err := http.Get(p.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// Procedure 1: order-worker is down while orders keep coming; lag shows it (no member), it is
// restarted, and `lag --watch` follows it down to 0; then no drift and every order decided.
func TestRunbook1ConsumerDown(t *testing.T) {
	t.Parallel()
	rb := readRunbook(t)
	s := newSystem(t, sysOptions{stock: 1000})
	before := s.place(t, "a", 10, 4, okToken)
	s.waitLagZero(t, 60*time.Second, topology.GroupOrderWorker)

	s.stop(t, "order-worker") // it crashed
	during := s.place(t, "b", 30, 4, okToken)

	// First look: every command of the runbook's first section but the endless watch.
	for _, line := range rb.commands(0) {
		if !strings.Contains(line, "--watch") {
			rb.run(t, s, 0, orderctl.ExitOK, line, nil)
		}
	}
	out := rb.run(t, s, 1, orderctl.ExitOK, "orderctl lag --group order-worker", nil)
	lags, members := lagRows(out, "order-worker")
	var lag int64
	for _, l := range lags {
		lag += l
	}
	if lag != 30 || slices.ContainsFunc(members, func(m string) bool { return m != "-" }) {
		t.Fatalf("lag while the worker is down: %d records, members %v; want 30 and none\n%s", lag, members, out)
	}
	if status, _ := s.getOrder(t, during["buyer-b-0@example.com"]); status != "pending" {
		t.Fatalf("an order placed while the worker is down: %q, want pending", status)
	}

	p := s.start(t, "order-worker") // step 3
	if code, body := readyz(t, p); code != http.StatusOK {
		t.Fatalf("readyz after the restart: %d %s", code, body)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	w := &lagWatcher{group: "order-worker", rows: len(lags), cancel: cancel}
	env := s.Env(nil)
	err := orderctl.Run(ctx, rb.cmd(t, 1, "orderctl lag --group order-worker --watch 5s", nil), func(k string) string { return env[k] }, w)
	if err != nil || !w.zero {
		t.Fatalf("lag --watch: %v; lag 0 seen: %v\n%s", err, w.zero, w.buf.String())
	}

	// Check after.
	rb.run(t, s, 1, orderctl.ExitOK, "orderctl reconcile", nil)
	out = rb.run(t, s, 1, orderctl.ExitOK, "orderctl orders undecided", nil)
	if want := fmt.Sprintf("%d accepted orders, %d decided, 0 undecided", len(before)+len(during), len(before)+len(during)); !strings.Contains(out, want) {
		t.Fatalf("orders undecided: want %q\n%s\nwatch:\n%s", want, out, w.buf.String())
	}
	for _, id := range during {
		if status, _ := s.getOrder(t, id); status != "confirmed" {
			t.Fatalf("order %s: %q, want confirmed", id, status)
		}
	}
}

// aggregates reads sales_aggregates as text rows, sorted.
func (s *system) aggregates(t *testing.T) []string {
	t.Helper()
	rows, err := s.Pool.Query(t.Context(), `SELECT (dim, hour, key, currency, category, orders, units, revenue_minor, cancelled_orders,
cancelled_units, cancelled_payment_declined, cancelled_out_of_stock, cancelled_expired, cancelled_invalid)::text FROM sales_aggregates ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var r string
		if err := rows.Scan(&r); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	if len(out) == 0 {
		t.Fatal("no sales figures")
	}
	return out
}

// Procedure 2: a bad reports release wrote wrong figures since <release time>; the figures of
// the hours from <H> on are deleted with their claims and re-computed, once through a replay
// group while the live group runs (`replay range`), once by moving the stopped live group
// back (`replay --to-time`). The figures come back exactly, and no e-mail is sent.
func TestRunbook2BadDeploy(t *testing.T) {
	t.Parallel()
	rb := readRunbook(t)
	s := newSystem(t, sysOptions{stock: 1000, payment: paysim.Config{DeclineRate: 0.1, Seed: 2}})
	s.place(t, "a", 60, 8, okToken)
	s.waitLagZero(t, 60*time.Second, allGroups()...)
	release := time.Now().UTC()
	s.place(t, "b", 40, 8, okToken) // processed by the bad release
	s.waitLagZero(t, 60*time.Second, allGroups()...)
	waitFor(t, 30*time.Second, "every e-mail sent", func() (bool, string) {
		return total(s.mails()) == 100, fmt.Sprintf("%d e-mails", total(s.mails()))
	})
	truth := s.aggregates(t)
	mails := total(s.mails())
	vars := map[string]string{"<release time>": release.Format(time.RFC3339Nano)}

	// What the bad release did: wrong figures in every hour its events touched.
	corrupt := func() {
		t.Helper()
		if _, err := s.Pool.Exec(t.Context(), `UPDATE sales_aggregates SET orders = orders + 1, revenue_minor = revenue_minor * 2
WHERE hour >= date_trunc('hour', $1::timestamptz AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'`, release); err != nil {
			t.Fatal(err)
		}
		if got := s.aggregates(t); slices.Equal(got, truth) {
			t.Fatal("the figures were not changed")
		}
	}
	findH := func() string {
		t.Helper()
		rows := rb.sql(t, s, 2, 0, vars)
		if len(rows) != 1 || rows[0][0] == "" {
			var dbg string
			_ = s.Pool.QueryRow(t.Context(), `SELECT string_agg(consumer_group || ':' || c || ':' || mn::text || ':' || mx::text, ', ') FROM (SELECT consumer_group, count(*) c, min(processed_at) mn, max(processed_at) mx FROM processed_events GROUP BY 1) x`).Scan(&dbg)
			t.Fatalf("finding H: %v (release %s; processed events %s)", rows, release, dbg)
		}
		h, err := time.Parse("2006-01-02 15:04:05-07", rows[0][0])
		if err != nil {
			t.Fatalf("H %q: %v", rows[0][0], err)
		}
		if h.After(release) || release.Sub(h) > 2*time.Hour {
			t.Fatalf("H %s for a release at %s", h, release)
		}
		vars["<H>"] = h.UTC().Format(time.RFC3339)
		return vars["<H>"]
	}
	check := func(how string) {
		t.Helper()
		s.waitLagZero(t, 60*time.Second, topology.GroupReports)
		if got := s.aggregates(t); !slices.Equal(got, truth) {
			t.Fatalf("%s: figures differ from the truth:\ngot  %v\nwant %v", how, got, truth)
		}
		if rows := rb.sql(t, s, 2, 2, vars); len(rows) != 0 {
			t.Fatalf("%s: the check query finds differences: %v", how, rows)
		}
		if got := total(s.mails()); got != mails {
			t.Fatalf("%s: %d e-mails sent", how, got-mails)
		}
	}

	// Through a replay group; the notifier keeps running.
	corrupt()
	findH()
	rb.sql(t, s, 2, 1, vars)
	var again int
	if err := s.Pool.QueryRow(t.Context(), `SELECT count(*) FROM orders WHERE placed_at >= $1`, vars["<H>"]).Scan(&again); err != nil || again < 40 {
		t.Fatalf("orders placed since H: %d (%v), want at least the 40 of the bad window", again, err)
	}
	out := rb.run(t, s, 2, orderctl.ExitOK, "orderctl replay range --group reports --from <H>", vars)
	if strings.Contains(out, "processed") {
		t.Fatalf("replay range dry run processed something:\n%s", out)
	}
	out = rb.run(t, s, 2, orderctl.ExitOK, "orderctl replay range --group reports --from <H> --execute", vars)
	if !strings.Contains(out, fmt.Sprintf("%d sales events counted again (missing effects)", again)) {
		t.Fatalf("replay range --execute: want the %d events of orders placed since H counted again\n%s", again, out)
	}
	check("replay range")

	// Moving the stopped live group back.
	corrupt()
	findH()
	s.stop(t, "notifier")
	rb.sql(t, s, 2, 1, vars)
	rb.run(t, s, 2, orderctl.ExitOK, "orderctl replay --group reports --to-time <H>", vars)
	out = rb.run(t, s, 2, orderctl.ExitOK, "orderctl replay --group reports --to-time <H> --execute", vars)
	if !strings.Contains(out, "committed") {
		t.Fatalf("replay --execute:\n%s", out)
	}
	s.start(t, "notifier")
	check("replay --to-time")
}

// deleteRedisKeys deletes every key of the system's Redis prefix: what a flushed or emptied
// Redis looks like to this system (the shared server keeps other tests' keys).
func (s *system) deleteRedisKeys(t *testing.T) int {
	t.Helper()
	n := 0
	iter := s.RDB.Scan(t.Context(), 0, s.Prefix+"*", 1000).Iterator()
	for iter.Next(t.Context()) {
		if err := s.RDB.Del(t.Context(), iter.Val()).Err(); err != nil {
			t.Fatal(err)
		}
		n++
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	return n
}

// postOrder posts one order and returns the status code.
func (s *system) postOrder(t *testing.T) int {
	t.Helper()
	code := 0
	s.PlaceEach(t, 1, 1, func(int) []byte { return testenv.OrderJSON("tok_visa_4242", "standard", sysSKUs[0], 1) },
		func(_ int, _ []byte, a testenv.Answer) { code = a.Status })
	return code
}

// Procedure 4: Redis loses everything while orders are in flight (accepted, not decided);
// `reconcile --repair` rebuilds availability and the holds, orders are accepted again, and the
// orders in flight are decided with their stock: no drift, nothing oversold.
func TestRunbook4RedisLost(t *testing.T) {
	t.Parallel()
	rb := readRunbook(t)
	s := newSystem(t, sysOptions{stock: 100})
	s.place(t, "a", 10, 4, okToken)
	s.waitLagZero(t, 60*time.Second, topology.GroupOrderWorker)
	s.stop(t, "order-worker") // orders in flight keep their holds in Redis only
	inFlight := s.place(t, "b", 10, 4, okToken)

	if n := s.deleteRedisKeys(t); n == 0 {
		t.Fatal("no Redis keys to lose")
	}
	if code := s.postOrder(t); code != http.StatusServiceUnavailable {
		t.Fatalf("an order after Redis was lost: %d, want 503", code)
	}
	rb.run(t, s, 4, orderctl.ExitOK, "orderctl reconcile --repair", nil)

	// Check after.
	rb.run(t, s, 4, orderctl.ExitOK, "orderctl reconcile", nil)
	if code := s.postOrder(t); code != http.StatusAccepted {
		t.Fatalf("an order after the repair: %d, want 202", code)
	}
	s.start(t, "order-worker")
	s.waitLagZero(t, 60*time.Second, topology.GroupOrderWorker)
	for _, id := range inFlight {
		if status, _ := s.getOrder(t, id); status != "confirmed" {
			t.Fatalf("order %s accepted before the loss: %q, want confirmed", id, status)
		}
	}
	rb.run(t, s, 4, orderctl.ExitOK, "orderctl reconcile", nil)
	rb.run(t, s, 4, orderctl.ExitOK, "orderctl orders undecided", nil)
	var oversold int
	if err := s.Pool.QueryRow(t.Context(), `SELECT count(*) FROM stock WHERE allocated > on_hand`).Scan(&oversold); err != nil || oversold != 0 {
		t.Fatalf("oversold SKUs: %d (%v)", oversold, err)
	}
}

// viaProxy is databaseURL with its host replaced by addr.
func viaProxy(t *testing.T, databaseURL, addr string) string {
	t.Helper()
	u, err := url.Parse(databaseURL)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = addr
	return u.String()
}

// restartAll restarts the api and the worker processes with the system's current settings.
// A process that cannot finish its batch (its Postgres is gone) may stop with an error: that is
// logged, not a failure.
func (s *system) restartAll(t *testing.T) {
	t.Helper()
	for name := range sysProcs {
		s.mu.Lock()
		p := s.procs[name]
		delete(s.procs, name)
		s.mu.Unlock()
		if err := p.Stop(); err != nil {
			t.Logf("stop %s: %v", name, err)
		}
	}
	if err := s.API.Stop(); err != nil {
		t.Logf("stop api: %v", err)
	}
	s.mu.Lock()
	env := s.Env(map[string]string{"API_ADDR": "127.0.0.1:0", "API_DRAIN_DELAY": "0s", "RATE_LIMIT_PER_SECOND": "0"})
	for k, v := range s.extra {
		env[k] = v
	}
	s.mu.Unlock()
	s.API = testenv.Start(t, "api", api.Run, env)
	for name := range sysProcs {
		s.start(t, name)
	}
}

// Procedure 5: the processes reach Postgres through a proxy (the primary); the proxy is cut (the
// primary is gone): workers are not ready, the api keeps accepting orders; DATABASE_URL is
// pointed at the new primary (another proxy) and the processes restarted; the migrations are
// all there, lag drains, no drift, and the orders accepted meanwhile are decided.
func TestRunbook5PostgresFailover(t *testing.T) {
	t.Parallel()
	rb := readRunbook(t)
	s := newSystem(t, sysOptions{stock: 1000, env: map[string]string{
		"WORKER_SHUTDOWN_TIMEOUT": "5s", "INVENTORY_SHUTDOWN_TIMEOUT": "5s", "NOTIFIER_SHUTDOWN_TIMEOUT": "5s"}})
	primary := testenv.NewProxy(t, "127.0.0.1:5432")
	s.mu.Lock()
	s.extra["DATABASE_URL"] = viaProxy(t, s.DBURL, primary.Addr())
	s.mu.Unlock()
	s.restartAll(t)
	s.place(t, "a", 10, 4, okToken)
	s.waitLagZero(t, 60*time.Second, topology.GroupOrderWorker)

	primary.Cut()
	waitFor(t, 30*time.Second, "order-worker not ready", func() (bool, string) {
		code, body := readyz(t, s.proc("order-worker"))
		return code == http.StatusServiceUnavailable && strings.Contains(body, "postgres"), fmt.Sprintf("%d %s", code, body)
	})
	during := s.place(t, "b", 10, 4, okToken) // the api still accepts orders
	time.Sleep(time.Second)
	if status, _ := s.getOrder(t, during["buyer-b-0@example.com"]); status != "pending" {
		t.Fatalf("an order during the failover: %q, want pending", status)
	}

	// Step 1: the new primary.
	replica := testenv.NewProxy(t, "127.0.0.1:5432")
	s.mu.Lock()
	s.extra["DATABASE_URL"] = viaProxy(t, s.DBURL, replica.Addr())
	s.mu.Unlock()
	s.restartAll(t)
	out := rb.run(t, s, 5, orderctl.ExitOK, "orderctl migrate --status", nil)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) < 6 {
		t.Fatalf("migrate --status:\n%s", out)
	}
	for _, l := range lines[1:] {
		if !strings.HasSuffix(strings.TrimSpace(l), "true") {
			t.Fatalf("a migration is not applied on the new primary: %q\n%s", l, out)
		}
	}

	// Check after.
	rb.run(t, s, 5, orderctl.ExitOK, "orderctl lag", nil)
	s.waitLagZero(t, 60*time.Second, allGroups()...)
	rb.run(t, s, 5, orderctl.ExitOK, "orderctl reconcile", nil)
	for _, id := range during {
		if status, _ := s.getOrder(t, id); status != "confirmed" {
			t.Fatalf("order %s accepted during the failover: %q, want confirmed", id, status)
		}
	}
	rb.run(t, s, 5, orderctl.ExitOK, "orderctl orders undecided", nil)
}

// Procedure 6: two poison records (one fails its schema, one is not JSON) go straight to the
// dead-letter topic and the partition keeps flowing; list and inspect show them; re-driving
// one without a consumer fix brings it back with its re-drive count, as the runbook warns.
func TestRunbook6PoisonRecords(t *testing.T) {
	t.Parallel()
	rb := readRunbook(t)
	s := newSystem(t, sysOptions{stock: 1000})
	headers := func(id string) []kgo.RecordHeader {
		return []kgo.RecordHeader{{Key: event.HeaderSpecVersion, Value: []byte("1.0")}, {Key: event.HeaderID, Value: []byte(id)},
			{Key: event.HeaderType, Value: []byte(event.TypeOrderPlaced)}, {Key: event.HeaderSource, Value: []byte("orderpipe/buggy-producer")},
			{Key: event.HeaderContentType, Value: []byte("application/json")}}
	}
	s.produce(t,
		&kgo.Record{Topic: event.TopicOrdersPlaced, Key: []byte("poison-schema"), Value: []byte(`{"order_id":42}`), Headers: headers(uuid.NewString())},
		&kgo.Record{Topic: event.TopicOrdersPlaced, Key: []byte("poison-json"), Value: []byte(`{"order_id":`), Headers: headers(uuid.NewString())})
	after := s.place(t, "a", 12, 4, okToken) // the partitions keep flowing
	s.waitLagZero(t, 60*time.Second, topology.GroupOrderWorker)
	for _, id := range after {
		if status, _ := s.getOrder(t, id); status != "confirmed" {
			t.Fatalf("order %s after the poison records: %q, want confirmed", id, status)
		}
	}
	if got := s.dlqTotal(t, "--class", "permanent"); got != 2 {
		t.Fatalf("%d permanent dead letters, want 2", got)
	}

	// A replay of the placed topics delivers the poison records again: they are not
	// dead-lettered a second time, and the restarted worker's dead-letter counter (which
	// OrderpipeOrdersDeadLettered reads) stays at 0. (Before: 2 -> 4, counted again.)
	s.stop(t, "order-worker")
	s.mustCtl(t, orderctl.ExitOK, "replay", "--group", "order-worker", "--to-start", "--wait", "30s", "--execute")
	w := s.start(t, "order-worker")
	s.waitLagZero(t, 60*time.Second, topology.GroupOrderWorker)
	if got := s.dlqTotal(t, "--all"); got != 2 {
		t.Fatalf("%d dead letters after a replay, want still 2", got)
	}
	if got := testenv.Metric(t, w.URL, "orderpipe_consumer_dead_letters_total"); got != 0 {
		t.Fatalf("dead letters counted by the worker that replayed: %v, want 0", got)
	}

	// Step 1: look at them.
	out := rb.run(t, s, 6, orderctl.ExitOK, "orderctl dlq list --group order-worker --class permanent", nil)
	m := regexp.MustCompile(`(?m)^(\d+:\d+)\s.*\spoison-schema\s`).FindStringSubmatch(out)
	if m == nil || !strings.Contains(out, "poison-json") || !strings.Contains(out, "2 outstanding dead letters") {
		t.Fatalf("dlq list:\n%s", out)
	}
	out = rb.run(t, s, 6, orderctl.ExitOK, "orderctl dlq inspect --group order-worker --offset <P:O>", map[string]string{"<P:O>": m[1]})
	for _, want := range []string{"key: poison-schema", "class: permanent", "source: orders.placed", "ce_source: orderpipe/buggy-producer", `"order_id": 42`} {
		if !strings.Contains(out, want) {
			t.Fatalf("dlq inspect: want %q in\n%s", want, out)
		}
	}

	// Step 2, without a consumer fix: the record comes back, counted.
	vars := map[string]string{"<key>": "poison-schema"}
	out = rb.run(t, s, 6, orderctl.ExitOK, "orderctl dlq redrive --group order-worker --class permanent --key <key>", vars)
	if !strings.Contains(out, "summary: would re-drive 1, refused by the loop guard 0, skipped by filters 1") {
		t.Fatalf("dry run:\n%s", out)
	}
	out = rb.run(t, s, 6, orderctl.ExitOK, "orderctl dlq redrive --group order-worker --class permanent --key <key> --execute", vars)
	if !strings.Contains(out, "summary: re-driven 1,") {
		t.Fatalf("re-drive:\n%s", out)
	}
	waitFor(t, 30*time.Second, "the re-driven poison record back in the DLQ", func() (bool, string) {
		got := s.dlqTotal(t, "--class", "permanent", "--all")
		return got == 3, fmt.Sprintf("%d permanent dead letters", got)
	})

	// Check after: both poison records are still outstanding (poison-schema by its new dead
	// letter, which supersedes the first one).
	out = rb.run(t, s, 6, orderctl.ExitOK, "orderctl dlq count --group order-worker --class permanent", nil)
	if !regexp.MustCompile(`total\s+2\n`).MatchString(out) {
		t.Fatalf("dlq count:\n%s", out)
	}
	out = rb.run(t, s, 6, orderctl.ExitOK, "orderctl dlq list --group order-worker --class permanent --key <key> --all", vars)
	if !regexp.MustCompile(`\s1\s+parked\s+poison-schema\s`).MatchString(out) || !regexp.MustCompile(`\s1\s+superseded\s+poison-schema\s`).MatchString(out) {
		t.Fatalf("the poison record's dead letters, want the first superseded and the second parked, each with REDRIVES 1 (per event id):\n%s", out)
	}
	s.waitLagZero(t, 30*time.Second, topology.GroupOrderWorker)
}

// stockRow is a SKU's on_hand, allocated and shortfall in Postgres.
func (s *system) stockRow(t *testing.T, sku string) (onHand, allocated, shortfall int64) {
	t.Helper()
	if err := s.Pool.QueryRow(t.Context(), `SELECT on_hand, allocated, shortfall FROM stock WHERE sku = $1`, sku).Scan(&onHand, &allocated, &shortfall); err != nil {
		t.Fatalf("stock of %s: %v", sku, err)
	}
	return onHand, allocated, shortfall
}

// Procedure 7: Redis over-promises a SKU by 5 units (its ATP raised behind the system's back);
// an order Redis lets through is refused by the Postgres guard, cancelled out_of_stock and
// refunded (step 3's symptom); `reconcile` finds the drift on that SKU alone (exit 3),
// `reconcile --repair` fixes it and the gate refuses such an order again. Then a warehouse
// reports fewer units of another SKU than confirmed orders hold: step 4's query lists exactly
// that SKU with its shortfall, and Redis still agrees with Postgres (check after).
func TestRunbook7StockDrift(t *testing.T) {
	t.Parallel()
	rb := readRunbook(t)
	s := newSystem(t, sysOptions{stock: 6})
	// SKU round robin, quantity 1..3: 4, 3, 5, 4 and 3 units of the five SKUs; 6 each on hand.
	s.place(t, "a", 10, 4, okToken)
	s.waitLagZero(t, 60*time.Second, topology.GroupOrderWorker)
	if st := s.orderStatuses(t); st["confirmed"] != 10 {
		t.Fatalf("orders %v, want 10 confirmed", st)
	}
	drifting, short := sysSKUs[2], sysSKUs[0]
	onHand, allocated, _ := s.stockRow(t, drifting)
	if free := onHand - allocated; free != 1 {
		t.Fatalf("%s: %d units free in Postgres, want 1", drifting, free)
	}
	rb.run(t, s, 7, orderctl.ExitOK, "orderctl reconcile", nil)

	// The drift: Redis' availability of one SKU (redisstore's inv:{SKU} hash) 5 units too high.
	inv := s.Prefix + "inv:{" + drifting + "}"
	if n, err := s.RDB.Exists(t.Context(), inv).Result(); err != nil || n != 1 {
		t.Fatalf("Redis inventory key %s: exists %d (%v)", inv, n, err)
	}
	if err := s.RDB.HIncrBy(t.Context(), inv, "atp", 5).Err(); err != nil {
		t.Fatal(err)
	}
	// Step 3's symptom: Redis lets an order of 3 through, the guard refuses it, it is refunded.
	order := func() testenv.Answer {
		t.Helper()
		var a testenv.Answer
		s.PlaceEach(t, 1, 1, func(int) []byte {
			return testenv.OrderJSONFor("buyer-drift@example.com", "tok_visa_4242", "standard", drifting, 3)
		}, func(_ int, _ []byte, got testenv.Answer) { a = got })
		return a
	}
	a := order()
	if a.Status != http.StatusAccepted {
		t.Fatalf("an order of 3 %s with Redis over-promising: %d %s, want 202", drifting, a.Status, a.Body)
	}
	s.waitLagZero(t, 60*time.Second, topology.GroupOrderWorker)
	if st := s.orderStatuses(t); st["cancelled/out_of_stock"] != 1 || st["confirmed"] != 10 {
		t.Fatalf("orders %v, want the over-promised one cancelled out_of_stock", st)
	}
	waitFor(t, 30*time.Second, "the refused order refunded", func() (bool, string) {
		st := s.Sim.Stats()
		return st.Refunds == 1, fmt.Sprintf("%d refunds", st.Refunds)
	})
	if v := testenv.Metric(t, s.proc("order-worker").URL, "orderpipe_worker_guard_refusals_total"); v != 1 {
		t.Fatalf("guard refusals %v, want 1", v)
	}

	// Step 1: the drift, on that SKU only.
	out := rb.run(t, s, 7, orderctl.ExitDiff, "orderctl reconcile", nil)
	row := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(drifting) + `\s.*\s\+5\s+over-promised\s*$`)
	if !row.MatchString(out) || !strings.Contains(out, "1 differ") || !strings.Contains(out, "1 SKUs differ") {
		t.Fatalf("reconcile: want %s alone, drift +5 over-promised\n%s", drifting, out)
	}

	// Step 2.
	out = rb.run(t, s, 7, orderctl.ExitOK, "orderctl reconcile --repair", nil)
	if !strings.Contains(out, "repaired "+drifting+": atp 6 -> 1") {
		t.Fatalf("reconcile --repair: want %s repaired to its 1 free unit\n%s", drifting, out)
	}
	rb.run(t, s, 7, orderctl.ExitOK, "orderctl reconcile", nil)
	if a := order(); a.Status != http.StatusConflict {
		t.Fatalf("an order of 3 %s after the repair: %d %s, want 409 (1 unit left)", drifting, a.Status, a.Body)
	}

	// Step 4: a warehouse reports 3 units fewer than the confirmed orders of a SKU hold.
	_, allocated, _ = s.stockRow(t, short)
	if allocated < 3 {
		t.Fatalf("%s: %d units allocated, want at least 3", short, allocated)
	}
	s.produce(t, stockEvent(t, event.StockLevel{StockHeader: event.StockHeader{WarehouseID: "WH-BER", SKU: short, Seq: 1, OccurredAt: time.Now().UTC()},
		OnHand: allocated - 3}))
	s.waitLagZero(t, 60*time.Second, topology.GroupInventorySync)
	want := []string{short, fmt.Sprint(allocated), fmt.Sprint(allocated), "3"}
	if rows := rb.sql(t, s, 7, 0, nil); len(rows) != 1 || !slices.Equal(rows[0], want) {
		t.Fatalf("shortfall query: %v, want exactly %v", rows, want)
	}

	// Check after: Redis agrees with Postgres, the shortfall included.
	rb.run(t, s, 7, orderctl.ExitOK, "orderctl reconcile", nil)
}

// mailKinds counts the order e-mails the SMTP sink received, by recipient and kind
// (X-Orderpipe-Kind).
func (s *system) mailKinds() map[string]map[string]int {
	out := map[string]map[string]int{}
	for _, m := range s.sink.Messages() {
		kind := m.Header.Get("X-Orderpipe-Kind")
		if !strings.HasPrefix(kind, "order_") {
			continue
		}
		for _, r := range m.To {
			r = strings.ToLower(r)
			if out[r] == nil {
				out[r] = map[string]int{}
			}
			out[r][kind]++
		}
	}
	return out
}

// Procedure 8: the SMTP relay is down (the sink closed: every send fails with a connect error)
// while orders are confirmed, declined and shipped; their e-mails go through the notifier's
// retry topics to its dead-letter topic. The relay comes back on the same address, nothing is
// sent by itself; count, dry run and --execute re-drive them, and every buyer gets each of
// their e-mails exactly once, with nothing left to re-drive and no new send failures.
func TestRunbook8EmailFailing(t *testing.T) {
	t.Parallel()
	rb := readRunbook(t)
	s := newSystem(t, sysOptions{stock: 1000})
	addr := s.sink.Addr()
	if err := s.sink.Close(); err != nil { // the relay is down
		t.Fatal(err)
	}

	ok := s.place(t, "ok", 4, 4, okToken)
	declined := s.place(t, "no", 2, 2, func(int) string { return "tok_decline_card" })
	s.waitLagZero(t, 60*time.Second, topology.GroupOrderWorker)
	if st := s.orderStatuses(t); st["confirmed"] != 4 || st["cancelled/payment_declined"] != 2 {
		t.Fatalf("orders %v, want 4 confirmed and 2 declined", st)
	}
	// The warehouse ships two of the confirmed orders (after reporting its stock of their SKUs).
	var recs []*kgo.Record
	seq := int64(0)
	for _, buyer := range []string{"buyer-ok-0@example.com", "buyer-ok-1@example.com"} {
		var sku string
		var qty int64
		if err := s.Pool.QueryRow(t.Context(), `SELECT sku, quantity FROM allocations WHERE order_id = $1`, ok[buyer]).Scan(&sku, &qty); err != nil {
			t.Fatalf("allocation of %s: %v", ok[buyer], err)
		}
		seq++
		recs = append(recs, stockEvent(t, event.StockLevel{StockHeader: event.StockHeader{WarehouseID: "WH-BER", SKU: sku, Seq: seq, OccurredAt: time.Now().UTC()}, OnHand: 1000}))
		seq++
		recs = append(recs, stockEvent(t, event.StockShipped{StockHeader: event.StockHeader{WarehouseID: "WH-BER", SKU: sku, Seq: seq, OccurredAt: time.Now().UTC()},
			OrderID: ok[buyer], Quantity: qty}))
	}
	s.produce(t, recs...)
	s.waitLagZero(t, 60*time.Second, topology.GroupInventorySync)
	for _, buyer := range []string{"buyer-ok-0@example.com", "buyer-ok-1@example.com"} {
		if status, _ := s.getOrder(t, ok[buyer]); status != "shipped" {
			t.Fatalf("order %s: %q, want shipped", ok[buyer], status)
		}
	}
	// What each buyer must get: one e-mail of each kind.
	want := map[string]map[string]int{}
	for buyer := range ok {
		want[buyer] = map[string]int{"order_confirmed": 1}
	}
	for buyer := range declined {
		want[buyer] = map[string]int{"order_cancelled": 1}
	}
	want["buyer-ok-0@example.com"]["order_shipped"] = 1
	want["buyer-ok-1@example.com"]["order_shipped"] = 1
	const parked = 8

	notifierDLQ := func(extra ...string) int {
		t.Helper()
		out := s.mustCtl(t, orderctl.ExitOK, append([]string{"dlq", "count", "--group", "notifier", "--output", "json"}, extra...)...)
		var c struct {
			Total int `json:"total"`
		}
		if err := json.Unmarshal([]byte(out), &c); err != nil {
			t.Fatalf("dlq count json: %v\n%s", err, out)
		}
		return c.Total
	}
	waitFor(t, 90*time.Second, "every e-mail dead-lettered", func() (bool, string) {
		got := notifierDLQ()
		return got == parked, fmt.Sprintf("%d dead letters, want %d", got, parked)
	})
	s.waitLagZero(t, 30*time.Second, topology.GroupNotifier)
	notifier := s.proc("notifier").URL
	failures := testenv.Metric(t, notifier, "orderpipe_notifier_send_failures_total")
	if connect := testenv.Metric(t, notifier, `orderpipe_notifier_send_failures_total{class="connect"}`); connect < parked || connect != failures {
		t.Fatalf("send failures: %v connect of %v, want every failure a connect failure, at least one per e-mail", connect, failures)
	}

	// Step 1: the relay is back, on the same address.
	waitFor(t, 10*time.Second, "the SMTP sink listening again on "+addr, func() (bool, string) {
		sink, err := mailsink.Start(mailsink.Config{Addr: addr})
		if err != nil {
			return false, err.Error()
		}
		s.sink = sink // closed by newSystem's cleanup
		return true, ""
	})

	// Step 2: count, dry run, --execute.
	out := rb.run(t, s, 8, orderctl.ExitOK, "orderctl dlq count --group notifier", nil)
	if !regexp.MustCompile(fmt.Sprintf(`(?m)^transient\s+%s\s+parked\s+%d\n`, regexp.QuoteMeta(event.TopicOrderEvents), parked)).MatchString(out) ||
		!regexp.MustCompile(fmt.Sprintf(`total\s+%d\n`, parked)).MatchString(out) {
		t.Fatalf("dlq count: want %d transient dead letters of %s\n%s", parked, event.TopicOrderEvents, out)
	}
	out = rb.run(t, s, 8, orderctl.ExitOK, "orderctl dlq redrive --group notifier", nil)
	if !strings.Contains(out, fmt.Sprintf("summary: would re-drive %d, refused by the loop guard 0", parked)) || !strings.Contains(out, "nothing was sent") {
		t.Fatalf("dry run:\n%s", out)
	}
	if n := s.sink.Count(); n != 0 {
		t.Fatalf("%d e-mails sent before the re-drive: dead letters are not retried by themselves", n)
	}
	out = rb.run(t, s, 8, orderctl.ExitOK, "orderctl dlq redrive --group notifier --execute", nil)
	if !strings.Contains(out, fmt.Sprintf("summary: re-driven %d, refused by the loop guard 0", parked)) {
		t.Fatalf("re-drive:\n%s", out)
	}

	// Check after: every parked e-mail sent, once; nothing left to re-drive; no new failures.
	waitFor(t, 60*time.Second, "every parked e-mail sent", func() (bool, string) {
		got := s.mailKinds()
		return total(s.mails()) >= parked, fmt.Sprintf("%d e-mails: %v", total(s.mails()), got)
	})
	s.waitLagZero(t, 60*time.Second, topology.GroupNotifier)
	if got := s.mailKinds(); !maps.EqualFunc(got, want, maps.Equal) || total(s.mails()) != parked {
		t.Fatalf("e-mails by buyer and kind:\n got %v\nwant %v (%d e-mails in all)", got, want, total(s.mails()))
	}
	out = rb.run(t, s, 8, orderctl.ExitOK, "orderctl dlq redrive --group notifier", nil)
	if !strings.Contains(out, "summary: would re-drive 0,") {
		t.Fatalf("after the re-drive, something is left to send:\n%s", out)
	}
	out = rb.run(t, s, 8, orderctl.ExitOK, "orderctl dlq count --group notifier", nil)
	if !regexp.MustCompile(`total\s+0\n`).MatchString(out) {
		t.Fatalf("outstanding after the re-drive, want none:\n%s", out)
	}
	if got := notifierDLQ("--all"); got != parked {
		t.Fatalf("%d dead letters after the re-drive, want the %d re-driven ones and no new one", got, parked)
	}
	if got := notifierDLQ(); got != 0 {
		t.Fatalf("%d outstanding dead letters after the re-drive, want 0", got)
	}
	if got := testenv.Metric(t, notifier, "orderpipe_notifier_send_failures_total"); got != failures {
		t.Fatalf("send failures: %v after the re-drive, %v before: want no new one", got, failures)
	}
}

// Every check a runbook procedure says to make after it is able to fail: on a broken system
// (order-worker stopped with orders waiting, Redis drifting, dead letters parked, figures,
// payments, stock and migrations tampered with), each check, read from the runbook, reports the
// problem. (Procedure 1's check used to be "no pending row in Postgres", which cannot fail: an
// orders row is written only when the order is decided.)
func TestRunbookChecksCanFail(t *testing.T) {
	t.Parallel()
	rb := readRunbook(t)
	s := newSystem(t, sysOptions{stock: 1000})
	ctx := t.Context()
	s.place(t, "a", 2, 2, okToken)
	s.waitLagZero(t, 60*time.Second, topology.GroupOrderWorker)
	s.stop(t, "order-worker")
	waiting := s.place(t, "b", 3, 3, okToken)

	// Lag (procedures 1, 2, 3, 5): order-worker's lag is not 0, reports' is.
	out := rb.run(t, s, 3, orderctl.ExitOK, "orderctl lag", nil)
	lags, _ := lagRows(out, "order-worker")
	var lag int64
	for _, l := range lags {
		lag += l
	}
	if lag != 3 {
		t.Fatalf("orderctl lag: order-worker lag %d, want 3\n%s", lag, out)
	}
	// Every accepted order decided (procedure 1): exit 3, naming the waiting ones.
	for _, n := range []int{4, 5} {
		rb.run(t, s, n, orderctl.ExitDiff, "orderctl orders undecided", nil)
	}
	out = rb.run(t, s, 1, orderctl.ExitDiff, "orderctl orders undecided", nil)
	for _, id := range waiting {
		if !strings.Contains(out, id) {
			t.Fatalf("orders undecided does not name %s:\n%s", id, out)
		}
	}
	if !strings.Contains(out, "5 accepted orders, 2 decided, 3 undecided") {
		t.Fatalf("orders undecided:\n%s", out)
	}
	// No drift (procedures 1, 4, 5, 7): Redis 5 units too high for one SKU.
	if err := s.RDB.HIncrBy(ctx, s.Prefix+"inv:{"+sysSKUs[4]+"}", "atp", 5).Err(); err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{1, 4, 5, 7} {
		rb.run(t, s, n, orderctl.ExitDiff, "orderctl reconcile", nil)
	}
	// Dead letters parked (procedures 3, 6, 8).
	now := time.Now()
	produceDeadLetters(t, s.Kafka.ListenAddrs(), now,
		dlqFixture{key: uuid.NewString(), class: "transient", attempts: 3, value: `{}`},
		dlqFixture{key: "poison", class: "permanent", attempts: 1, value: `{`},
		dlqFixture{key: uuid.NewString(), class: "transient", attempts: 3, value: `{}`, group: topology.GroupNotifier})
	if out := rb.run(t, s, 3, orderctl.ExitOK, "orderctl dlq redrive --group order-worker", nil); !strings.Contains(out, "summary: would re-drive 2,") {
		t.Fatalf("procedure 3's re-drive check finds nothing:\n%s", out)
	}
	if out := rb.run(t, s, 6, orderctl.ExitOK, "orderctl dlq count --group order-worker --class permanent", nil); !regexp.MustCompile(`total\s+1\n`).MatchString(out) {
		t.Fatalf("procedure 6's count finds nothing:\n%s", out)
	}
	if out := rb.run(t, s, 6, orderctl.ExitOK, "orderctl dlq list --group order-worker --class permanent --key <key> --all", map[string]string{"<key>": "poison"}); !strings.Contains(out, "parked") {
		t.Fatalf("procedure 6's list finds nothing:\n%s", out)
	}
	if out := rb.run(t, s, 8, orderctl.ExitOK, "orderctl dlq redrive --group notifier", nil); !strings.Contains(out, "summary: would re-drive 1,") {
		t.Fatalf("procedure 8's re-drive check finds nothing:\n%s", out)
	}
	if out := rb.run(t, s, 8, orderctl.ExitOK, "orderctl dlq count --group notifier", nil); !regexp.MustCompile(`total\s+1\n`).MatchString(out) {
		t.Fatalf("procedure 8's count finds nothing:\n%s", out)
	}
	// Captures, captured payments and confirmed orders agree (procedure 3): an order confirmed
	// without a captured payment.
	decide(t, s.Pool, uuid.NewString(), "confirmed")
	if rows := rb.sql(t, s, 3, 0, nil); len(rows) != 1 || rows[0][0] == rows[0][1] {
		t.Fatalf("procedure 3's SQL: %v, want captured and confirmed to differ", rows)
	}
	// Figures agree with the orders (procedure 2): a figure without orders.
	h := now.UTC().Truncate(time.Hour).Format(time.RFC3339)
	if _, err := s.Pool.Exec(ctx, `INSERT INTO sales_aggregates (dim, hour, key, currency, orders, revenue_minor) VALUES ('hour', $1, '', 'EUR', 7, 700)
ON CONFLICT (dim, hour, key, currency) DO UPDATE SET orders = sales_aggregates.orders + 7`, h); err != nil {
		t.Fatal(err)
	}
	if rows := rb.sql(t, s, 2, 2, map[string]string{"<H>": h}); len(rows) == 0 {
		t.Fatal("procedure 2's SQL finds no difference between the figures and the orders")
	}
	// Warehouse shortfall (procedure 7).
	if _, err := s.Pool.Exec(ctx, `UPDATE stock SET shortfall = 2 WHERE sku = $1`, sysSKUs[3]); err != nil {
		t.Fatal(err)
	}
	if rows := rb.sql(t, s, 7, 0, nil); len(rows) != 1 || rows[0][0] != sysSKUs[3] {
		t.Fatalf("procedure 7's SQL: %v, want %s", rows, sysSKUs[3])
	}
	// Every migration applied (procedure 5).
	if _, err := s.Pool.Exec(ctx, `DELETE FROM goose_db_version WHERE version_id = (SELECT max(version_id) FROM goose_db_version)`); err != nil {
		t.Fatal(err)
	}
	if out := rb.run(t, s, 5, orderctl.ExitOK, "orderctl migrate --status", nil); !regexp.MustCompile(`(?m)\sfalse$`).MatchString(out) {
		t.Fatalf("procedure 5's migration check finds every migration applied:\n%s", out)
	}
}

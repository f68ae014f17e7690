package orderctl_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderpipe/orderpipe/internal/consumer"
	"github.com/orderpipe/orderpipe/internal/event"
	"github.com/orderpipe/orderpipe/internal/inventorysync"
	"github.com/orderpipe/orderpipe/internal/notifier"
	"github.com/orderpipe/orderpipe/internal/orderctl"
	"github.com/orderpipe/orderpipe/internal/postgres"
	"github.com/orderpipe/orderpipe/internal/redisstore"
	"github.com/orderpipe/orderpipe/internal/testenv"
)

var replaySKUs = []string{"BRK-PAD-1001", "FLT-OIL-2001", "BAT-5001"}

// replayStack is a pipeline with a live order-worker, and orderctl run with the pipeline's
// environment (the one the live worker runs with).
type replayStack struct {
	*testenv.Pipeline
	adm *kadm.Client
	env map[string]string
}

func newReplayStack(t *testing.T) *replayStack {
	t.Helper()
	var products []postgres.Product
	stock := map[string]int64{}
	for i, sku := range replaySKUs {
		products = append(products, postgres.Product{SKU: sku, Name: "Part " + sku, Category: "brakes", Brand: "Bosch",
			PriceMinor: int64(1000 + 250*i), Currency: "EUR", Active: true})
		stock[sku] = 100
	}
	p := testenv.NewPipeline(t, testenv.PipelineOptions{Products: products, Stock: stock})
	cl, err := kgo.NewClient(kgo.SeedBrokers(p.Kafka.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return &replayStack{Pipeline: p, adm: kadm.NewClient(cl), env: p.Env(nil)}
}

func (s *replayStack) orderctl(t *testing.T, args ...string) (int, string) {
	t.Helper()
	var out bytes.Buffer
	err := orderctl.Run(t.Context(), args, func(k string) string { return s.env[k] }, &out)
	if err != nil {
		fmt.Fprintf(&out, "error: %v\n", err)
	}
	return orderctl.Code(err), out.String()
}

func (s *replayStack) rangeJSON(t *testing.T, args ...string) orderctl.RangeReport {
	t.Helper()
	code, out := s.orderctl(t, append([]string{"replay", "range", "--group", "order-worker", "--output", "json"}, args...)...)
	if code != orderctl.ExitOK {
		t.Fatalf("%v: exit %d, want 0\n%s", args, code, out)
	}
	var rep orderctl.RangeReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("decode %q: %v", out, err)
	}
	return rep
}

// place posts n orders and returns their ids.
func (s *replayStack) place(t *testing.T, n int, tag string) []string {
	t.Helper()
	accepted := s.PlaceMany(t, n, 4, func(i int) []byte {
		return testenv.OrderJSON("tok_visa_"+tag+fmt.Sprint(i), "standard", replaySKUs[i%len(replaySKUs)], 1+i%2)
	})
	if len(accepted) != n {
		t.Fatalf("%d of %d orders accepted", len(accepted), n)
	}
	var ids []string
	for id := range accepted {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

var orderTopics = []string{event.TopicOrdersPlaced, event.TopicOrdersPlacedPriority}

// liveOffsets is the live group's committed offsets as "topic/partition=offset" lines.
func (s *replayStack) liveOffsets(t *testing.T) string {
	t.Helper()
	resp, err := s.adm.FetchOffsets(t.Context(), "order-worker")
	if err != nil {
		t.Fatalf("fetch offsets: %v", err)
	}
	var lines []string
	resp.Each(func(o kadm.OffsetResponse) {
		lines = append(lines, fmt.Sprintf("%s/%d=%d", o.Topic, o.Partition, o.At))
	})
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

// snapshot is every effect of order processing, without the volatile decision times.
func (s *replayStack) snapshot(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	for _, q := range []string{
		`SELECT id::text || ' ' || status || ' ' || coalesce(cancel_reason, '-') || ' ' || total_minor FROM orders ORDER BY id`,
		`SELECT order_id::text || ' ' || line_no || ' ' || sku || ' ' || quantity FROM order_lines ORDER BY 1`,
		`SELECT order_id::text || ' ' || coalesce(provider_id, '-') || ' ' || status || ' ' || amount_minor FROM payments ORDER BY order_id`,
		`SELECT order_id::text || ' ' || sku || ' ' || quantity FROM allocations ORDER BY 1`,
		`SELECT sku || ' ' || on_hand || ' ' || allocated FROM stock ORDER BY sku`,
		`SELECT consumer_group || ' ' || event_id::text FROM processed_events ORDER BY 1`,
	} {
		rows, err := s.Pool.Query(t.Context(), q)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		for rows.Next() {
			var line string
			if err := rows.Scan(&line); err != nil {
				t.Fatal(err)
			}
			b.WriteString(line + "\n")
		}
		rows.Close()
		b.WriteString("--\n")
	}
	return b.String()
}

// lose removes every effect of order id from Postgres, as a bad deploy that lost a window would:
// the order and its lines, payment and allocations, its allocated units and its processed event.
func (s *replayStack) lose(t *testing.T, id string) {
	t.Helper()
	ctx := t.Context()
	for _, q := range []string{
		`UPDATE stock SET allocated = stock.allocated - a.quantity FROM allocations a WHERE a.order_id = $1 AND a.sku = stock.sku`,
		`DELETE FROM allocations WHERE order_id = $1`,
		`DELETE FROM payments WHERE order_id = $1`,
		`DELETE FROM orders WHERE id = $1`,
	} {
		if _, err := s.Pool.Exec(ctx, q, id); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	tag, err := s.Pool.Exec(ctx, `DELETE FROM processed_events WHERE consumer_group = 'order-worker' AND event_id = $1`, event.ID(event.TypeOrderPlaced, id))
	if err != nil || tag.RowsAffected() != 1 {
		t.Fatalf("delete processed event of %s: %v (%d rows), want 1 row", id, err, tag.RowsAffected())
	}
}

func (s *replayStack) hasOrder(t *testing.T, id string) bool {
	t.Helper()
	var n int
	if err := s.Pool.QueryRow(t.Context(), `SELECT count(*) FROM orders WHERE id = $1`, id).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n == 1
}

// outcomeIDs is the set of event ids on orders.events.
func (s *replayStack) outcomeIDs(t *testing.T) []string {
	t.Helper()
	var ids []string
	for _, r := range s.Records(t, event.TopicOrderEvents) {
		for _, h := range r.Headers {
			if h.Key == "ce_id" {
				ids = append(ids, string(h.Value))
			}
		}
	}
	slices.Sort(ids)
	return slices.Compact(ids)
}

// groups lists the consumer groups the broker knows.
func (s *replayStack) groups(t *testing.T) []string {
	t.Helper()
	listed, err := s.adm.ListGroups(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	gs := listed.Groups()
	slices.Sort(gs)
	return gs
}

// replayDeadLetters counts the records of order-worker.dlq written by replayGroup.
func (s *replayStack) replayDeadLetters(t *testing.T, replayGroup string) int {
	t.Helper()
	n := 0
	for _, r := range s.Records(t, event.DeadLetterTopic("order-worker")) {
		d, err := consumer.ParseDeadLetter(r)
		if err != nil {
			t.Fatalf("dead letter: %v", err)
		}
		if d.ReplayGroup == replayGroup {
			n++
		}
	}
	return n
}

// A range replay while the live order-worker keeps running: the live group's offsets do not
// move, records the live group processed change nothing (no row, capture or outcome event is
// added), the effects of orders lost in a bad window come back, --until bounds the range, a
// poison record is dead-lettered to the live group's topic marked with the replay group, and a
// dry run changes nothing.
func TestReplayRangeBesideLiveGroup(t *testing.T) {
	t.Parallel()
	s := newReplayStack(t)
	s.Worker(t, nil) // the live group, running throughout
	ctx := t.Context()

	early := s.place(t, 6, "a")
	// A poison record in the first window: the live group dead-letters it, and so will the replay.
	prod, err := kgo.NewClient(kgo.SeedBrokers(s.Kafka.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	if err := prod.ProduceSync(ctx, &kgo.Record{Topic: event.TopicOrdersPlaced, Key: []byte("poison"), Value: []byte("{not json")}).FirstErr(); err != nil {
		t.Fatalf("produce poison: %v", err)
	}
	s.WaitDecided(t, 6, 30*time.Second)
	s.WaitSettled(t, "order-worker", orderTopics, 30*time.Second)
	time.Sleep(50 * time.Millisecond)
	mid := time.Now()
	time.Sleep(50 * time.Millisecond)
	late := s.place(t, 4, "b")
	s.WaitDecided(t, 10, 30*time.Second)
	s.WaitSettled(t, "order-worker", orderTopics, 30*time.Second)

	want := s.snapshot(t)
	captures := s.Sim.Stats().Captures
	events := s.outcomeIDs(t)
	offsets := s.liveOffsets(t)
	if captures != 10 || len(events) != 10 {
		t.Fatalf("before the replay: %d captures, %d outcome events, want 10 and 10", captures, len(events))
	}

	// A bad window lost one early and one late order.
	lostEarly, lostLate := early[2], late[1]
	s.lose(t, lostEarly)
	s.lose(t, lostLate)

	// Dry run: the range of the early window (6 orders and the poison record), nothing changes.
	until := mid.UTC().Format(time.RFC3339Nano)
	dry := s.rangeJSON(t, "--since", "1h", "--until", until)
	if dry.Executed || dry.Records != 7 || dry.ReplayGroup != "" || dry.Processed != 0 {
		t.Fatalf("dry run: got executed %v, %d records, replay group %q, processed %d; want a plan of 7 records", dry.Executed, dry.Records, dry.ReplayGroup, dry.Processed)
	}
	if got := s.groups(t); !slices.Equal(got, []string{"order-worker"}) {
		t.Fatalf("groups after a dry run: got %v, want only order-worker", got)
	}
	if s.hasOrder(t, lostEarly) {
		t.Fatalf("dry run re-created order %s", lostEarly)
	}

	// The early window through a replay group, bounded by --until.
	rep := s.rangeJSON(t, "--since", "1h", "--until", until, "--execute")
	if !rep.Executed || !rep.Completed || !rep.ReplayGroupDeleted || !strings.HasPrefix(rep.ReplayGroup, "order-worker.replay.") {
		t.Fatalf("got %+v, want a completed replay whose group order-worker.replay.* was deleted", rep)
	}
	if rep.Records != 7 || rep.Processed != 6 || rep.DeadLettered != 1 || rep.Reapplied != 1 || rep.Effect != "orders decided" {
		t.Fatalf("got records %d processed %d dead-lettered %d reapplied %d (%s), want 7, 6, 1, 1 orders decided",
			rep.Records, rep.Processed, rep.DeadLettered, rep.Reapplied, rep.Effect)
	}
	if !s.hasOrder(t, lostEarly) {
		t.Fatalf("order %s lost in the early window was not re-processed", lostEarly)
	}
	if s.hasOrder(t, lostLate) {
		t.Fatalf("order %s after --until was re-processed", lostLate)
	}
	if n := s.replayDeadLetters(t, rep.ReplayGroup); n != 1 {
		t.Fatalf("dead letters marked with %s: got %d, want 1 (the poison record)", rep.ReplayGroup, n)
	}
	if got := s.liveOffsets(t); got != offsets {
		t.Fatalf("live group's offsets moved:\ngot\n%s\nwant\n%s", got, offsets)
	}

	// Everything since an hour ago, without a bound: the late order comes back too.
	rep = s.rangeJSON(t, "--since", "1h", "--execute")
	if !rep.Completed || rep.Records != 11 || rep.Processed != 10 || rep.DeadLettered != 1 || rep.Reapplied != 1 {
		t.Fatalf("got %+v, want 11 records, 10 processed, 1 dead-lettered, 1 re-applied", rep)
	}
	if got := s.snapshot(t); got != want {
		t.Fatalf("tables after the replays differ from before the bad window:\ngot\n%s\nwant\n%s", got, want)
	}
	st := s.Sim.Stats()
	if st.Captures != captures || len(st.DoubleCaptured) != 0 {
		t.Fatalf("captures after the replays: %d (double captured %v), want %d and none", st.Captures, st.DoubleCaptured, captures)
	}
	if got := s.outcomeIDs(t); !slices.Equal(got, events) {
		t.Fatalf("outcome event ids after the replays: %d distinct, want the same %d as before", len(got), len(events))
	}
	if got := s.liveOffsets(t); got != offsets {
		t.Fatalf("live group's offsets moved:\ngot\n%s\nwant\n%s", got, offsets)
	}
	if got := s.groups(t); !slices.Equal(got, []string{"order-worker"}) {
		t.Fatalf("groups after the replays: got %v, want only order-worker (replay groups deleted)", got)
	}

	// The live group kept running throughout: it is still a member and decides a new order.
	described, err := s.adm.DescribeGroups(ctx, "order-worker")
	if err != nil {
		t.Fatal(err)
	}
	if g := described["order-worker"]; g.State != "Stable" || len(g.Members) != 1 {
		t.Fatalf("live group: state %s with %d members, want Stable with 1", g.State, len(g.Members))
	}
	s.place(t, 1, "c")
	s.WaitDecided(t, 11, 30*time.Second)
}

// The dry-run table: the range per partition (records from 90s to 3m30s after the fixture's
// first record: offsets 2..4 of partition 0), the total and a note that nothing changed.
func TestReplayRangeTableGolden(t *testing.T) {
	t.Parallel()
	f := newReplayFixture(t, nil)
	var out bytes.Buffer
	args := []string{"replay", "range", "--group", "order-worker", "--topic", event.TopicOrdersPlaced,
		"--from", f.base.Add(90 * time.Second).Format(time.RFC3339Nano), "--until", f.base.Add(210 * time.Second).Format(time.RFC3339Nano)}
	if code := f.run(t.Context(), &out, args...); code != orderctl.ExitOK {
		t.Fatalf("exit %d, want 0\n%s", code, out.String())
	}
	got := regexp.MustCompile(`\d{4}-\d\d-\d\dT[\d:.]+Z`).ReplaceAllString(out.String(), "<time>")
	golden(t, "replay_range_table.golden", got)
	if c := f.committed(t); c != [3]int64{5, 3, 0} {
		t.Fatalf("committed after a dry run: got %v, want [5 3 0] unchanged", c)
	}
}

// golden compares got with testdata/name, rewriting it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden (run with -update to create it): %v", err)
	}
	if got != string(want) {
		t.Fatalf("got\n%s\nwant (%s)\n%s", got, path, want)
	}
}

// badUsage runs each args and checks exit code 2 and that the error says want.
func badUsage(t *testing.T, cases []usageCase) {
	t.Helper()
	env := map[string]string{"KAFKA_BROKERS": "127.0.0.1:1", "DATABASE_URL": "postgres://127.0.0.1:1/none"}
	for _, c := range cases {
		var out bytes.Buffer
		err := orderctl.Run(context.Background(), c.args, func(k string) string { return env[k] }, &out)
		if code := orderctl.Code(err); code != orderctl.ExitUsage {
			t.Errorf("%v: got exit %d (%v), want 2", c.args, code, err)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: got error %q, want it to say %q", c.args, err, c.want)
		}
	}
}

type usageCase struct {
	args []string
	want string
}

// Bad arguments of replay range exit 2 before anything connects, saying what is wrong.
func TestReplayRangeBadUsage(t *testing.T) {
	t.Parallel()
	badUsage(t, []usageCase{
		{[]string{"replay", "range", "--since", "1h"}, "--group is required"},
		{[]string{"replay", "range", "--group", "someone", "--since", "1h"}, `--group "someone": want order-worker, inventory-sync, notifier or reports`},
		{[]string{"replay", "range", "--group", "order-worker"}, "a start of the range is required"},
		{[]string{"replay", "range", "--group", "order-worker", "--since", "1h", "--from", "2026-11-26T21:00:00Z"}, "--from and --since exclude each other"},
		{[]string{"replay", "range", "--group", "order-worker", "--from", "yesterday"}, "--from: want RFC 3339"},
		{[]string{"replay", "range", "--group", "order-worker", "--since", "-5m"}, "--since: want a positive duration"},
		{[]string{"replay", "range", "--group", "order-worker", "--since", "soon"}, "invalid argument"},
		{[]string{"replay", "range", "--group", "order-worker", "--from", "2026-11-26T21:00:00Z", "--until", "2026-11-26T20:00:00Z"}, "is not after the start of the range"},
		{[]string{"replay", "range", "--group", "order-worker", "--from", "2026-11-26T21:00:00Z", "--until", "later"}, "--until: want RFC 3339"},
		{[]string{"replay", "range", "--group", "order-worker", "--since", "1h", "--topic", "orders.events"}, "--topic orders.events: not a source topic of order-worker"},
		{[]string{"replay", "range", "--group", "order-worker", "--since", "1h", "--partition", "-1"}, "--partition: want a partition number"},
		{[]string{"replay", "range", "--group", "order-worker", "--since", "1h", "--output", "yaml"}, "--output: want table or json"},
		{[]string{"replay", "range", "--group", "order-worker", "--since", "1h", "extra"}, `unknown command "extra"`},
	})
}

// A range replay of the reports group while its live group runs counts nothing twice: the sales
// events are claimed under the live group's name, found done and skipped.
func TestReplayRangeReportsCountsNothingTwice(t *testing.T) {
	t.Parallel()
	s := newReplayStack(t)
	s.Worker(t, nil)
	s.env["NOTIFIER_GROUPS"] = "reports"
	s.env["NOTIFIER_ADMIN_ADDR"] = "127.0.0.1:0"
	testenv.Start(t, "notifier", notifier.Run, s.env)
	s.place(t, 5, "r")
	s.WaitDecided(t, 5, 30*time.Second)
	s.WaitSettled(t, "order-worker", orderTopics, 30*time.Second)
	s.WaitSettled(t, "reports", []string{event.TopicOrderEvents}, 30*time.Second)
	figures := func() string {
		var b strings.Builder
		rows, err := s.Pool.Query(t.Context(), `SELECT dim || ' ' || key || ' ' || orders || ' ' || units || ' ' || revenue_minor FROM sales_aggregates ORDER BY 1`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			var l string
			if err := rows.Scan(&l); err != nil {
				t.Fatal(err)
			}
			b.WriteString(l + "\n")
		}
		return b.String()
	}
	want := figures()
	if !strings.Contains(want, "hour ") {
		t.Fatalf("no sales figures before the replay:\n%s", want)
	}
	code, out := s.orderctl(t, "replay", "range", "--group", "reports", "--since", "1h", "--execute", "--output", "json")
	if code != orderctl.ExitOK {
		t.Fatalf("exit %d, want 0\n%s", code, out)
	}
	var rep orderctl.RangeReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("decode %q: %v", out, err)
	}
	if !rep.Completed || rep.Records != 5 || rep.Processed != 5 || rep.Reapplied != 0 || rep.Effect != "sales events counted" ||
		!strings.HasPrefix(rep.ReplayGroup, "reports.replay.") {
		t.Fatalf("got %+v, want 5 records processed, none counted again", rep)
	}
	if got := figures(); got != want {
		t.Fatalf("sales figures after the replay:\n%s\nwant unchanged\n%s", got, want)
	}
}

// A range replay of inventory-sync while its live group runs applies no stock event twice: the
// adjustments (deltas, which would move stock again) are recognised by their sequence numbers.
func TestReplayRangeInventoryAppliesNothingTwice(t *testing.T) {
	t.Parallel()
	pool, dbURL := testenv.Postgres(t)
	rdb, prefix := testenv.Redis(t)
	cluster := testenv.Kafka(t)
	ctx := t.Context()
	var products []postgres.Product
	for _, sku := range replaySKUs[:2] {
		products = append(products, postgres.Product{SKU: sku, Name: "Part " + sku, Category: "brakes", Brand: "Bosch", PriceMinor: 1000, Currency: "EUR", Active: true})
	}
	if _, err := postgres.NewCatalogStore(pool).UpsertMany(ctx, products); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"DATABASE_URL": dbURL, "DATABASE_MAX_CONNS": "4", "REDIS_ADDRS": rdb.Options().Addr, "REDIS_KEY_PREFIX": prefix,
		"KAFKA_BROKERS": strings.Join(cluster.ListenAddrs(), ","), "INVENTORY_ADMIN_ADDR": "127.0.0.1:0",
		"INVENTORY_SYNC_RETRY_IN_PLACE": "1s", "INVENTORY_SYNC_MAX_BACKOFF": "200ms"}
	testenv.Start(t, "inventory-sync", inventorysync.Run, env)
	cl, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	stockEvent := func(id, typ, sku, data string) *kgo.Record {
		return &kgo.Record{Topic: event.TopicInventoryStock, Key: []byte(sku), Value: []byte(data), Headers: []kgo.RecordHeader{
			{Key: "ce_specversion", Value: []byte("1.0")}, {Key: "ce_id", Value: []byte(id)}, {Key: "ce_type", Value: []byte(typ)},
			{Key: "ce_source", Value: []byte("warehouse/WH-1")}, {Key: "content-type", Value: []byte("application/json")}}}
	}
	var recs []*kgo.Record
	for i, sku := range replaySKUs[:2] {
		recs = append(recs,
			stockEvent(fmt.Sprintf("lvl-%d", i), event.TypeStockLevel, sku, fmt.Sprintf(`{"warehouse_id":"WH-1","sku":%q,"seq":1,"occurred_at":"2026-11-26T09:00:00Z","on_hand":50}`, sku)),
			stockEvent(fmt.Sprintf("adj-%d", i), event.TypeStockAdjusted, sku, fmt.Sprintf(`{"warehouse_id":"WH-1","sku":%q,"seq":2,"occurred_at":"2026-11-26T10:00:00Z","delta":-7,"reason":"damaged"}`, sku)))
	}
	for _, r := range recs { // one at a time: each SKU's events stay in order
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatalf("produce: %v", err)
		}
	}
	testenv.WaitCommitted(t, cluster, "inventory-sync", []string{event.TopicInventoryStock}, 30*time.Second)
	state := func() string {
		var b strings.Builder
		rows, err := pool.Query(ctx, `SELECT sku || ' ' || on_hand || ' ' || allocated FROM stock ORDER BY sku`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			var l string
			if err := rows.Scan(&l); err != nil {
				t.Fatal(err)
			}
			b.WriteString(l + "\n")
		}
		avail, err := redisstore.New(rdb, prefix).Availabilities(ctx, replaySKUs[:2])
		if err != nil {
			t.Fatal(err)
		}
		for _, sku := range replaySKUs[:2] {
			fmt.Fprintf(&b, "redis %s %d\n", sku, avail[sku].ATP)
		}
		return b.String()
	}
	want := state()
	if !strings.Contains(want, "BRK-PAD-1001 43 0") {
		t.Fatalf("stock before the replay:\n%s\nwant BRK-PAD-1001 at 50-7", want)
	}
	var out bytes.Buffer
	err = orderctl.Run(ctx, []string{"replay", "range", "--group", "inventory-sync", "--since", "1h", "--execute", "--output", "json"},
		func(k string) string { return env[k] }, &out)
	if err != nil {
		t.Fatalf("replay range: %v\n%s", err, out.String())
	}
	var rep orderctl.RangeReport
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("decode %q: %v", out.String(), err)
	}
	if !rep.Completed || rep.Records != 4 || rep.Processed != 4 || rep.Reapplied != 0 || rep.Effect != "stock events applied" {
		t.Fatalf("got %+v, want 4 stock events processed, none applied again", rep)
	}
	if got := state(); got != want {
		t.Fatalf("stock after the replay:\n%s\nwant unchanged\n%s", got, want)
	}
}

package orderctl_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderpipe/orderpipe/internal/event"
	"github.com/orderpipe/orderpipe/internal/orderctl"
	"github.com/orderpipe/orderpipe/internal/postgres"
	"github.com/orderpipe/orderpipe/internal/testenv"
)

// dlqOrders writes n transient dead letters of order-worker, keyed by fresh order ids, all on
// dead-letter partition 0, and returns the ids in offset order.
func dlqOrders(t *testing.T, run func(...string) (int, string), produce func(...dlqFixture), n int) []string {
	t.Helper()
	var ids []string
	var dls []dlqFixture
	for i := range n {
		id := uuid.NewString()
		ids = append(ids, id)
		dls = append(dls, dlqFixture{part: 0, key: id, class: "transient", attempts: 3, srcPart: 1, srcOffset: int64(i),
			value: fmt.Sprintf(`{"id":%q}`, id), headers: []kgo.RecordHeader{{Key: event.HeaderID, Value: []byte("evt-" + id)}}})
	}
	produce(dls...)
	return ids
}

type dlqListRow struct {
	Offset int64  `json:"offset"`
	Key    string `json:"key"`
	State  string `json:"state"`
}

func dlqList(t *testing.T, run func(...string) (int, string), args ...string) []dlqListRow {
	t.Helper()
	code, out := run(append([]string{"dlq", "list", "--group", "order-worker", "--output", "json"}, args...)...)
	var rows []dlqListRow
	if err := json.Unmarshal([]byte(out), &rows); code != orderctl.ExitOK || err != nil {
		t.Fatalf("dlq list %v: exit %d %v\n%s", args, code, err, out)
	}
	return rows
}

func states(rows []dlqListRow) map[string]string {
	m := map[string]string{}
	for _, r := range rows {
		m[r.Key] = r.State
	}
	return m
}

func decide(t *testing.T, pool *pgxpool.Pool, id, status string) {
	t.Helper()
	reason := any(nil)
	if status == "cancelled" {
		reason = "payment_declined"
	}
	_, err := pool.Exec(t.Context(), `INSERT INTO orders (id, status, cancel_reason, customer_id, email, priority, currency, subtotal_minor,
  shipping_minor, total_minor, shipping_address, placed_at, hold_deadline, decided_at)
VALUES ($1, $2, $3, 'c1', 'a@example.com', 'standard', 'EUR', 100, 0, 100, '{}', now(), now(), now())`, id, status, reason)
	if err != nil {
		t.Fatal(err)
	}
}

// A filtered re-drive (--key) re-drives its record and nothing else, and never moves the re-drive
// progress past the records it skipped: runbook 3's check (an unfiltered dry run) still finds
// every other parked order, and --execute then sends exactly those, each once. (Before, one
// position per partition moved past the 7 skipped records and the check said "would re-drive 0".)
func TestDLQFilteredRedriveLeavesTheRestParked(t *testing.T) {
	t.Parallel()
	cluster := testenv.Kafka(t)
	env := dlqEnv(t, cluster.ListenAddrs())
	run := func(args ...string) (int, string) {
		var out bytes.Buffer
		err := orderctl.Run(t.Context(), args, func(k string) string { return env[k] }, &out)
		if err != nil {
			out.WriteString("error: " + err.Error())
		}
		return orderctl.Code(err), out.String()
	}
	ids := dlqOrders(t, run, func(d ...dlqFixture) { produceDeadLetters(t, cluster.ListenAddrs(), time.Now(), d...) }, 9)

	code, out := run("dlq", "redrive", "--group", "order-worker", "--class", "transient", "--key", ids[7], "--execute")
	if code != orderctl.ExitOK || !strings.Contains(out, "summary: re-driven 1, refused by the loop guard 0, skipped by filters 8,") ||
		!strings.Contains(out, "still parked after this run: 8") {
		t.Fatalf("filtered re-drive: exit %d\n%s", code, out)
	}
	// The runbook's check: an unfiltered dry run finds the 8 others, and exactly those.
	code, out = run("dlq", "redrive", "--group", "order-worker")
	if code != orderctl.ExitOK || !strings.Contains(out, "summary: would re-drive 8,") {
		t.Fatalf("check after the filtered re-drive: exit %d, want would re-drive 8\n%s", code, out)
	}
	var offered []string
	for _, m := range regexp.MustCompile(`would re-drive 0:\d+ key (\S+)`).FindAllStringSubmatch(out, -1) {
		offered = append(offered, m[1])
	}
	want := slices.Concat(ids[:7], ids[8:])
	if !slices.Equal(offered, want) {
		t.Fatalf("dry run offers %v, want %v", offered, want)
	}
	code, out = run("dlq", "redrive", "--group", "order-worker", "--execute")
	if code != orderctl.ExitOK || !strings.Contains(out, "summary: re-driven 8,") || !strings.Contains(out, "still parked after this run: 0") {
		t.Fatalf("re-drive the rest: exit %d\n%s", code, out)
	}
	count := map[string]int{}
	for _, r := range testenv.Records(t, cluster, event.TopicOrdersPlaced) {
		count[string(r.Key)]++
	}
	for _, id := range ids {
		if count[id] != 1 {
			t.Fatalf("%s re-driven %d times, want once (all: %v)", id, count[id], count)
		}
	}
	if code, out := run("dlq", "redrive", "--group", "order-worker"); code != orderctl.ExitOK || !strings.Contains(out, "summary: would re-drive 0,") {
		t.Fatalf("check after everything was re-driven: exit %d\n%s", code, out)
	}
}

// --limit (with or without --from-start) re-drives that many and leaves the rest parked: the next
// run offers every one of them. (Before, a resume after --from-start --limit 3 offered 2 of the 4
// still parked.)
func TestDLQLimitedRedriveResumesWithEveryParkedRecord(t *testing.T) {
	t.Parallel()
	cluster := testenv.Kafka(t)
	env := dlqEnv(t, cluster.ListenAddrs())
	run := func(args ...string) (int, string) {
		var out bytes.Buffer
		err := orderctl.Run(t.Context(), args, func(k string) string { return env[k] }, &out)
		if err != nil {
			out.WriteString("error: " + err.Error())
		}
		return orderctl.Code(err), out.String()
	}
	ids := dlqOrders(t, run, func(d ...dlqFixture) { produceDeadLetters(t, cluster.ListenAddrs(), time.Now(), d...) }, 7)
	// An earlier filtered run re-drove the first one.
	if code, out := run("dlq", "redrive", "--group", "order-worker", "--key", ids[0], "--execute"); code != orderctl.ExitOK {
		t.Fatalf("filtered re-drive: exit %d\n%s", code, out)
	}
	code, out := run("dlq", "redrive", "--group", "order-worker", "--from-start", "--limit", "3", "--execute")
	if code != orderctl.ExitOK || !strings.Contains(out, "summary: re-driven 3, refused by the loop guard 0, skipped by filters 0, beyond --limit 3, handled before 1,") ||
		!strings.Contains(out, "still parked after this run: 3") ||
		!strings.Contains(out, "read from its first record (--from-start") {
		t.Fatalf("--from-start --limit 3: exit %d\n%s", code, out)
	}
	code, out = run("dlq", "redrive", "--group", "order-worker")
	if code != orderctl.ExitOK || !strings.Contains(out, "summary: would re-drive 3,") {
		t.Fatalf("resume dry run: exit %d, want the 3 still parked\n%s", code, out)
	}
	for _, id := range ids[4:] {
		if !strings.Contains(out, "key "+id+" ") {
			t.Fatalf("resume dry run does not offer %s\n%s", id, out)
		}
	}
	if got := states(dlqList(t, run)); len(got) != 7 || got[ids[0]] != "redriven" || got[ids[3]] != "redriven" || got[ids[4]] != "parked" {
		t.Fatalf("dlq list states %v, want 4 redriven and 3 parked, all outstanding (no order decided)", got)
	}
}

// dlq list and count show the outstanding dead letters by default, each with its state: a record
// whose order was decided since (an orders row) is gone from them, one re-driven stays until its
// order is decided, and an earlier copy of an event that was dead-lettered again is superseded;
// --all shows the history. (Before, both counted the whole topic: 8 transient still shown after
// all 8 orders were confirmed.)
func TestDLQListShowsOutstanding(t *testing.T) {
	t.Parallel()
	cluster := testenv.Kafka(t)
	env := dlqEnv(t, cluster.ListenAddrs())
	pool, err := pgxpool.New(t.Context(), env["DATABASE_URL"])
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	run := func(args ...string) (int, string) {
		var out bytes.Buffer
		err := orderctl.Run(t.Context(), args, func(k string) string { return env[k] }, &out)
		if err != nil {
			out.WriteString("error: " + err.Error())
		}
		return orderctl.Code(err), out.String()
	}
	now := time.Now()
	ids := dlqOrders(t, run, func(d ...dlqFixture) { produceDeadLetters(t, cluster.ListenAddrs(), now.Add(-time.Minute), d...) }, 8)
	if code, out := run("dlq", "count", "--group", "order-worker"); code != orderctl.ExitOK || !regexp.MustCompile(`transient\s+orders.placed\s+parked\s+8\n`).MatchString(out) {
		t.Fatalf("count before: exit %d\n%s", code, out)
	}
	if code, out := run("dlq", "redrive", "--group", "order-worker", "--execute"); code != orderctl.ExitOK {
		t.Fatalf("re-drive: exit %d\n%s", code, out)
	}
	// Re-driven, not decided yet: still outstanding.
	if code, out := run("dlq", "count", "--group", "order-worker"); code != orderctl.ExitOK || !regexp.MustCompile(`transient\s+orders.placed\s+redriven\s+8\n`).MatchString(out) {
		t.Fatalf("count after the re-drive: exit %d\n%s", code, out)
	}
	// Six are decided; one failed again (a new dead letter of the same event); one waits.
	for _, id := range ids[:5] {
		decide(t, pool, id, "confirmed")
	}
	decide(t, pool, ids[5], "cancelled")
	produceDeadLetters(t, cluster.ListenAddrs(), now, dlqFixture{part: 0, key: ids[6], class: "transient", attempts: 3, srcPart: 1, srcOffset: 6,
		value: fmt.Sprintf(`{"id":%q}`, ids[6]), headers: []kgo.RecordHeader{{Key: event.HeaderID, Value: []byte("evt-" + ids[6])}, {Key: orderctl.HeaderRedriveCount, Value: []byte("1")}}})

	rows := dlqList(t, run)
	got := states(rows)
	if len(rows) != 2 || got[ids[6]] != "parked" || rows[1].Offset != 8 || got[ids[7]] != "redriven" {
		t.Fatalf("outstanding: %+v, want %s parked (its new dead letter, offset 8) and %s redriven", rows, ids[6], ids[7])
	}
	code, out := run("dlq", "count", "--group", "order-worker")
	if code != orderctl.ExitOK || !regexp.MustCompile(`total\s+2\n`).MatchString(out) || !strings.Contains(out, "7 handled dead letters not counted") {
		t.Fatalf("count: exit %d\n%s", code, out)
	}
	all := dlqList(t, run, "--all")
	byOffset := map[int64]string{}
	for _, r := range all {
		byOffset[r.Offset] = r.State
	}
	if len(all) != 9 || byOffset[0] != "confirmed" || byOffset[5] != "cancelled" || byOffset[6] != "superseded" || byOffset[7] != "redriven" || byOffset[8] != "parked" {
		t.Fatalf("--all: %+v", all)
	}
	if code, out := run("dlq", "count", "--group", "order-worker", "--all"); code != orderctl.ExitOK || !regexp.MustCompile(`transient\s+orders.placed\s+confirmed\s+5\n`).MatchString(out) ||
		!regexp.MustCompile(`total\s+9\n`).MatchString(out) {
		t.Fatalf("count --all: exit %d\n%s", code, out)
	}
	// The re-drive offers the parked one only, with its loop-guard count per event id.
	if code, out := run("dlq", "redrive", "--group", "order-worker"); code != orderctl.ExitOK || !strings.Contains(out, "would re-drive 0:8 key "+ids[6]) ||
		!strings.Contains(out, "redrive-count 2") || !strings.Contains(out, "summary: would re-drive 1,") {
		t.Fatalf("re-drive dry run: exit %d\n%s", code, out)
	}
}

// A re-drive recorded for a position of the dead-letter topic does not hide a different record
// at that position later (the topic was deleted and created again): the ledger matches the event
// id too.
func TestDLQRecreatedTopicIsNotHidden(t *testing.T) {
	t.Parallel()
	cluster := testenv.Kafka(t)
	env := dlqEnv(t, cluster.ListenAddrs())
	pool, err := pgxpool.New(t.Context(), env["DATABASE_URL"])
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	run := func(args ...string) (int, string) {
		var out bytes.Buffer
		err := orderctl.Run(t.Context(), args, func(k string) string { return env[k] }, &out)
		return orderctl.Code(err), out.String()
	}
	ids := dlqOrders(t, run, func(d ...dlqFixture) { produceDeadLetters(t, cluster.ListenAddrs(), time.Now(), d...) }, 1)
	// The old topic's record at 0:0 was re-driven.
	if err := postgres.NewDeadLetterLedger(pool).AddRedrives(t.Context(), "order-worker",
		[]postgres.Redrive{{DLQPosition: postgres.DLQPosition{Partition: 0, Offset: 0}, EventID: "evt-of-the-old-topic"}}); err != nil {
		t.Fatal(err)
	}
	if got := states(dlqList(t, run)); got[ids[0]] != "parked" {
		t.Fatalf("states %v, want %s parked", got, ids[0])
	}
	if code, out := run("dlq", "redrive", "--group", "order-worker"); code != orderctl.ExitOK || !strings.Contains(out, "summary: would re-drive 1,") {
		t.Fatalf("dry run: exit %d\n%s", code, out)
	}
}

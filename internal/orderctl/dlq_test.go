package orderctl_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/orderpipe/orderpipe/internal/consumer"
	"github.com/orderpipe/orderpipe/internal/event"
	"github.com/orderpipe/orderpipe/internal/orderctl"
	"github.com/orderpipe/orderpipe/internal/testenv"
	"github.com/orderpipe/orderpipe/internal/topology"
)

// dlqEnv is orderctl's environment for the dlq commands: the cluster and a migrated schema of
// its own (where re-drives are recorded).
func dlqEnv(t *testing.T, addrs []string) map[string]string {
	t.Helper()
	_, url := testenv.Postgres(t)
	return map[string]string{"KAFKA_BROKERS": strings.Join(addrs, ","), "DATABASE_URL": url}
}

// dlqFixture is a record of order-worker.dlq written with the consumer's headers.
type dlqFixture struct {
	part      int32
	key       string
	class     string
	attempts  int
	ago       time.Duration
	srcPart   int32
	srcOffset int64
	value     string
	headers   []kgo.RecordHeader
	group     string // whose dead-letter topic; empty: order-worker
}

func produceDeadLetters(t *testing.T, addrs []string, now time.Time, dls ...dlqFixture) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var recs []*kgo.Record
	for _, d := range dls {
		hs := append([]kgo.RecordHeader(nil), d.headers...)
		hs = append(hs,
			kgo.RecordHeader{Key: consumer.HeaderDLQSourceTopic, Value: []byte(event.TopicOrdersPlaced)},
			kgo.RecordHeader{Key: consumer.HeaderDLQSourcePart, Value: []byte(strconv.Itoa(int(d.srcPart)))},
			kgo.RecordHeader{Key: consumer.HeaderDLQSourceOffset, Value: []byte(strconv.FormatInt(d.srcOffset, 10))},
			kgo.RecordHeader{Key: consumer.HeaderDLQAttempts, Value: []byte(strconv.Itoa(d.attempts))},
			kgo.RecordHeader{Key: consumer.HeaderDLQErrorClass, Value: []byte(d.class)},
			kgo.RecordHeader{Key: consumer.HeaderDLQError, Value: []byte("charge order " + d.key + ": payment provider unavailable (503)")},
			kgo.RecordHeader{Key: consumer.HeaderDLQTime, Value: []byte(now.Add(-d.ago).UTC().Format(time.RFC3339Nano))},
		)
		group := topology.GroupOrderWorker
		if d.group != "" {
			group = d.group
		}
		recs = append(recs, &kgo.Record{Topic: event.DeadLetterTopic(group), Partition: d.part,
			Key: []byte(d.key), Value: []byte(d.value), Headers: hs})
	}
	if err := cl.ProduceSync(t.Context(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

func dlqHeader(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// orderctl dlq lists, counts and inspects order-worker's dead letters with filters, and re-drives
// them: a dry run sends nothing, --execute puts the originals back on their source topic with
// redrive-count 1, a second run sends nothing again (resumable progress), and a record at the
// re-drive limit is refused.
func TestDLQCommand(t *testing.T) {
	t.Parallel()
	testenv.EachTopologyBroker(t, func(t *testing.T, addrs []string) {
		ctx := t.Context()
		now := time.Now().Truncate(time.Second)
		trace := kgo.RecordHeader{Key: "traceparent", Value: []byte("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")}
		produceDeadLetters(t, addrs, now,
			dlqFixture{part: 0, key: "ord-1", class: "transient", attempts: 3, ago: 3 * time.Hour, srcPart: 1, srcOffset: 10, value: `{"id":"ord-1","total":4990}`, headers: []kgo.RecordHeader{trace}},
			dlqFixture{part: 0, key: "ord-2", class: "permanent", attempts: 1, ago: 2 * time.Hour, srcPart: 2, srcOffset: 11, value: `{"id":"ord-2"}`},
			dlqFixture{part: 1, key: "ord-3", class: "transient", attempts: 3, ago: time.Hour, srcPart: 1, srcOffset: 12, value: `{"id":"ord-3"}`,
				headers: []kgo.RecordHeader{{Key: orderctl.HeaderRedriveCount, Value: []byte("3")}}},
			dlqFixture{part: 2, key: "ord-4", class: "transient", attempts: 3, ago: 30 * time.Minute, srcPart: 0, srcOffset: 13, value: "not json"},
		)
		// A record without the dead-letter headers: listed as such, never re-driven.
		cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "order-worker.dlq", Partition: 2, Key: []byte("stray"), Value: []byte("x")}).FirstErr(); err != nil {
			t.Fatal(err)
		}

		env := dlqEnv(t, addrs)
		run := func(args ...string) (int, string) {
			var out bytes.Buffer
			err := orderctl.Run(ctx, args, func(k string) string { return env[k] }, &out)
			if err != nil {
				out.WriteString("error: " + err.Error())
			}
			return orderctl.Code(err), out.String()
		}

		// list: the golden table, times normalised.
		code, out := run("dlq", "list", "--group", "order-worker")
		if code != orderctl.ExitOK {
			t.Fatalf("list: exit %d\n%s", code, out)
		}
		dlqGolden(t, "dlq_list.golden", regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ`).ReplaceAllString(out, "YYYY-MM-DDTHH:MM:SSZ"))

		keys := func(out string) string {
			var ks []string
			for _, m := range regexp.MustCompile(`(ord-\d)\s+charge`).FindAllStringSubmatch(out, -1) {
				ks = append(ks, m[1])
			}
			return strings.Join(ks, ",")
		}
		for _, c := range []struct {
			args []string
			want string
		}{
			{[]string{"--class", "transient", "--since", "90m"}, "ord-3,ord-4"},
			{[]string{"--class", "permanent"}, "ord-2"},
			{[]string{"--source-partition", "1"}, "ord-1,ord-3"},
			{[]string{"--from", now.Add(-150 * time.Minute).UTC().Format(time.RFC3339)}, "ord-2,ord-3,ord-4"},
			{[]string{"--key", "ord-4"}, "ord-4"},
			{[]string{"--limit", "2"}, "ord-1,ord-2"},
		} {
			code, out := run(append([]string{"dlq", "list", "--group", "order-worker"}, c.args...)...)
			if got := keys(out); code != orderctl.ExitOK || got != c.want {
				t.Fatalf("list %v: exit %d, keys %s, want %s\n%s", c.args, code, got, c.want, out)
			}
		}
		code, out = run("dlq", "list", "--group", "order-worker", "--key", "ord-2", "--output", "json")
		var rows []struct {
			Partition   int32  `json:"partition"`
			Offset      int64  `json:"offset"`
			SourceTopic string `json:"source_topic"`
			Class       string `json:"class"`
		}
		if err := json.Unmarshal([]byte(out), &rows); err != nil || code != orderctl.ExitOK || len(rows) != 1 ||
			rows[0].Partition != 0 || rows[0].Offset != 1 || rows[0].SourceTopic != event.TopicOrdersPlaced || rows[0].Class != "permanent" {
			t.Fatalf("list json: exit %d %v\n%s", code, err, out)
		}

		// count by class and source topic.
		code, out = run("dlq", "count", "--group", "order-worker")
		if code != orderctl.ExitOK || !regexp.MustCompile(`permanent\s+orders.placed\s+parked\s+1\n`).MatchString(out) ||
			!regexp.MustCompile(`transient\s+orders.placed\s+parked\s+3\n`).MatchString(out) || !regexp.MustCompile(`total\s+4\n`).MatchString(out) {
			t.Fatalf("count: exit %d\n%s", code, out)
		}

		// inspect: headers and the pretty-printed value.
		code, out = run("dlq", "inspect", "--group", "order-worker", "--offset", "0:0")
		for _, want := range []string{"traceparent: 00-0af7651916cd43dd8448eb211c80319c", "dlq-error-class: transient", "key: ord-1",
			"source: orders.placed partition 1 offset 10", "\"total\": 4990"} {
			if code != orderctl.ExitOK || !strings.Contains(out, want) {
				t.Fatalf("inspect: exit %d, want %q in\n%s", code, want, out)
			}
		}
		if code, out := run("dlq", "inspect", "--group", "order-worker", "--offset", "0:9"); code != orderctl.ExitError || !strings.Contains(out, "no record at partition 0 offset 9") {
			t.Fatalf("inspect a missing offset: exit %d\n%s", code, out)
		}

		// redrive, dry run: lists and refuses, sends nothing.
		code, out = run("dlq", "redrive", "--group", "order-worker", "--class", "transient")
		if code != orderctl.ExitRefused || !strings.Contains(out, "would re-drive 0:0 key ord-1") || !strings.Contains(out, "would re-drive 2:0 key ord-4") ||
			!strings.Contains(out, "refused 1:0 (key ord-3): re-driven 3 times already, the --max-redrives limit 3") ||
			!strings.Contains(out, "summary: would re-drive 2, refused by the loop guard 1, skipped by filters 1, beyond --limit 0, handled before 0, not dead letters 1\n"+
				"still parked after this run: 2") {
			t.Fatalf("dry run: exit %d\n%s", code, out)
		}
		if n := len(testenv.RecordsAt(t, addrs, event.TopicOrdersPlaced)); n != 0 {
			t.Fatalf("dry run: %d records on %s, want 0", n, event.TopicOrdersPlaced)
		}

		// --execute, stopped after one record (--limit 1), then continued: the originals go back
		// once each with redrive-count 1; what was skipped or refused stays parked.
		code, out = run("dlq", "redrive", "--group", "order-worker", "--class", "transient", "--execute", "--limit", "1", "--batch", "1")
		if code != orderctl.ExitRefused || !strings.Contains(out, "summary: re-driven 1, refused by the loop guard 1, skipped by filters 1, beyond --limit 1, handled before 0, not dead letters 1\n"+
			"still parked after this run: 3") {
			t.Fatalf("execute --limit 1: exit %d\n%s", code, out)
		}
		code, out = run("dlq", "redrive", "--group", "order-worker", "--class", "transient", "--execute")
		if code != orderctl.ExitRefused || !strings.Contains(out, "summary: re-driven 1, refused by the loop guard 1, skipped by filters 1, beyond --limit 0, handled before 0, not dead letters 1\n") ||
			!strings.Contains(out, "refused 1:0 (key ord-3)") || !strings.Contains(out, "1 record(s) of order-worker.dlq refused by the loop guard (re-driven --max-redrives 3 times or more)") {
			t.Fatalf("execute the rest: exit %d\n%s", code, out)
		}
		sent := testenv.RecordsAt(t, addrs, event.TopicOrdersPlaced)
		got := map[string]*kgo.Record{}
		for _, r := range sent {
			got[string(r.Key)] = r
		}
		if len(sent) != 2 || got["ord-1"] == nil || got["ord-4"] == nil {
			t.Fatalf("execute: got %d records on %s, want ord-1 and ord-4", len(sent), event.TopicOrdersPlaced)
		}
		r := got["ord-1"]
		if string(r.Value) != `{"id":"ord-1","total":4990}` || dlqHeader(r, "traceparent") != string(trace.Value) ||
			dlqHeader(r, orderctl.HeaderRedriveCount) != "1" || dlqHeader(r, consumer.HeaderDLQError) != "" || len(r.Headers) != 2 {
			t.Fatalf("re-driven ord-1: value %s headers %v, want the original value, traceparent and redrive-count 1 only", r.Value, r.Headers)
		}

		// Again: nothing is sent twice; a dead letter that arrived since is the only one re-driven,
		// and the refused and skipped ones are still found.
		produceDeadLetters(t, addrs, now, dlqFixture{part: 0, key: "ord-5", class: "transient", attempts: 3, srcPart: 2, srcOffset: 14, value: `{"id":"ord-5"}`,
			headers: []kgo.RecordHeader{{Key: orderctl.HeaderRedriveCount, Value: []byte("1")}}})
		code, out = run("dlq", "redrive", "--group", "order-worker", "--class", "transient", "--execute")
		if code != orderctl.ExitRefused || !strings.Contains(out, "summary: re-driven 1, refused by the loop guard 1, skipped by filters 1, beyond --limit 0, handled before 0, not dead letters 0\n") {
			t.Fatalf("execute again: exit %d\n%s", code, out)
		}
		sent = testenv.RecordsAt(t, addrs, event.TopicOrdersPlaced)
		if len(sent) != 3 || !strings.Contains(dlqKeysOf(sent), "ord-5") {
			t.Fatalf("execute again: %s on %s, want ord-1, ord-4 and ord-5 once each", dlqKeysOf(sent), event.TopicOrdersPlaced)
		}
		for _, r := range sent {
			if string(r.Key) == "ord-5" && dlqHeader(r, orderctl.HeaderRedriveCount) != "2" {
				t.Fatalf("ord-5: redrive-count %q, want 2", dlqHeader(r, orderctl.HeaderRedriveCount))
			}
		}

		// Bad usage exits 2.
		for _, args := range [][]string{
			{"dlq", "list"},
			{"dlq", "list", "--group", "nobody"},
			{"dlq", "list", "--group", "order-worker", "--class", "fatal"},
			{"dlq", "list", "--group", "order-worker", "--since", "1h", "--from", "2026-01-01T00:00:00Z"},
			{"dlq", "list", "--group", "order-worker", "--from", "yesterday"},
			{"dlq", "list", "--group", "order-worker", "--output", "yaml"},
			{"dlq", "count", "--group", "order-worker", "--since", "soon"},
			{"dlq", "inspect", "--group", "order-worker", "--offset", "7"},
			{"dlq", "redrive", "--group", "order-worker", "--max-redrives", "0"},
			{"dlq", "redrive", "--group", "order-worker", "--execute", "extra"},
			{"dlq"},
		} {
			if code, out := run(args...); code != orderctl.ExitUsage {
				t.Fatalf("%v: exit %d, want 2\n%s", args, code, out)
			}
		}
		if code, out := run("dlq", "redrive", "--help"); code != orderctl.ExitOK || !strings.Contains(out, "--max-redrives") {
			t.Fatalf("--help: exit %d\n%s", code, out)
		}
	})
}

func dlqKeysOf(rs []*kgo.Record) string {
	var ks []string
	for _, r := range rs {
		ks = append(ks, string(r.Key))
	}
	return strings.Join(ks, ",")
}

// dlqGolden compares got with testdata/name, or rewrites it with -update (the package's flag,
// looked up so that one test file, whichever it is, defines it).
func dlqGolden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if f := flag.Lookup("update"); f != nil && f.Value.String() == "true" {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (run with -update to create it): %v", err)
	}
	if got != string(want) {
		t.Fatalf("%s differs (run with -update if intended):\ngot:\n%s\nwant:\n%s", path, got, want)
	}
}

// cancelOn cancels a context when what was written so far contains a string.
type cancelOn struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	s      string
	cancel context.CancelFunc
}

func (w *cancelOn) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if strings.Contains(w.buf.String(), w.s) {
		w.cancel()
	}
	return len(p), nil
}

// An interrupted re-drive (its context cancelled, as Ctrl-C does) commits what the broker
// acknowledged and stops; the same command run again sends the rest, and every dead letter goes
// back exactly once.
func TestDLQRedriveInterruptedResumes(t *testing.T) {
	t.Parallel()
	testenv.EachTopologyBroker(t, func(t *testing.T, addrs []string) {
		now := time.Now()
		var dls []dlqFixture
		for i := range 10 {
			dls = append(dls, dlqFixture{part: int32(i % 3), key: fmt.Sprintf("ord-%02d", i), class: "transient", attempts: 3,
				srcPart: 0, srcOffset: int64(i), value: fmt.Sprintf(`{"id":"ord-%02d"}`, i)})
		}
		produceDeadLetters(t, addrs, now, dls...)
		env := dlqEnv(t, addrs)
		getenv := func(k string) string { return env[k] }

		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		w := &cancelOn{s: "progress: 4/10 re-driven", cancel: cancel}
		err := orderctl.Run(ctx, []string{"dlq", "redrive", "--group", "order-worker", "--execute", "--batch", "2"}, getenv, w)
		out := w.buf.String()
		if orderctl.Code(err) != orderctl.ExitError || !strings.Contains(out, "summary: re-driven 4,") ||
			!strings.Contains(out, "run the same command again to continue") || !strings.Contains(fmt.Sprint(err), "interrupted") {
			t.Fatalf("interrupted run: exit %d (%v), want 1 after 4 re-driven\n%s", orderctl.Code(err), err, out)
		}
		if n := len(testenv.RecordsAt(t, addrs, event.TopicOrdersPlaced)); n != 4 {
			t.Fatalf("after the interruption: %d records on %s, want 4", n, event.TopicOrdersPlaced)
		}

		var buf bytes.Buffer
		err = orderctl.Run(t.Context(), []string{"dlq", "redrive", "--group", "order-worker", "--execute", "--batch", "2"}, getenv, &buf)
		if err != nil || !strings.Contains(buf.String(), "summary: re-driven 6, refused by the loop guard 0, skipped by filters 0, beyond --limit 0, handled before 0, not dead letters 0\n") {
			t.Fatalf("resumed run: %v\n%s", err, buf.String())
		}
		count := map[string]int{}
		for _, r := range testenv.RecordsAt(t, addrs, event.TopicOrdersPlaced) {
			count[string(r.Key)]++
		}
		for _, d := range dls {
			if count[d.key] != 1 {
				t.Fatalf("%s re-driven %d times, want once (all: %v)", d.key, count[d.key], count)
			}
		}
	})
}

// The broker failing part of a re-drive batch (one partition of the source topic refuses its
// records while the others take theirs): the run stops with exit 1, having recorded each record
// the broker took; the same command run again sends the rest. Nothing is lost and, as progress is
// per record, nothing is published twice (before, progress was a position per dead-letter
// partition, and the records taken after a failed one were sent again).
func TestDLQRedriveBrokerFailureMidBatch(t *testing.T) {
	t.Parallel()
	cluster := testenv.Kafka(t)
	now := time.Now()
	var dls []dlqFixture
	for i := range 12 {
		key := fmt.Sprintf("ord-%02d", i)
		dls = append(dls, dlqFixture{part: int32(i % 3), key: key, class: "transient", attempts: 3, srcPart: 0, srcOffset: int64(i),
			value: fmt.Sprintf(`{"id":%q}`, key), headers: []kgo.RecordHeader{{Key: "ce_id", Value: []byte("evt-" + key)}}})
	}
	produceDeadLetters(t, cluster.ListenAddrs(), now, dls...)
	env := dlqEnv(t, cluster.ListenAddrs())
	getenv := func(k string) string { return env[k] }

	const victim = 0
	fault := cluster.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: event.TopicOrdersPlaced, Partitions: []int32{victim},
		Err: kerr.InvalidRecord, Count: -1})
	var first bytes.Buffer
	err := orderctl.Run(t.Context(), []string{"dlq", "redrive", "--group", "order-worker", "--execute", "--batch", "12"}, getenv, &first)
	fault.Remove()
	if orderctl.Code(err) != orderctl.ExitError || !strings.Contains(first.String(), "run the same command again to continue") {
		t.Fatalf("run with a failing partition: exit %d (%v), want 1 and a hint to run again\n%s", orderctl.Code(err), err, first.String())
	}
	firstRun := map[string]bool{}
	for _, r := range testenv.Records(t, cluster, event.TopicOrdersPlaced) {
		if r.Partition == victim {
			t.Fatalf("%s reached the failing partition %d", r.Key, victim)
		}
		firstRun[string(r.Key)] = true
	}
	if len(firstRun) == 0 || len(firstRun) == len(dls) {
		t.Fatalf("the failing run published %d of %d records: the fault did not split the batch", len(firstRun), len(dls))
	}

	var second bytes.Buffer
	if err := orderctl.Run(t.Context(), []string{"dlq", "redrive", "--group", "order-worker", "--execute", "--batch", "12"}, getenv, &second); err != nil {
		t.Fatalf("run after the fault: %v\n%s", err, second.String())
	}
	count := map[string]int{}
	for _, r := range testenv.Records(t, cluster, event.TopicOrdersPlaced) {
		k := string(r.Key)
		count[k]++
		if id := dlqHeader(r, "ce_id"); id != "evt-"+k {
			t.Fatalf("a copy of %s has event id %q, want evt-%s", k, id, k)
		}
	}
	for _, d := range dls {
		if count[d.key] != 1 {
			t.Fatalf("%s published %d times, want once (all: %v)", d.key, count[d.key], count)
		}
	}
}

// A dead letter written by a replay group (orderctl replay range) says so in list and inspect,
// and its re-drive goes to the source topic for the live group without the replay group's header.
func TestDLQReplayGroupDeadLetter(t *testing.T) {
	t.Parallel()
	testenv.EachTopologyBroker(t, func(t *testing.T, addrs []string) {
		produceDeadLetters(t, addrs, time.Now(), dlqFixture{part: 1, key: "ord-r", class: "transient", attempts: 1, srcPart: 2, srcOffset: 7,
			value: `{"id":"ord-r"}`, headers: []kgo.RecordHeader{{Key: consumer.HeaderDLQReplayGroup, Value: []byte("order-worker.replay.20261127080000")}}})
		env := dlqEnv(t, addrs)
		run := func(args ...string) (int, string) {
			var out bytes.Buffer
			err := orderctl.Run(t.Context(), args, func(k string) string { return env[k] }, &out)
			return orderctl.Code(err), out.String()
		}
		if code, out := run("dlq", "list", "--group", "order-worker", "--output", "json"); code != orderctl.ExitOK ||
			!strings.Contains(out, `"replay_group": "order-worker.replay.20261127080000"`) {
			t.Fatalf("list: exit %d\n%s", code, out)
		}
		if code, out := run("dlq", "inspect", "--group", "order-worker", "--offset", "1:0"); code != orderctl.ExitOK ||
			!strings.Contains(out, "dead-lettered by the replay group order-worker.replay.20261127080000") {
			t.Fatalf("inspect: exit %d\n%s", code, out)
		}
		if code, out := run("dlq", "redrive", "--group", "order-worker", "--execute"); code != orderctl.ExitOK || !strings.Contains(out, "summary: re-driven 1,") {
			t.Fatalf("redrive: exit %d\n%s", code, out)
		}
		sent := testenv.RecordsAt(t, addrs, event.TopicOrdersPlaced)
		if len(sent) != 1 {
			t.Fatalf("re-driven: %d records on %s, want 1", len(sent), event.TopicOrdersPlaced)
		}
		if dlqHeader(sent[0], consumer.HeaderDLQReplayGroup) != "" || dlqHeader(sent[0], orderctl.HeaderRedriveCount) != "1" {
			t.Fatalf("re-driven headers %v; want no %s and redrive-count 1", sent[0].Headers, consumer.HeaderDLQReplayGroup)
		}
	})
}

package orderctl_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderpipe/orderpipe/internal/event"
	"github.com/orderpipe/orderpipe/internal/orderctl"
	"github.com/orderpipe/orderpipe/internal/testenv"
)

// replayFixture is a broker holding 5 records on orders.placed partition 0 (created 10, 9, 8, 7 and
// 6 minutes ago), 3 on partition 1 (all 10 minutes old) and none on partition 2,
// with order-worker committed at the end of each (5, 3, 0) and nothing on orders.placed.priority.
type replayFixture struct {
	run   func(ctx context.Context, out io.Writer, args ...string) int
	addrs []string
	adm   *kadm.Client
	base  time.Time
}

// addrs is a broker with orderpipe's topics (testenv.EachTopologyBroker); nil starts a kfake one.
func newReplayFixture(t *testing.T, addrs []string) replayFixture {
	t.Helper()
	if addrs == nil {
		addrs = testenv.Kafka(t).ListenAddrs()
	}
	ctx := t.Context()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	base := time.Now().Add(-10 * time.Minute).Truncate(time.Millisecond)
	var recs []*kgo.Record
	for i := range 5 {
		recs = append(recs, &kgo.Record{Topic: event.TopicOrdersPlaced, Partition: 0, Value: []byte("p0"), Timestamp: base.Add(time.Duration(i) * time.Minute)})
	}
	for range 3 {
		recs = append(recs, &kgo.Record{Topic: event.TopicOrdersPlaced, Partition: 1, Value: []byte("p1"), Timestamp: base})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	adm := kadm.NewClient(cl)
	var offs kadm.Offsets
	offs.AddOffset(event.TopicOrdersPlaced, 0, 5, -1)
	offs.AddOffset(event.TopicOrdersPlaced, 1, 3, -1)
	offs.AddOffset(event.TopicOrdersPlaced, 2, 0, -1)
	if err := adm.CommitAllOffsets(ctx, "order-worker", offs); err != nil {
		t.Fatalf("commit: %v", err)
	}
	env := map[string]string{"KAFKA_BROKERS": strings.Join(addrs, ",")}
	return replayFixture{
		run: func(ctx context.Context, out io.Writer, args ...string) int {
			return orderctl.Code(orderctl.Run(ctx, args, func(k string) string { return env[k] }, out))
		},
		addrs: addrs,
		adm:   adm,
		base:  base,
	}
}

// committed returns order-worker's committed offsets on orders.placed partitions 0..2 (-1: none).
func (f replayFixture) committed(t *testing.T) [3]int64 {
	t.Helper()
	resp, err := f.adm.FetchOffsets(t.Context(), "order-worker")
	if err != nil {
		t.Fatalf("fetch offsets: %v", err)
	}
	got := [3]int64{-1, -1, -1}
	for p := range int32(3) {
		if o, ok := resp.Lookup(event.TopicOrdersPlaced, p); ok && o.Err == nil {
			got[p] = o.At
		}
	}
	return got
}

func (f replayFixture) replayJSON(t *testing.T, args ...string) orderctl.ReplayReport {
	t.Helper()
	var out bytes.Buffer
	args = append([]string{"replay", "--group", "order-worker", "--output", "json"}, args...)
	if code := f.run(t.Context(), &out, args...); code != orderctl.ExitOK {
		t.Fatalf("%v: exit %d, want 0\n%s", args, code, out.String())
	}
	var rep orderctl.ReplayReport
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("decode %q: %v", out.String(), err)
	}
	return rep
}

// moves summarises a report as "topic/partition current->new reprocess skip" lines.
func moves(rep orderctl.ReplayReport) string {
	var b strings.Builder
	for _, p := range rep.Partitions {
		b.WriteString(p.Topic + "/" + itoa(int64(p.Partition)) + " " + itoa(p.Current) + "->" + itoa(p.New) +
			" re " + itoa(p.Reprocess) + " skip " + itoa(p.Skip) + "\n")
	}
	return b.String()
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// A dry run by time, by duration or to the start prints the before and after offsets and the
// records to re-process, and changes nothing.
func TestReplayDryRun(t *testing.T) {
	t.Parallel()
	testenv.EachTopologyBroker(t, func(t *testing.T, addrs []string) {
		f := newReplayFixture(t, addrs)
		untouched := "orders.placed.priority/0 -1->0 re 0 skip 0\n" +
			"orders.placed.priority/1 -1->0 re 0 skip 0\n" +
			"orders.placed.priority/2 -1->0 re 0 skip 0\n"
		for _, tc := range []struct {
			name      string
			args      []string
			want      string
			reprocess int64
		}{
			{"ago", []string{"--ago", "8m30s"}, "orders.placed/0 5->2 re 3 skip 0\n" +
				"orders.placed/1 3->3 re 0 skip 0\n" +
				"orders.placed/2 0->0 re 0 skip 0\n", 3},
			{"to-time", []string{"--to-time", f.base.Add(90 * time.Second).Format(time.RFC3339Nano)}, "orders.placed/0 5->2 re 3 skip 0\n" +
				"orders.placed/1 3->3 re 0 skip 0\n" +
				"orders.placed/2 0->0 re 0 skip 0\n", 3},
			{"to-time before everything", []string{"--to-time", f.base.Add(-time.Hour).Format(time.RFC3339)}, "orders.placed/0 5->0 re 5 skip 0\n" +
				"orders.placed/1 3->0 re 3 skip 0\n" +
				"orders.placed/2 0->0 re 0 skip 0\n", 8},
			{"to-start", []string{"--to-start"}, "orders.placed/0 5->0 re 5 skip 0\n" +
				"orders.placed/1 3->0 re 3 skip 0\n" +
				"orders.placed/2 0->0 re 0 skip 0\n", 8},
			// kafka-consumer-groups' spellings and forms: ISO 8601 durations, local date-times, epoch ms.
			{"by-duration ISO 8601", []string{"--by-duration", "PT8M30S"}, "orders.placed/0 5->2 re 3 skip 0\n" +
				"orders.placed/1 3->3 re 0 skip 0\n" +
				"orders.placed/2 0->0 re 0 skip 0\n", 3},
			{"to-datetime local", []string{"--to-datetime", f.base.Add(90 * time.Second).Local().Format("2006-01-02T15:04:05.000")}, "orders.placed/0 5->2 re 3 skip 0\n" +
				"orders.placed/1 3->3 re 0 skip 0\n" +
				"orders.placed/2 0->0 re 0 skip 0\n", 3},
			{"to-time epoch ms", []string{"--to-time", strconv.FormatInt(f.base.Add(90*time.Second).UnixMilli(), 10)}, "orders.placed/0 5->2 re 3 skip 0\n" +
				"orders.placed/1 3->3 re 0 skip 0\n" +
				"orders.placed/2 0->0 re 0 skip 0\n", 3},
			{"ago in days", []string{"--ago", "1d"}, "orders.placed/0 5->0 re 5 skip 0\n" +
				"orders.placed/1 3->0 re 3 skip 0\n" +
				"orders.placed/2 0->0 re 0 skip 0\n", 8},
			{"to-earliest", []string{"--to-earliest"}, "orders.placed/0 5->0 re 5 skip 0\n" +
				"orders.placed/1 3->0 re 3 skip 0\n" +
				"orders.placed/2 0->0 re 0 skip 0\n", 8},
		} {
			rep := f.replayJSON(t, tc.args...)
			if got, want := moves(rep), tc.want+untouched; got != want {
				t.Fatalf("%s: got\n%s\nwant\n%s", tc.name, got, want)
			}
			if rep.Executed || rep.Reprocess != tc.reprocess || rep.Skip != 0 {
				t.Fatalf("%s: got executed %v reprocess %d skip %d, want a dry run re-processing %d", tc.name, rep.Executed, rep.Reprocess, rep.Skip, tc.reprocess)
			}
			if got := f.committed(t); got != [3]int64{5, 3, 0} {
				t.Fatalf("%s: committed offsets after a dry run: got %v, want [5 3 0] unchanged", tc.name, got)
			}
		}
		// A group that never committed starts at the log start: nothing to re-process.
		var out bytes.Buffer
		if code := f.run(t.Context(), &out, "replay", "--group", "reports", "--to-start", "--output", "json"); code != orderctl.ExitOK {
			t.Fatalf("reports: exit %d, want 0\n%s", code, out.String())
		}
		var never orderctl.ReplayReport
		if err := json.Unmarshal(out.Bytes(), &never); err != nil {
			t.Fatalf("decode %q: %v", out.String(), err)
		}
		if got, want := moves(never), "orders.events/0 -1->0 re 0 skip 0\norders.events/1 -1->0 re 0 skip 0\norders.events/2 -1->0 re 0 skip 0\n"; got != want {
			t.Fatalf("reports: got\n%s\nwant\n%s", got, want)
		}
		// --topic and --partition narrow the plan.
		rep := f.replayJSON(t, "--to-start", "--topic", event.TopicOrdersPlaced, "--partition", "1")
		if got, want := moves(rep), "orders.placed/1 3->0 re 3 skip 0\n"; got != want {
			t.Fatalf("--partition 1: got\n%s\nwant\n%s", got, want)
		}
	})
}

// --execute commits the new offsets; explicit offsets move only the partitions named, and a
// move forward reports the records skipped.
func TestReplayExecute(t *testing.T) {
	t.Parallel()
	testenv.EachTopologyBroker(t, func(t *testing.T, addrs []string) {
		f := newReplayFixture(t, addrs)
		rep := f.replayJSON(t, "--ago", "8m30s", "--execute")
		if !rep.Executed || rep.Reprocess != 3 {
			t.Fatalf("got executed %v reprocess %d, want executed re-processing 3", rep.Executed, rep.Reprocess)
		}
		if got := f.committed(t); got != [3]int64{2, 3, 0} {
			t.Fatalf("committed after --ago --execute: got %v, want [2 3 0]", got)
		}
		rep = f.replayJSON(t, "--topic", event.TopicOrdersPlaced, "--to-offset", "0:4", "--to-offset", "orders.placed:1:1", "--execute")
		if got, want := moves(rep), "orders.placed/0 2->4 re 0 skip 2\norders.placed/1 3->1 re 2 skip 0\n"; got != want {
			t.Fatalf("--to-offset: got\n%s\nwant\n%s", got, want)
		}
		if rep.Reprocess != 2 || rep.Skip != 2 || rep.Totals != (orderctl.ReplayPartitionSum{Back: 1, Forward: 1}) {
			t.Fatalf("got reprocess %d skip %d totals %+v, want 2, 2, one back and one forward", rep.Reprocess, rep.Skip, rep.Totals)
		}
		if got := f.committed(t); got != [3]int64{4, 1, 0} {
			t.Fatalf("committed after --to-offset --execute: got %v, want [4 1 0]", got)
		}
		var out bytes.Buffer
		if code := f.run(t.Context(), &out, "replay", "--group", "order-worker", "--topic", event.TopicOrdersPlaced, "--to-offset", "0:99"); code != orderctl.ExitUsage {
			t.Fatalf("--to-offset past the end: exit %d, want 2\n%s", code, out.String())
		}
	})
}

// member joins order-worker and keeps polling until leave is called; it returns once the
// member is assigned its partitions.
func member(t *testing.T, addrs []string) (leave func()) {
	t.Helper()
	assigned := make(chan struct{})
	var once sync.Once
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.ConsumerGroup("order-worker"),
		kgo.ConsumeTopics(event.TopicOrdersPlaced), kgo.DisableAutoCommit(),
		kgo.OnPartitionsAssigned(func(context.Context, *kgo.Client, map[string][]int32) { once.Do(func() { close(assigned) }) }))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			cl.PollFetches(ctx)
		}
	}()
	var left sync.Once
	leave = func() {
		left.Do(func() {
			cancel()
			<-done
			cl.Close() // leaves the group
		})
	}
	t.Cleanup(leave)
	select {
	case <-assigned:
	case <-time.After(8 * time.Second):
		t.Fatalf("member not assigned within 8s")
	}
	return leave
}

// A group with an active member is refused with exit 1 and a message saying what to do, dry run
// and --execute alike, even after --wait; once the member leaves, --wait lets the replay through.
func TestReplayRefusesActiveGroup(t *testing.T) {
	t.Parallel()
	testenv.EachTopologyBroker(t, func(t *testing.T, addrs []string) {
		f := newReplayFixture(t, addrs)
		leave := member(t, f.addrs)
		for _, args := range [][]string{
			{"replay", "--group", "order-worker", "--to-start"},
			{"replay", "--group", "order-worker", "--to-start", "--execute"},
			{"replay", "--group", "order-worker", "--to-start", "--execute", "--wait", "600ms"},
		} {
			var out bytes.Buffer
			err := orderctl.Run(t.Context(), args, func(k string) string {
				if k == "KAFKA_BROKERS" {
					return strings.Join(f.addrs, ",")
				}
				return ""
			}, &out)
			if code := orderctl.Code(err); code != orderctl.ExitError {
				t.Fatalf("%v: got exit %d (%v), want 1", args, code, err)
			}
			want := "stop the order-worker processes (or scale them to 0), or pass --wait 5m to wait for the group to empty"
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("%v: got error %v, want it to say %q", args, err, want)
			}
		}
		if got := f.committed(t); got != [3]int64{5, 3, 0} {
			t.Fatalf("committed after refusals: got %v, want [5 3 0] unchanged", got)
		}
		// In JSON mode the wait is silent: nothing but the answer (here none: it is refused).
		var quiet bytes.Buffer
		if code := f.run(t.Context(), &quiet, "replay", "--group", "order-worker", "--to-start", "--wait", "600ms", "--output", "json"); code != orderctl.ExitError || strings.Contains(quiet.String(), "waiting") {
			t.Fatalf("--output json --wait with a member: exit %d, want 1 and no progress lines\n%s", code, quiet.String())
		}

		type result struct {
			code int
			out  string
		}
		res := make(chan result, 1)
		var live testenv.Buffer
		go func() {
			code := f.run(t.Context(), &live, "replay", "--group", "order-worker", "--to-start", "--execute", "--wait", "60s")
			res <- result{code, live.String()}
		}()
		// The replay says it waits once it found the member; only then does the member leave.
		deadline := time.Now().Add(30 * time.Second)
		for !strings.Contains(live.String(), "waiting up to") {
			if time.Now().After(deadline) {
				t.Fatalf("--wait printed no progress while the group had a member:\n%s", live.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
		if !strings.Contains(live.String(), "for group order-worker to have no members: state ") {
			t.Fatalf("--wait's progress does not name the group and its state:\n%s", live.String())
		}
		leave()
		r := <-res
		if r.code != orderctl.ExitOK || !strings.Contains(r.out, "committed") || !strings.Contains(r.out, "group order-worker has no members after") {
			t.Fatalf("--wait 60s after the member left: exit %d, want 0 and the end of the wait said\n%s", r.code, r.out)
		}
		if got := f.committed(t); got != [3]int64{0, 0, 0} {
			t.Fatalf("committed after --wait --execute: got %v, want [0 0 0]", got)
		}
	})
}

// The dry-run table: a header naming the target, one row per partition, the totals and a note
// that nothing changed.
func TestReplayTableGolden(t *testing.T) {
	t.Parallel()
	f := newReplayFixture(t, nil)
	var out bytes.Buffer
	if code := f.run(t.Context(), &out, "replay", "--group", "order-worker", "--to-start"); code != orderctl.ExitOK {
		t.Fatalf("exit %d, want 0\n%s", code, out.String())
	}
	golden := filepath.Join("testdata", "replay_table.golden")
	if u := flag.Lookup("update"); u != nil && u.Value.String() == "true" {
		if err := os.WriteFile(golden, out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("read golden (run with -update to create it): %v", err)
	}
	if out.String() != string(want) {
		t.Fatalf("got\n%s\nwant\n%s", out.String(), want)
	}
	if got := f.committed(t); got != [3]int64{5, 3, 0} {
		t.Fatalf("committed after a dry run: got %v, want [5 3 0] unchanged", got)
	}
}

// Bad arguments exit with code 2 before anything connects.
func TestReplayBadUsage(t *testing.T) {
	t.Parallel()
	env := map[string]string{"KAFKA_BROKERS": "127.0.0.1:1"}
	for _, args := range [][]string{
		{"replay", "--group", "order-worker"},                                                   // no target
		{"replay", "--group", "order-worker", "--to-start", "--ago", "1h"},                      // two targets
		{"replay", "--group", "order-worker", "--to-time", "yesterday"},                         // bad time
		{"replay", "--group", "order-worker", "--ago", "-1h"},                                   // negative duration
		{"replay", "--group", "order-worker", "--topic", "orders.placed", "--to-offset", "0-5"}, // malformed
		{"replay", "--group", "order-worker", "--topic", "orders.placed", "--to-offset", "a:b"},
		{"replay", "--group", "order-worker", "--to-offset", "0:5"}, // two default topics: which one?
		{"replay", "--group", "order-worker", "--to-start", "--output", "yaml"},
		{"replay", "--to-start"},                                 // no group
		{"replay", "--group", "someone-else", "--to-start"},      // no default topics
		{"replay", "--group", "order-worker", "--to-start", "x"}, // extra argument
	} {
		var out bytes.Buffer
		err := orderctl.Run(t.Context(), args, func(k string) string { return env[k] }, &out)
		if code := orderctl.Code(err); code != orderctl.ExitUsage {
			t.Fatalf("%v: got exit %d (%v), want 2", args, code, err)
		}
	}
}

package orderctl_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"io"
	"os"
	"path/filepath"
	"regexp"
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

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// lagFixture starts a broker holding 5 records on orders.placed partition 0 (created 10..6 minutes
// ago), 3 on partition 1 and none on partition 2, with order-worker committed at 2 on partition 0 (3 behind, oldest
// unconsumed record 8 minutes old) and at 3 on partition 1 (caught up). It returns a runner of
// orderctl against that broker and the broker's addresses. addrs is a broker with orderpipe's topics
// (testenv.EachTopologyBroker); nil starts a kfake one.
func lagFixture(t *testing.T, addrs []string) (func(ctx context.Context, out io.Writer, args ...string) int, []string) {
	t.Helper()
	if addrs == nil {
		addrs = testenv.Kafka(t).ListenAddrs()
	}
	ctx := t.Context()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	base := time.Now().Add(-10 * time.Minute)
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
	var offs kadm.Offsets
	offs.AddOffset(event.TopicOrdersPlaced, 0, 2, -1)
	offs.AddOffset(event.TopicOrdersPlaced, 1, 3, -1)
	if err := kadm.NewClient(cl).CommitAllOffsets(ctx, "order-worker", offs); err != nil {
		t.Fatalf("commit: %v", err)
	}
	env := map[string]string{"KAFKA_BROKERS": strings.Join(addrs, ",")}
	return func(ctx context.Context, out io.Writer, args ...string) int {
		return orderctl.Code(orderctl.Run(ctx, args, func(k string) string { return env[k] }, out))
	}, addrs
}

// orderctl lag --output json reports committed and end offsets, lag in records, and the age of the
// oldest unconsumed record: positive for the partition behind, 0 for the caught-up one.
func TestLagJSON(t *testing.T) {
	t.Parallel()
	testenv.EachTopologyBroker(t, func(t *testing.T, addrs []string) {
		run, _ := lagFixture(t, addrs)
		var out bytes.Buffer
		if code := run(t.Context(), &out, "lag", "--group", "order-worker", "--output", "json"); code != orderctl.ExitOK {
			t.Fatalf("exit %d, want 0\n%s", code, out.String())
		}
		var rep orderctl.LagReport
		if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
			t.Fatalf("decode %q: %v", out.String(), err)
		}
		if len(rep.Groups) != 1 || rep.Groups[0].Group != "order-worker" {
			t.Fatalf("got groups %+v, want order-worker only", rep.Groups)
		}
		g := rep.Groups[0]
		if g.State != "Empty" || g.TotalLag != 3 || len(g.Members) != 0 || g.Error != "" {
			t.Fatalf("got group %+v, want state Empty, total lag 3, no members, no error", g)
		}
		if len(g.Partitions) != 3 {
			t.Fatalf("got partitions %+v, want 3 (every partition of the committed topic)", g.Partitions)
		}
		behind, caughtUp, empty := g.Partitions[0], g.Partitions[1], g.Partitions[2]
		if behind.Topic != event.TopicOrdersPlaced || behind.Partition != 0 || behind.Committed != 2 || behind.End != 5 || behind.Lag != 3 {
			t.Fatalf("got %+v, want orders.placed/0 committed 2 end 5 lag 3", behind)
		}
		// The record at offset 2 was created 8 minutes before the fixture ran.
		if behind.LagSeconds < 8*60 || behind.LagSeconds > 9*60 || behind.OldestUnconsumed == nil {
			t.Fatalf("got lag_seconds %v oldest %v, want 480..540 s with a timestamp", behind.LagSeconds, behind.OldestUnconsumed)
		}
		if caughtUp.Partition != 1 || caughtUp.Committed != 3 || caughtUp.End != 3 || caughtUp.Lag != 0 || caughtUp.LagSeconds != 0 || caughtUp.OldestUnconsumed != nil {
			t.Fatalf("got %+v, want orders.placed/1 committed 3 end 3 lag 0 age 0", caughtUp)
		}
		if empty.Partition != 2 || empty.Committed != -1 || empty.End != 0 || empty.Lag != 0 || empty.LagSeconds != 0 {
			t.Fatalf("got %+v, want orders.placed/2 never committed, empty, lag 0", empty)
		}
	})
}

var ageColumn = regexp.MustCompile(`(?m)  (\d+h)?(\d+m)?[\d.]+(ms|s)$`)

// Without --group the table lists every orderpipe group, sorted (only order-worker has committed),
// with LAG-TIME last; the
// age of a lagging partition is normalised to <age>, caught-up partitions keep their 0s.
func TestLagTableGolden(t *testing.T) {
	t.Parallel()
	run, _ := lagFixture(t, nil)
	var out bytes.Buffer
	if code := run(t.Context(), &out, "lag"); code != orderctl.ExitOK {
		t.Fatalf("exit %d, want 0\n%s", code, out.String())
	}
	got := ageColumn.ReplaceAllStringFunc(out.String(), func(s string) string {
		if strings.TrimSpace(s) == "0s" {
			return s
		}
		return "  <age>"
	})
	golden := filepath.Join("testdata", "lag_table.golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("read golden (run with -update to create it): %v", err)
	}
	if got != string(want) {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
}

// cancelAfter cancels a context once n reports (JSON lines) have been written.
type cancelAfter struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	n      int
	cancel context.CancelFunc
}

func (w *cancelAfter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n, err := w.buf.Write(p)
	if strings.Count(w.buf.String(), "\n") >= w.n {
		w.cancel()
	}
	return n, err
}

// --watch refreshes until the context is cancelled, then exits 0.
func TestLagWatch(t *testing.T) {
	t.Parallel()
	run, _ := lagFixture(t, nil)
	ctx, cancel := context.WithTimeout(t.Context(), 8*time.Second)
	defer cancel()
	w := &cancelAfter{n: 2, cancel: cancel}
	code := run(ctx, w, "lag", "--group", "order-worker", "--output", "json", "--watch", "20ms")
	w.mu.Lock()
	defer w.mu.Unlock()
	if code != orderctl.ExitOK {
		t.Fatalf("exit %d, want 0\n%s", code, w.buf.String())
	}
	lines := strings.Split(strings.TrimSpace(w.buf.String()), "\n")
	if len(lines) < 2 {
		t.Fatalf("got %d reports, want at least 2\n%s", len(lines), w.buf.String())
	}
	for _, l := range lines {
		var rep orderctl.LagReport
		if err := json.Unmarshal([]byte(l), &rep); err != nil || len(rep.Groups) != 1 || rep.Groups[0].TotalLag != 3 {
			t.Fatalf("report %q: %v, want order-worker with total lag 3", l, err)
		}
	}
}

// A group with an active member shows it, with the member assigned to each partition; a partition
// the group never committed lags from the log start, whose record gives the age.
func TestLagMembers(t *testing.T) {
	t.Parallel()
	testenv.EachTopologyBroker(t, func(t *testing.T, addrs []string) {
		run, addrs := lagFixture(t, addrs)
		ctx := t.Context()
		cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.ClientID("reports-test"), kgo.ConsumerGroup("reports"),
			kgo.ConsumeTopics(event.TopicOrdersPlaced), kgo.DisableAutoCommit())
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		pollCtx, cancel := context.WithTimeout(ctx, 8*time.Second)
		defer cancel()
		for n := 0; n < 8 && pollCtx.Err() == nil; { // every record fetched: the member is assigned
			n += cl.PollFetches(pollCtx).NumRecords()
		}
		var out bytes.Buffer
		if code := run(ctx, &out, "lag", "--group", "reports", "--output", "json"); code != orderctl.ExitOK {
			t.Fatalf("exit %d, want 0\n%s", code, out.String())
		}
		var rep orderctl.LagReport
		if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
			t.Fatalf("decode %q: %v", out.String(), err)
		}
		g := rep.Groups[0]
		if g.State != "Stable" || len(g.Members) != 1 || g.Members[0].ClientID != "reports-test" || g.Members[0].Host == "" {
			t.Fatalf("got state %s members %+v, want Stable with one member reports-test", g.State, g.Members)
		}
		if len(g.Partitions) != 3 || g.TotalLag != 8 {
			t.Fatalf("got %+v, want 3 partitions lagging 8 records in total", g)
		}
		p0 := g.Partitions[0]
		if p0.Committed != -1 || p0.Lag != 5 || p0.MemberID != g.Members[0].MemberID || p0.LagSeconds < 10*60 || p0.LagSeconds > 11*60 {
			t.Fatalf("got %+v, want orders.placed/0 uncommitted, lag 5, age 600..660 s, member %s", p0, g.Members[0].MemberID)
		}
		out.Reset()
		code := run(ctx, &out, "lag", "--group", "reports")
		if code != orderctl.ExitOK || !strings.Contains(out.String(), "reports-test@") || !strings.Contains(out.String(), "MEMBER-ID") {
			t.Fatalf("table: exit %d\n%s\nwant the member in the rows and the members section", code, out.String())
		}
	})
}

// Bad arguments exit with code 2.
func TestLagBadUsage(t *testing.T) {
	t.Parallel()
	env := map[string]string{"KAFKA_BROKERS": "127.0.0.1:1"}
	for _, args := range [][]string{
		{"lag", "--output", "yaml"},
		{"lag", "--watch", "-1s"},
		{"lag", "--watch", "soon"},
		{"lag", "extra"},
	} {
		var out bytes.Buffer
		err := orderctl.Run(t.Context(), args, func(k string) string { return env[k] }, &out)
		if code := orderctl.Code(err); code != orderctl.ExitUsage {
			t.Fatalf("%v: got exit %d (%v), want 2", args, code, err)
		}
	}
}

// TestLagUnknownGroup: a --group that is neither an orderpipe group nor known to the broker is a
// usage error naming it, not an idle "Dead" group with exit 0; a group the broker knows (here one
// that committed offsets) and an orderpipe group that never joined are shown.
func TestLagUnknownGroup(t *testing.T) {
	t.Parallel()
	run, addrs := lagFixture(t, nil)
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var offs kadm.Offsets
	offs.AddOffset(event.TopicOrdersPlaced, 0, 1, -1)
	if err := kadm.NewClient(cl).CommitAllOffsets(t.Context(), "orderpipe-replay-test", offs); err != nil {
		t.Fatalf("commit: %v", err)
	}

	var out bytes.Buffer
	if code := run(t.Context(), &out, "lag", "--group", "nosuch"); code != orderctl.ExitUsage {
		t.Fatalf("lag --group nosuch: exit %d, want %d (usage)\n%s", code, orderctl.ExitUsage, out.String())
	}
	for _, args := range [][]string{
		{"lag", "--group", "orderpipe-replay-test"},
		{"lag", "--group", "notifier"}, // an orderpipe group that never joined this broker
	} {
		out.Reset()
		if code := run(t.Context(), &out, args...); code != 0 {
			t.Fatalf("%v: exit %d, want 0\n%s", args, code, out.String())
		}
	}
}

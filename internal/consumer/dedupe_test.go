package consumer_test

import (
	"context"
	"errors"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderpipe/orderpipe/internal/consumer"
	"github.com/orderpipe/orderpipe/internal/event"
	"github.com/orderpipe/orderpipe/internal/postgres"
	"github.com/orderpipe/orderpipe/internal/testenv"
)

// A replay of the source topics (a replay group, or the live group moved back) delivers a poison
// record again: with Config.DeadLetters, it is settled without a second dead letter and without a
// dead-letter count (the alert on that counter stays quiet). A re-driven copy (redrive-count
// raised) that fails again is dead-lettered again: a re-drive is a new attempt. Before, the replay
// wrote every poison record a second time, with its loop-guard count back at 0.
func TestDeadLetterNotRepeatedByAReplay(t *testing.T) {
	t.Parallel()
	pool, _ := testenv.Postgres(t)
	ledger := postgres.NewDeadLetterLedger(pool)
	dlq := event.DeadLetterTopic("g")
	b := setup(t, "src", dlq)
	recs := b.produce(t, rec("src", 0, "ok"), rec("src", 0, "poison"), rec("src", 1, "poison-2"))
	h := consumer.HandlerFunc(func(_ context.Context, rs []*kgo.Record) []error {
		errs := make([]error, len(rs))
		for i, r := range rs {
			if string(r.Key) != "ok" {
				errs[i] = consumer.Permanent(errors.New("cannot decode " + string(r.Key)))
			}
		}
		return errs
	})
	run := func(groupID string, reg *prometheus.Registry) {
		t.Helper()
		id := groupID
		if id == "" {
			id = "g"
		}
		r := b.start(t, consumer.Config{Group: "g", GroupID: groupID, Topics: []string{"src"}, StartAt: consumer.StartEarliest,
			DeadLetters: ledger, Registerer: reg, LagInterval: -1}, h)
		b.waitCommitted(t, id, "src", map[int32]int64{0: recs[1].Offset + 1, 1: recs[2].Offset + 1})
		r.stop(t)
	}
	live := prometheus.NewRegistry()
	run("", live)
	if n := len(b.read(t, dlq)); n != 2 {
		t.Fatalf("dead letters after the first pass: %d, want 2", n)
	}
	if got := metricValue(t, live, "orderpipe_consumer_dead_letters_total", "group", "g", "class", "permanent"); got != 2 {
		t.Fatalf("live dead-letter count %v, want 2", got)
	}

	// A replay group, then the live group moved back to the start: nothing is dead-lettered again.
	replay := prometheus.NewRegistry()
	run("g.replay.1", replay)
	back := kadm.Offsets{}
	back.AddOffset("src", 0, 0, -1)
	back.AddOffset("src", 1, 0, -1)
	resp, err := b.adm.CommitOffsets(t.Context(), "g", back)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		t.Fatalf("move g back: %v", err)
	}
	again := prometheus.NewRegistry()
	run("", again)
	if n := len(b.read(t, dlq)); n != 2 {
		t.Fatalf("dead letters after two replays: %d, want still 2", n)
	}
	for name, reg := range map[string]*prometheus.Registry{"replay group": replay, "live group moved back": again} {
		if got := metricValue(t, reg, "orderpipe_consumer_dead_letters_total", "group", "g"); got != 0 {
			t.Fatalf("%s: dead-letter count %v, want 0", name, got)
		}
	}

	// A re-driven copy fails again: a new dead letter, with its redrive-count.
	redriven := rec("src", 0, "poison")
	redriven.Headers = append(redriven.Headers, kgo.RecordHeader{Key: consumer.HeaderRedriveCount, Value: []byte("1")})
	b.produce(t, redriven)
	r := b.start(t, consumer.Config{Group: "g", Topics: []string{"src"}, StartAt: consumer.StartEarliest, DeadLetters: ledger, LagInterval: -1}, h)
	b.waitCommitted(t, "g", "src", map[int32]int64{0: redriven.Offset + 1})
	r.stop(t)
	dead := b.read(t, dlq)
	again1 := 0
	for _, d := range dead {
		if hdr(d, consumer.HeaderRedriveCount) == "1" {
			again1++
		}
	}
	if len(dead) != 3 || again1 != 1 {
		t.Fatalf("dead letters after a re-drive failed again: %d, want 3, the last with redrive-count 1", len(dead))
	}
}

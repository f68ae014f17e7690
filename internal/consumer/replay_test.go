package consumer_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderpipe/orderpipe/internal/consumer"
	"github.com/orderpipe/orderpipe/internal/event"
	"github.com/orderpipe/orderpipe/internal/testenv"
)

// A replay group (GroupID set) consumes under its own Kafka group id while Group stays the
// logical name; it may not use the live group's retry topics.
func TestReplayGroupConfig(t *testing.T) {
	t.Parallel()
	live := consumer.Config{Group: "g"}
	replay := consumer.Config{Group: "g", GroupID: "g.replay.1"}
	if live.KafkaGroup() != "g" || replay.KafkaGroup() != "g.replay.1" {
		t.Fatalf("KafkaGroup: got %q and %q, want g and g.replay.1", live.KafkaGroup(), replay.KafkaGroup())
	}
	cfg := consumer.Config{Group: "g", GroupID: "g.replay.1", Topics: []string{"src"}, Brokers: []string{"127.0.0.1:1"},
		StartAt: consumer.StartEarliest, RetryTiers: []time.Duration{time.Second}}
	_, err := consumer.New(cfg, consumer.HandlerFunc(func(context.Context, []*kgo.Record) []error { return nil }))
	if err == nil || !strings.Contains(err.Error(), "RetryTiers must be empty") {
		t.Fatalf("New with a replay group and retry tiers: got %v, want an error naming RetryTiers", err)
	}
}

// A replay group commits under its own id, never the live group's, and its dead letters go to
// the live group's dead-letter topic marked with the dlq-replay-group header, which ParseDeadLetter
// reads and a re-drive drops.
func TestReplayGroupDeadLetters(t *testing.T) {
	t.Parallel()
	testenv.EachBroker(t, func(t *testing.T, k *testenv.Broker) {
		src, g := k.Name("src"), k.Name("g")
		replay := g + ".replay.1"
		b := setupOn(t, k, src, event.DeadLetterTopic(g))
		recs := b.produce(t, rec(src, 0, "ok"), rec(src, 0, "poison"))
		h := consumer.HandlerFunc(func(_ context.Context, rs []*kgo.Record) []error {
			errs := make([]error, len(rs))
			for i, r := range rs {
				if string(r.Key) == "poison" {
					errs[i] = consumer.Permanent(errors.New("cannot decode"))
				}
			}
			return errs
		})
		b.start(t, consumer.Config{Group: g, GroupID: replay, Topics: []string{src}, StartAt: consumer.StartEarliest}, h)
		b.waitCommitted(t, replay, src, map[int32]int64{0: recs[1].Offset + 1})
		if got := b.committed(t, g, src); len(got) != 0 {
			t.Fatalf("live group g committed %v, want nothing", got)
		}
		dead := b.read(t, event.DeadLetterTopic(g))
		if len(dead) != 1 {
			t.Fatalf("dead letters: got %d, want 1", len(dead))
		}
		d, err := consumer.ParseDeadLetter(dead[0])
		if err != nil {
			t.Fatal(err)
		}
		if d.ReplayGroup != replay || string(d.Key) != "poison" || d.Class != consumer.ClassPermanent {
			t.Fatalf("dead letter %+v, want poison from replay group g.replay.1", d)
		}
		for _, h := range d.Redrive().Headers {
			if h.Key == consumer.HeaderDLQReplayGroup {
				t.Fatalf("re-driven record keeps header %s", h.Key)
			}
		}
	}, kfakeOpts...)
}

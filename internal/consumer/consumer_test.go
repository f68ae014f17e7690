package consumer_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderpipe/orderpipe/internal/consumer"
	"github.com/orderpipe/orderpipe/internal/event"
	"github.com/orderpipe/orderpipe/internal/testenv"
)

func TestClassOf(t *testing.T) {
	t.Parallel()
	base := errors.New("boom")
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"unclassified", base, consumer.ClassTransient},
		{"transient", consumer.Transient(base), consumer.ClassTransient},
		{"permanent", consumer.Permanent(base), consumer.ClassPermanent},
		{"wrapped permanent", fmt.Errorf("decode: %w", consumer.Permanent(base)), consumer.ClassPermanent},
		{"outer marker wins", consumer.Transient(consumer.Permanent(base)), consumer.ClassTransient},
	}
	pg := func(code string) error { return fmt.Errorf("write orders: %w: %w", &pgconn.PgError{Code: code}, base) }
	tests = append(tests, []struct {
		name string
		err  error
		want string
	}{
		{"22021 NUL in text", pg("22021"), consumer.ClassPermanent},
		{"22003 out of range", pg("22003"), consumer.ClassPermanent},
		{"23514 check violation", pg("23514"), consumer.ClassPermanent},
		{"23503 foreign key", pg("23503"), consumer.ClassPermanent},
		{"23505 unique violation is the expected race", pg("23505"), consumer.ClassTransient},
		{"42P01 undefined table", pg("42P01"), consumer.ClassPermanent},
		{"40001 serialization failure", pg("40001"), consumer.ClassTransient},
		{"40P01 deadlock", pg("40P01"), consumer.ClassTransient},
		{"57P01 admin shutdown", pg("57P01"), consumer.ClassTransient},
		{"08006 connection failure", pg("08006"), consumer.ClassTransient},
		{"marker beats nature", consumer.Transient(pg("22021")), consumer.ClassTransient},
		{"malformed event", fmt.Errorf("decode: %w: %w", event.ErrMalformed, base), consumer.ClassPermanent},
		{"schema-invalid event", fmt.Errorf("decode: %w: %w", event.ErrInvalid, base), consumer.ClassPermanent},
		{"json syntax", fmt.Errorf("%w: %w", &json.SyntaxError{}, base), consumer.ClassPermanent},
		{"deadline", fmt.Errorf("%w: %w", context.DeadlineExceeded, base), consumer.ClassTransient},
	}...)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := consumer.ClassOf(tt.err); got != tt.want {
				t.Fatalf("ClassOf: got %s, want %s", got, tt.want)
			}
			if !errors.Is(tt.err, base) {
				t.Fatalf("errors.Is(%v, base): got false, want true", tt.err)
			}
		})
	}
	if consumer.Permanent(nil) != nil || consumer.Transient(nil) != nil {
		t.Fatal("classifying nil: got an error, want nil")
	}
}

func TestNewValidatesConfig(t *testing.T) {
	t.Parallel()
	ok := consumer.Config{Group: "g", Topics: []string{"src"}, Brokers: []string{"127.0.0.1:1"}, StartAt: consumer.StartEarliest}
	tests := []struct {
		name   string
		change func(*consumer.Config)
		want   string
	}{
		{"no group", func(c *consumer.Config) { c.Group = "" }, "Group"},
		{"no topics", func(c *consumer.Config) { c.Topics = nil }, "Topics"},
		{"no brokers", func(c *consumer.Config) { c.Brokers = nil }, "Brokers"},
		{"no start", func(c *consumer.Config) { c.StartAt = "" }, "StartAt"},
		{"bad start", func(c *consumer.Config) { c.StartAt = "beginning" }, "StartAt"},
		{"retry in place too long", func(c *consumer.Config) { c.RetryInPlaceFor = time.Minute }, "RetryInPlaceFor"},
		{"in place only with tiers", func(c *consumer.Config) { c.InPlaceOnly, c.RetryTiers = true, []time.Duration{time.Second} }, "InPlaceOnly"},
		{"zero tier", func(c *consumer.Config) { c.RetryTiers = []time.Duration{0} }, "RetryTiers"},
		{"priority not a topic", func(c *consumer.Config) { c.PriorityTopic, c.MaxStarve = "other", time.Second }, "PriorityTopic"},
		{"priority without bound", func(c *consumer.Config) { c.PriorityTopic = "src" }, "MaxStarve"},
		{"own topic as source", func(c *consumer.Config) { c.Topics = []string{event.DeadLetterTopic("g")} }, "own topics"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := ok
			tt.change(&cfg)
			_, err := consumer.New(cfg, consumer.HandlerFunc(func(context.Context, []*kgo.Record) []error { return nil }))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New: got %v, want an error naming %s", err, tt.want)
			}
		})
	}
	if _, err := consumer.New(ok, nil); err == nil {
		t.Fatal("New with a nil handler: got nil error, want one")
	}
}

func TestOwnTopics(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  consumer.Config
		want []string
	}{
		{"tiers", consumer.Config{Group: "order-worker", RetryTiers: []time.Duration{time.Second, time.Minute}},
			[]string{"order-worker.retry.1", "order-worker.retry.2", "order-worker.dlq"}},
		{"in place only", consumer.Config{Group: "inventory-sync", InPlaceOnly: true}, []string{"inventory-sync.dlq"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := tt.cfg.OwnTopics(); !slices.Equal(got, tt.want) {
				t.Fatalf("OwnTopics: got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestParseDeadLetterRejectsOtherRecords(t *testing.T) {
	t.Parallel()
	_, err := consumer.ParseDeadLetter(rec("src", 0, "k"))
	if !errors.Is(err, consumer.ErrNotDeadLetter) {
		t.Fatalf("ParseDeadLetter of a plain record: got %v, want ErrNotDeadLetter", err)
	}
	bad := rec("x.dlq", 0, "k")
	for _, h := range []string{consumer.HeaderDLQSourceTopic, consumer.HeaderDLQSourcePart, consumer.HeaderDLQSourceOffset,
		consumer.HeaderDLQAttempts, consumer.HeaderDLQErrorClass, consumer.HeaderDLQError, consumer.HeaderDLQTime} {
		bad.Headers = append(bad.Headers, kgo.RecordHeader{Key: h, Value: []byte("1")})
	}
	if _, err := consumer.ParseDeadLetter(bad); !errors.Is(err, consumer.ErrNotDeadLetter) {
		t.Fatalf("ParseDeadLetter with an invalid time: got %v, want ErrNotDeadLetter", err)
	}
}

func TestRunRefusesMissingTopics(t *testing.T) {
	t.Parallel()
	b := setup(t, "src") // no dead-letter topic
	c, err := consumer.New(consumer.Config{Group: "missing", Topics: []string{"src"}, Brokers: b.addrs,
		StartAt: consumer.StartEarliest, RetryTiers: []time.Duration{time.Second}}, newRecorder(nil))
	if err != nil {
		t.Fatalf("new: %v", err)
	}
	err = c.Run(t.Context())
	if err == nil || !strings.Contains(err.Error(), "missing.retry.1") || !strings.Contains(err.Error(), "missing.dlq") {
		t.Fatalf("Run: got %v, want an error naming the missing retry and dead-letter topics", err)
	}
}

func TestLagIsReportedPerPartition(t *testing.T) {
	t.Parallel()
	testenv.EachBroker(t, func(t *testing.T, k *testenv.Broker) {
		group, src := k.Name("lag"), k.Name("src")
		b := setupOn(t, k, src, event.DeadLetterTopic(group))
		b.fill(t, src, "l", 4)
		// The handler finishes nothing in partition 2, so its lag stays.
		h := newRecorder(func(key string, _ int) error {
			if strings.HasPrefix(key, "l-2-") {
				return consumer.Transient(errDown)
			}
			return nil
		})
		reg := prometheus.NewRegistry()
		b.start(t, consumer.Config{Group: group, Topics: []string{src}, StartAt: consumer.StartEarliest,
			InPlaceOnly: true, Registerer: reg, LagInterval: 50 * time.Millisecond}, h)
		b.waitCommitted(t, group, src, map[int32]int64{0: 4, 1: 4})

		var lag map[string]map[int32]int64
		waitFor(t, 10*time.Second, func() bool {
			var err error
			lag, err = consumer.Lag(t.Context(), b.adm, group)
			return err == nil && lag[src][0] == 0 && lag[src][1] == 0 && lag[src][2] == 4
		}, func() string { return fmt.Sprintf("lag: got %v, want src 0:0 1:0 2:4", lag) })
		waitFor(t, 10*time.Second, func() bool {
			return metricValue(t, reg, "orderpipe_consumer_lag", "group", group, "topic", src, "partition", "2") == 4
		}, func() string { return "lag gauge of src/2 never reached 4" })
	}, kfakeOpts...)
}

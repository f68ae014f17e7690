package testenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderpipe/orderpipe/internal/kafka"
	"github.com/orderpipe/orderpipe/internal/kafkaserver"
	"github.com/orderpipe/orderpipe/internal/topology"
)

// RealKafkaEnv selects the real-broker tier of the tests:
//   - "required" (make test, CI): a real node that cannot start fails every test that asks for it;
//   - "off": the tier is skipped;
//   - unset: the tier runs when java and mvn are on PATH, and is skipped, saying why, otherwise.
const RealKafkaEnv = "ORDERPIPE_REAL_KAFKA"

// RealKafkaOverrides are the test node's departures from docker-compose.yml's settings, each to
// keep the tier fast on a small machine; nothing else differs from production's broker:
//   - group.min.session.timeout.ms: tests use session timeouts of about a second so that a dead
//     member is noticed quickly (the broker's default floor, 6 s, would refuse them);
//   - offsets.topic.num.partitions: __consumer_offsets is created on the first group's first
//     request; 50 partitions take seconds to create on one node, 3 do not.
var RealKafkaOverrides = map[string]string{
	"group.min.session.timeout.ms": "100",
	"offsets.topic.num.partitions": "3",
}

var realKafka struct {
	main    atomic.Bool // RealKafkaMain is running the tests
	once    sync.Once
	cluster *kafkaserver.Cluster
	dir     string
	took    time.Duration
	err     error
	// topology is held by the EachTopologyBroker subtest using orderpipe's fixed topic names.
	topology sync.Mutex
}

// RealKafkaMain runs a package's tests (call it from TestMain) and afterwards stops the package's
// real Kafka node, if a test started one, and removes its data directory.
func RealKafkaMain(m *testing.M) {
	realKafka.main.Store(true)
	code := m.Run()
	if c := realKafka.cluster; c != nil {
		if err := c.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "stop real kafka: %v\n", err)
			code = max(code, 1)
		}
	}
	if realKafka.dir != "" {
		_ = os.RemoveAll(realKafka.dir)
	}
	os.Exit(code)
}

// RealKafka returns the package's real single-node Apache Kafka cluster (internal/kafkaserver),
// started by the first test that asks and shared by every test of the package; the package's
// TestMain must call RealKafkaMain. See RealKafkaEnv for when it skips or fails.
func RealKafka(t testing.TB) *kafkaserver.Cluster {
	t.Helper()
	RealKafkaTier(t)
	if !realKafka.main.Load() {
		t.Fatal("testenv.RealKafka needs the package's TestMain to call testenv.RealKafkaMain (it stops the node)")
	}
	realKafka.once.Do(func() {
		dir, err := os.MkdirTemp("", "orderpipe-kafka-test-*")
		if err != nil {
			realKafka.err = err
			return
		}
		realKafka.dir = dir
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		start := time.Now()
		realKafka.cluster, realKafka.err = kafkaserver.Start(ctx, kafkaserver.Config{
			Nodes: 1, DataDir: dir, Overrides: RealKafkaOverrides, HeapMax: "384m", Log: os.Stderr,
			// Usually 10-30 s; with two test binaries, their JVMs and the other engineers' work on
			// these 2 cores, one start took more than 2 minutes.
			StartTimeout: 4 * time.Minute,
		})
		realKafka.took = time.Since(start)
	})
	if realKafka.err != nil {
		t.Fatalf("real Kafka node: %v", realKafka.err)
	}
	return realKafka.cluster
}

// RealKafkaTier skips or fails t as RealKafkaEnv says when the real-broker tier cannot or must not
// run, without starting anything: for tests that start clusters of their own.
func RealKafkaTier(t testing.TB) {
	t.Helper()
	switch mode := os.Getenv(RealKafkaEnv); mode {
	case "off":
		t.Skipf("real Kafka tier off (%s=off)", RealKafkaEnv)
	case "":
		for _, tool := range []string{"java", "mvn"} {
			if _, err := exec.LookPath(tool); err != nil {
				t.Skipf("real Kafka tier skipped: %s not on PATH (set %s=required to make this a failure)", tool, RealKafkaEnv)
			}
		}
	case "required":
		// Start and fail loudly when java, mvn or the jars are missing.
	default:
		t.Fatalf("%s=%q: want required, off or unset", RealKafkaEnv, mode)
	}
}

// Broker is the Kafka a test body runs against: a fresh in-process kfake cluster, or the
// package's shared real node. On the shared node, Name makes topic and group names unique to the
// test, so tests never see each other's records or offsets; on kfake it returns the name as is.
type Broker struct {
	Kind  string         // "kfake" or "kafka", the subtest's name
	Addrs []string       // bootstrap addresses
	Fake  *kfake.Cluster // kfake's control hooks; nil on real Kafka
	adm   *kadm.Client
	id    string
	mu    sync.Mutex
	names []string
}

var brokerSeq atomic.Int64

// Real reports whether b is a real Apache Kafka node.
func (b *Broker) Real() bool { return b.Fake == nil }

// Name returns the topic or group name s for this test.
func (b *Broker) Name(s string) string {
	if !b.Real() {
		return s
	}
	n := s + "-" + b.id
	b.mu.Lock()
	b.names = append(b.names, n)
	b.mu.Unlock()
	return n
}

// Admin is an admin client on the broker, closed when the test ends.
func (b *Broker) Admin() *kadm.Client { return b.adm }

// CreateTopics creates topics (names as returned by Name) with partitions each, replication 1,
// and waits until every partition has a leader.
func (b *Broker) CreateTopics(t testing.TB, partitions int32, topics ...string) {
	t.Helper()
	resp, err := b.adm.CreateTopics(t.Context(), partitions, 1, nil, topics...)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		t.Fatalf("create topics %v on %s: %v", topics, b.Kind, err)
	}
	if err := kafka.WaitTopicsServed(t.Context(), b.adm, topics...); err != nil {
		t.Fatalf("topics %v on %s: %v", topics, b.Kind, err)
	}
}

// EachBroker runs body as two subtests with the same body: "kfake" on a fresh in-process kfake
// cluster (one broker, kfakeOpts added), and "kafka" on the package's real Apache Kafka node
// (RealKafka). On the real node, the topics and groups named through Broker.Name are deleted when
// the subtest ends.
func EachBroker(t *testing.T, body func(t *testing.T, b *Broker), kfakeOpts ...kfake.Opt) {
	t.Helper()
	t.Run("kfake", func(t *testing.T) {
		c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1)}, kfakeOpts...)...)
		if err != nil {
			t.Fatalf("start kfake: %v", err)
		}
		t.Cleanup(c.Close)
		body(t, newBroker(t, "kfake", c.ListenAddrs(), c))
	})
	t.Run("kafka", func(t *testing.T) {
		c := RealKafka(t)
		b := newBroker(t, "kafka", c.Addrs(), nil)
		t.Cleanup(func() { b.cleanup() })
		body(t, b)
	})
}

func newBroker(t *testing.T, kind string, addrs []string, fake *kfake.Cluster) *Broker {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...))
	if err != nil {
		t.Fatalf("admin client on %s: %v", kind, err)
	}
	t.Cleanup(cl.Close)
	return &Broker{Kind: kind, Addrs: addrs, Fake: fake, adm: kadm.NewClient(cl),
		id: fmt.Sprintf("t%d", brokerSeq.Add(1))}
}

// cleanup deletes this test's groups and topics from the shared node, so the node stays small.
func (b *Broker) cleanup() {
	b.mu.Lock()
	names := b.names
	b.mu.Unlock()
	if len(names) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, _ = b.adm.DeleteGroups(ctx, names...)
	var topics []string
	if listed, err := b.adm.ListTopics(ctx); err == nil {
		for _, n := range names {
			if listed.Has(n) {
				topics = append(topics, n)
			}
		}
	}
	// Retry and dead-letter topics derive from group names (<group>.retry.N, <group>.dlq).
	if listed, err := b.adm.ListTopics(ctx); err == nil {
		for _, tp := range listed.Names() {
			for _, n := range names {
				if strings.HasPrefix(tp, n+".") {
					topics = append(topics, tp)
				}
			}
		}
	}
	if len(topics) > 0 {
		_, _ = b.adm.DeleteTopics(ctx, topics...)
	}
}

// EachTopologyBroker runs body as subtests "kfake" and "kafka" on a broker holding orderpipe's
// topics with their real names (3 partitions each): a fresh kfake cluster (Kafka), or the
// package's real node, which then belongs to this subtest alone (the names are fixed) and is
// emptied of every topic and group when it ends. body gets the bootstrap addresses.
func EachTopologyBroker(t *testing.T, body func(t *testing.T, addrs []string)) {
	t.Helper()
	t.Run("kfake", func(t *testing.T) { body(t, Kafka(t).ListenAddrs()) })
	t.Run("kafka", func(t *testing.T) {
		c := RealKafka(t)
		realKafka.topology.Lock()
		cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...))
		if err != nil {
			realKafka.topology.Unlock()
			t.Fatalf("admin client: %v", err)
		}
		adm := kadm.NewClient(cl)
		t.Cleanup(func() {
			defer realKafka.topology.Unlock()
			defer cl.Close()
			if err := emptyCluster(adm); err != nil {
				t.Errorf("empty the real node for the next test: %v", err)
			}
		})
		specs := topology.Topics(topology.Settings{Partitions: 3, Replication: 1})
		if _, err := kafka.EnsureTopics(t.Context(), adm, specs, true); err != nil {
			t.Fatalf("provision topics: %v", err)
		}
		body(t, c.Addrs())
	})
}

// emptyCluster deletes every consumer group and every topic but Kafka's own, and waits until the
// brokers no longer list the topics, so the next test can create them again.
func emptyCluster(adm *kadm.Client) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	groups, err := adm.ListGroups(ctx)
	if err != nil {
		return fmt.Errorf("list groups: %w", err)
	}
	if g := groups.Groups(); len(g) > 0 {
		if _, err := adm.DeleteGroups(ctx, g...); err != nil {
			return fmt.Errorf("delete groups: %w", err)
		}
	}
	topics, err := adm.ListTopics(ctx)
	if err != nil {
		return fmt.Errorf("list topics: %w", err)
	}
	names := topics.Names()
	if len(names) == 0 {
		return nil
	}
	if _, err := adm.DeleteTopics(ctx, names...); err != nil {
		return fmt.Errorf("delete topics: %w", err)
	}
	for {
		left, err := adm.ListTopics(ctx)
		if err == nil && len(left.Names()) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("topics still listed after deletion: %v (%v)", left.Names(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

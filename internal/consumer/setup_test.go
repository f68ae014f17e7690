package consumer_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderpipe/orderpipe/internal/consumer"
	"github.com/orderpipe/orderpipe/internal/kafka"
	"github.com/orderpipe/orderpipe/internal/testenv"
)

// bundle is one test's broker and a producer/admin client on it.
type bundle struct {
	cluster *kfake.Cluster
	addrs   []string
	cl      *kgo.Client // produces with explicit partitions
	adm     *kadm.Client
}

func TestMain(m *testing.M) { testenv.RealKafkaMain(m) }

// kfakeOpts let kfake accept the short sessions of fastGroup; the real node's overrides do the
// same (testenv.RealKafkaOverrides).
var kfakeOpts = []kfake.Opt{kfake.GroupMinSessionTimeout(200 * time.Millisecond)}

// setup starts a kfake broker (testenv.Kafka) with topics of 3 partitions each.
func setup(t *testing.T, topics ...string) *bundle {
	t.Helper()
	c := testenv.Kafka(t, append([]kfake.Opt{kfake.SeedTopics(3, topics...)}, kfakeOpts...)...)
	return newBundle(t, c.ListenAddrs(), c)
}

// setupOn is setup on the broker of a testenv.EachBroker subtest: it creates topics (names from
// k.Name) with 3 partitions each. The test's kfake hooks are k.Fake; nil on real Kafka.
func setupOn(t *testing.T, k *testenv.Broker, topics ...string) *bundle {
	t.Helper()
	k.CreateTopics(t, 3, topics...)
	return newBundle(t, k.Addrs, k.Fake)
}

func newBundle(t *testing.T, addrs []string, c *kfake.Cluster) *bundle {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerBatchMaxBytes(16<<10))
	if err != nil {
		t.Fatalf("producer: %v", err)
	}
	t.Cleanup(cl.Close)
	return &bundle{cluster: c, addrs: addrs, cl: cl, adm: kadm.NewClient(cl)}
}

// rec is a record for topic and partition with key and a CloudEvents id header.
func rec(topic string, partition int32, key string) *kgo.Record {
	return &kgo.Record{Topic: topic, Partition: partition, Key: []byte(key), Value: []byte("value of " + key),
		Headers: []kgo.RecordHeader{{Key: "ce_id", Value: []byte("ev-" + key)}, {Key: "x-origin", Value: []byte("test")}}}
}

// produce writes records and returns them with their offsets.
func (b *bundle) produce(t *testing.T, recs ...*kgo.Record) []*kgo.Record {
	t.Helper()
	res := b.cl.ProduceSync(t.Context(), recs...)
	if err := res.FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	return recs
}

// fill writes n records per partition of topic, keyed "<prefix>-<partition>-<i>".
func (b *bundle) fill(t *testing.T, topic, prefix string, n int) []*kgo.Record {
	t.Helper()
	var recs []*kgo.Record
	for i := range n {
		for p := range int32(3) {
			recs = append(recs, rec(topic, p, fmt.Sprintf("%s-%d-%d", prefix, p, i)))
		}
	}
	return b.produce(t, recs...)
}

// read returns every record currently in topic (all partitions), reading from the start.
func (b *bundle) read(t *testing.T, topic string) []*kgo.Record {
	t.Helper()
	ends, err := b.adm.ListEndOffsets(t.Context(), topic)
	if err != nil {
		t.Fatalf("end offsets of %s: %v", topic, err)
	}
	var total int64
	ends.Each(func(o kadm.ListedOffset) { total += o.Offset })
	if total == 0 {
		return nil
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.addrs...), kgo.ConsumeTopics(topic),
		kgo.ConsumeStartOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatalf("reader: %v", err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	var out []*kgo.Record
	for int64(len(out)) < total {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("read %s: got %d records, want %d", topic, len(out), total)
		}
		out = append(out, fs.Records()...)
	}
	return out
}

// committed returns the group's committed offsets on topic by partition.
func (b *bundle) committed(t *testing.T, group, topic string) map[int32]int64 {
	t.Helper()
	resp, err := kafka.FetchOffsets(t.Context(), b.adm, group) // waits out COORDINATOR_NOT_AVAILABLE
	if errors.Is(err, kerr.GroupIDNotFound) {
		return map[int32]int64{}
	}
	if err != nil {
		t.Fatalf("fetch offsets of %s: %v", group, err)
	}
	out := map[int32]int64{}
	for p, o := range resp[topic] {
		if o.Err == nil {
			out[p] = o.At
		}
	}
	return out
}

// waitCommitted waits until the group committed want on every partition of topic.
func (b *bundle) waitCommitted(t *testing.T, group, topic string, want map[int32]int64) {
	t.Helper()
	var got map[int32]int64
	waitFor(t, 15*time.Second, func() bool {
		got = b.committed(t, group, topic)
		for p, w := range want {
			if got[p] != w {
				return false
			}
		}
		return true
	}, func() string {
		return fmt.Sprintf("committed offsets of %s on %s: got %v, want %v", group, topic, got, want)
	})
}

// ends returns the end offset of each partition of topic.
func (b *bundle) ends(t *testing.T, topic string) map[int32]int64 {
	t.Helper()
	ends, err := b.adm.ListEndOffsets(t.Context(), topic)
	if err != nil {
		t.Fatalf("end offsets of %s: %v", topic, err)
	}
	out := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) { out[o.Partition] = o.Offset })
	return out
}

// fastGroup makes group membership changes quick in tests.
func fastGroup() []kgo.Opt {
	return []kgo.Opt{
		kgo.HeartbeatInterval(100 * time.Millisecond),
		kgo.SessionTimeout(time.Second),
		kgo.RebalanceTimeout(5 * time.Second),
	}
}

// running is a consumer whose Run goroutine the test controls.
type running struct {
	c      *consumer.Consumer
	cancel context.CancelFunc
	done   chan error
}

// start builds the consumer (Brokers and fast group options filled in) and runs it until the test
// ends or stop is called.
func (b *bundle) start(t *testing.T, cfg consumer.Config, h consumer.Handler) *running {
	t.Helper()
	cfg.Brokers = b.addrs
	cfg.KafkaOpts = append(fastGroup(), cfg.KafkaOpts...)
	c, err := consumer.New(cfg, h)
	if err != nil {
		t.Fatalf("new consumer: %v", err)
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(t.Context()))
	r := &running{c: c, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- c.Run(ctx) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

// stop cancels Run and waits for it; Run must return nil.
func (r *running) stop(t *testing.T) {
	t.Helper()
	r.cancel()
	select {
	case err, ok := <-r.done:
		if ok && err != nil {
			t.Errorf("Run: got %v, want nil", err)
		}
		if ok {
			close(r.done)
		}
	case <-time.After(20 * time.Second):
		t.Errorf("Run did not return within 20s of its context ending")
	}
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t *testing.T, timeout time.Duration, cond func() bool, msg func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s: %s", timeout, msg())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// delivery is one record handed to the handler.
type delivery struct {
	key   string
	topic string
	at    time.Time
	batch int // sequence number of the handler call
}

// recorder is a handler that records every delivery and answers with fail (nil: done).
type recorder struct {
	mu     sync.Mutex
	log    []delivery
	calls  [][]string
	fail   func(key string, attempt int) error // attempt counts this key's deliveries, from 1
	delay  time.Duration                       // per handler call
	each   time.Duration                       // per record, on top of delay
	counts map[string]int
}

func newRecorder(fail func(key string, attempt int) error) *recorder {
	return &recorder{fail: fail, counts: map[string]int{}}
}

func (r *recorder) Handle(ctx context.Context, recs []*kgo.Record) []error {
	if d := r.delay + r.each*time.Duration(len(recs)); d > 0 {
		time.Sleep(d)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	errs := make([]error, len(recs))
	call := make([]string, len(recs))
	now := time.Now()
	for i, rc := range recs {
		k := string(rc.Key)
		call[i] = k
		r.counts[k]++
		if r.fail != nil {
			errs[i] = r.fail(k, r.counts[k])
		}
		if errs[i] == nil {
			r.log = append(r.log, delivery{key: k, topic: rc.Topic, at: now, batch: len(r.calls)})
		}
	}
	r.calls = append(r.calls, call)
	return errs
}

// done returns the keys handled successfully, in order, with repeats.
func (r *recorder) done() []delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.log)
}

func (r *recorder) doneSet() map[string]int {
	out := map[string]int{}
	for _, d := range r.done() {
		out[d.key]++
	}
	return out
}

func (r *recorder) count(key string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.counts[key]
}

func (r *recorder) allCalls() [][]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.calls)
}

// waitDone waits until every key was handled successfully at least once.
func (r *recorder) waitDone(t *testing.T, timeout time.Duration, recs []*kgo.Record) {
	t.Helper()
	var missing []string
	waitFor(t, timeout, func() bool {
		set := r.doneSet()
		missing = missing[:0]
		for _, rc := range recs {
			if set[string(rc.Key)] == 0 {
				missing = append(missing, string(rc.Key))
			}
		}
		return len(missing) == 0
	}, func() string {
		return fmt.Sprintf("%d records never handled, e.g. %v", len(missing), missing[:min(5, len(missing))])
	})
}

// hdr returns a record header's value.
func hdr(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

func atoi(t *testing.T, s string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatalf("parse %q: %v", s, err)
	}
	return n
}

// cutDialer lets a test sever a client from the broker, as if its process died: no commit, no
// leave, no heartbeat.
type cutDialer struct {
	mu    sync.Mutex
	cut   bool
	conns []net.Conn
}

func (d *cutDialer) dial(ctx context.Context, network, host string) (net.Conn, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cut {
		return nil, errors.New("cut")
	}
	var nd net.Dialer
	c, err := nd.DialContext(ctx, network, host)
	if err == nil {
		d.conns = append(d.conns, c)
	}
	return c, err
}

func (d *cutDialer) sever() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.cut = true
	for _, c := range d.conns {
		_ = c.Close()
	}
	d.conns = nil
}

func (d *cutDialer) restore() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.cut = false
}

// metricValue returns the value of the counter or gauge name with the given label pairs (0 when
// the series does not exist).
func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather metrics: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			for i := 0; i+1 < len(labels); i += 2 {
				if have[labels[i]] != labels[i+1] {
					continue next
				}
			}
			switch {
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue()
			}
		}
	}
	return 0
}

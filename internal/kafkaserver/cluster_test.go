package kafkaserver_test

import (
	"context"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderpipe/orderpipe/internal/kafkaserver"
	"github.com/orderpipe/orderpipe/internal/testenv"
)

func TestMain(m *testing.M) { testenv.RealKafkaMain(m) }

// TestClusterReplicatesAndSurvivesARestart starts a cluster (one node, or
// $ORDERPIPE_KAFKA_TEST_NODES: make test keeps to one JVM per package on this two-core machine),
// checks that it runs compose's settings scaled to its size (min.insync.replicas), writes with
// acks=all to a topic replicated on every node, stops every node with SIGTERM (none may need
// killing), and starts the cluster again on the same data directory: the record is still there.
func TestClusterReplicatesAndSurvivesARestart(t *testing.T) {
	testenv.RealKafkaTier(t)
	n := 1
	if s := os.Getenv("ORDERPIPE_KAFKA_TEST_NODES"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil || n < 1 {
			t.Fatalf("ORDERPIPE_KAFKA_TEST_NODES=%q: want a positive number", s)
		}
	}
	dir := t.TempDir()
	var ports []int
	for range n {
		ports = append(ports, testenv.FreePort(t))
	}
	cfg := kafkaserver.Config{Nodes: n, DataDir: dir, BrokerPorts: ports, HeapMax: "256m", Log: os.Stderr,
		StartTimeout: 4 * time.Minute}

	start := time.Now()
	c, err := kafkaserver.Start(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d node(s) serving metadata after %s", n, time.Since(start).Round(time.Millisecond))
	t.Cleanup(func() { _ = c.Stop() })

	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...), kgo.RequiredAcks(kgo.AllISRAcks()))
	if err != nil {
		t.Fatal(err)
	}
	adm := kadm.NewClient(cl)
	wantISR := strconv.Itoa(kafkaserver.MinInsyncReplicas(n))
	cfgs, err := adm.DescribeBrokerConfigs(t.Context(), int32(n))
	if err != nil {
		t.Fatal(err)
	}
	rc, err := cfgs.On(strconv.Itoa(n), nil)
	if err != nil {
		t.Fatal(err)
	}
	var seen bool
	for _, kv := range rc.Configs {
		if kv.Key == "min.insync.replicas" {
			seen = true
			if kv.MaybeValue() != wantISR {
				t.Errorf("min.insync.replicas on broker %d: got %s, want %s", n, kv.MaybeValue(), wantISR)
			}
		}
	}
	if !seen {
		t.Errorf("broker %d does not report min.insync.replicas", n)
	}
	if _, err := adm.CreateTopic(t.Context(), 1, int16(n), nil, "orders.placed"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "orders.placed", Key: []byte("o-1"), Value: []byte("placed")}).FirstErr(); err != nil {
		t.Fatalf("produce with acks=all: %v", err)
	}
	md, err := adm.Metadata(t.Context(), "orders.placed")
	if err != nil {
		t.Fatal(err)
	}
	if p := md.Topics["orders.placed"].Partitions[0]; len(p.ISR) != n {
		t.Errorf("in-sync replicas: got %v, want all %d nodes", p.ISR, n)
	}
	cl.Close()

	stop := time.Now()
	if err := c.Stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	t.Logf("%d node(s) stopped after %s", n, time.Since(stop).Round(time.Millisecond))

	c2, err := kafkaserver.Start(t.Context(), cfg)
	if err != nil {
		t.Fatalf("restart on the same data directory: %v", err)
	}
	t.Cleanup(func() { _ = c2.Stop() })
	ctx, cancel = context.WithTimeout(t.Context(), 30*time.Second) // the restart took its own time
	defer cancel()
	cl2, err := kgo.NewClient(kgo.SeedBrokers(c2.Addrs()...), kgo.ConsumeTopics("orders.placed"),
		kgo.ConsumeStartOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl2.Close()
	fs := cl2.PollFetches(ctx)
	if err := ctx.Err(); err != nil {
		t.Fatalf("read after restart: %v", err)
	}
	recs := fs.Records()
	if len(recs) != 1 || string(recs[0].Key) != "o-1" {
		t.Fatalf("after restart: got %d records (%v), want the one written before", len(recs), recs)
	}
}

package testenv

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderpipe/orderpipe/internal/kafka"
	"github.com/orderpipe/orderpipe/internal/topology"
)

// Kafka starts an in-process Kafka-protocol broker (kfake) for one test, provisions orderpipe's
// topics through kadm exactly as `orderctl topics --create` does (3 partitions each), and closes
// it when the test ends. Its control hooks inject broker faults.
func Kafka(t testing.TB, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1)}, opts...)...)
	if err != nil {
		t.Fatalf("start kfake: %v", err)
	}
	t.Cleanup(c.Close)
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatalf("kafka admin client: %v", err)
	}
	defer cl.Close()
	specs := topology.Topics(topology.Settings{Partitions: 3, Replication: 1})
	if _, err := kafka.EnsureTopics(t.Context(), kadm.NewClient(cl), specs, true); err != nil {
		t.Fatalf("provision topics: %v", err)
	}
	return c
}

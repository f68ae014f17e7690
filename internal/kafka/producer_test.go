package kafka_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderpipe/orderpipe/internal/kafka"
	"github.com/orderpipe/orderpipe/internal/testenv"
)

func TestMain(m *testing.M) { testenv.RealKafkaMain(m) }

// The producer every orderpipe process uses (the api's OrderPlaced among them) is idempotent
// with acks=all: the broker gives it a producer id, each partition's records land in order
// without gaps, and a record for a topic nobody provisioned fails within the produce timeout
// instead of creating the topic. The api's 202 and 503 rest on exactly this.
func TestProducerIsIdempotentAndNeverCreatesTopics(t *testing.T) {
	t.Parallel()
	testenv.EachBroker(t, func(t *testing.T, k *testenv.Broker) {
		topic, missing := k.Name("orders.placed"), k.Name("not.provisioned")
		k.CreateTopics(t, 3, topic)
		cl, err := kafka.NewClient(kafka.ClientConfig{Brokers: k.Addrs, ClientID: "producer-test", ProduceTimeout: 3 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()

		var recs []*kgo.Record
		for i := range 30 {
			recs = append(recs, &kgo.Record{Topic: topic, Key: []byte(fmt.Sprintf("order-%d", i%7)), Value: []byte(fmt.Sprint(i))})
		}
		if err := cl.ProduceSync(t.Context(), recs...).FirstErr(); err != nil {
			t.Fatalf("produce: %v", err)
		}
		next := map[int32]int64{}
		byKey := map[string]int32{}
		for _, r := range recs {
			if r.ProducerID < 0 {
				t.Fatalf("record %s has producer id %d: the producer is not idempotent", r.Value, r.ProducerID)
			}
			if r.Offset != next[r.Partition] {
				t.Fatalf("record %s at %d/%d, want offset %d (in order, no gaps)", r.Value, r.Partition, r.Offset, next[r.Partition])
			}
			next[r.Partition]++
			if p, ok := byKey[string(r.Key)]; ok && p != r.Partition {
				t.Fatalf("key %s on partitions %d and %d, want one partition per key", r.Key, p, r.Partition)
			}
			byKey[string(r.Key)] = r.Partition
		}

		start := time.Now()
		err = cl.ProduceSync(t.Context(), &kgo.Record{Topic: missing, Key: []byte("o"), Value: []byte("x")}).FirstErr()
		took := time.Since(start)
		if err == nil {
			t.Fatalf("produce to %s succeeded, want an error (topics are provisioned, never auto-created)", missing)
		}
		if took > 10*time.Second {
			t.Fatalf("produce to a missing topic failed after %s, want within the 3 s produce timeout (plus slack)", took)
		}
		t.Logf("produce to a missing topic: %v after %s", err, took.Round(time.Millisecond))
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		listed, err := k.Admin().ListTopics(ctx, missing)
		if err != nil {
			t.Fatal(err)
		}
		if listed.Has(missing) {
			t.Fatalf("producing created topic %s", missing)
		}
	})
}

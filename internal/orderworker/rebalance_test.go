package orderworker_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/orderpipe/orderpipe/internal/event"
	"github.com/orderpipe/orderpipe/internal/paysim"
)

// Two workers share the group while partitions move between them: the broker moves partition
// leaders and the group coordinator, and a third member joins and leaves, during a 5,000-order
// run. Every accepted order still ends once, with no double capture and no oversell.
func TestRebalancesDuringARunLoseAndDoubleNothing(t *testing.T) {
	t.Parallel()
	s := setup(t, paysim.Config{Latency: 3 * time.Millisecond, LatencyJitter: 3 * time.Millisecond, DeclineRate: 0.05, Seed: 13}, stockAll(1200), kfake.NumBrokers(3))
	env := map[string]string{"ORDER_WORKER_BATCH_SIZE": "100", "KAFKA_SESSION_TIMEOUT": "6s"}
	s.Worker(t, env)
	s.Worker(t, env)
	stop := make(chan struct{})
	chaos := make(chan error, 1)
	go func() {
		var third interface{ Stop() error }
		for i := 0; ; i++ {
			select {
			case <-stop:
				if third != nil {
					_ = third.Stop()
				}
				chaos <- nil
				return
			case <-time.After(700 * time.Millisecond):
			}
			switch i % 4 {
			case 0:
				s.Kafka.ShufflePartitionLeaders()
			case 1:
				for p := int32(0); p < 3; p++ {
					_ = s.Kafka.MoveTopicPartition(event.TopicOrdersPlaced, p, (s.Kafka.LeaderFor(event.TopicOrdersPlaced, p)+1)%3)
				}
				s.Kafka.RehashCoordinators()
			case 2:
				if third == nil {
					third = s.Worker(t, env)
				}
			case 3:
				if third != nil {
					_ = third.Stop()
					third = nil
				}
			}
		}
	}()
	accepted := s.PlaceMany(t, 5000, 48, func(i int) []byte {
		return orderJSON("tok_card_"+fmt.Sprint(i), []string{"standard", "express"}[i%3/2], skus[i%len(skus)], 1)
	})
	close(stop)
	if err := <-chaos; err != nil {
		t.Fatal(err)
	}
	s.waitDecided(t, accepted, 120*time.Second)
	s.waitSettled(t, 60*time.Second)
	s.checkInvariants(t, accepted)
	t.Logf("%d accepted, outcomes %v", len(accepted), s.outcomes(t))
}

package orderworker_test

import (
	"errors"
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
	// The chaos loop runs until the orders are placed and at least one full round of its four
	// steps is done, and reports what it did: a step that fails (a partition move the broker
	// refused, a member that did not stop cleanly) fails the test, and so does a run in which a
	// step never happened.
	stop := make(chan struct{})
	type evidence struct{ shuffles, moved, joined, left int }
	chaos := make(chan error, 1)
	var did evidence
	go func() {
		var third interface{ Stop() error }
		var errs []error
		stopped := false
		for i := 0; ; i++ {
			if !stopped {
				select {
				case <-stop:
					stopped = true
				case <-time.After(700 * time.Millisecond):
				}
			}
			if stopped && i >= 4 && i%4 == 0 {
				if third != nil {
					if err := third.Stop(); err != nil {
						errs = append(errs, fmt.Errorf("stop the third member: %w", err))
					}
					did.left++
				}
				chaos <- errors.Join(errs...)
				return
			}
			switch i % 4 {
			case 0:
				s.Kafka.ShufflePartitionLeaders()
				did.shuffles++
			case 1:
				for p := int32(0); p < 3; p++ {
					from := s.Kafka.LeaderFor(event.TopicOrdersPlaced, p)
					to := (from + 1) % 3
					if err := s.Kafka.MoveTopicPartition(event.TopicOrdersPlaced, p, to); err != nil {
						errs = append(errs, fmt.Errorf("move %s/%d from node %d to %d: %w", event.TopicOrdersPlaced, p, from, to, err))
						continue
					}
					if got := s.Kafka.LeaderFor(event.TopicOrdersPlaced, p); got != to {
						errs = append(errs, fmt.Errorf("move %s/%d to node %d: the leader is %d", event.TopicOrdersPlaced, p, to, got))
						continue
					}
					did.moved++
				}
				s.Kafka.RehashCoordinators()
			case 2:
				if third == nil {
					third = s.Worker(t, env)
					did.joined++
				}
			case 3:
				if third != nil {
					if err := third.Stop(); err != nil {
						errs = append(errs, fmt.Errorf("stop the third member: %w", err))
					}
					third = nil
					did.left++
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
	t.Logf("chaos: %d leader shuffles, %d partition moves, a third member joined %d and left %d times", did.shuffles, did.moved, did.joined, did.left)
	if did.shuffles == 0 || did.moved == 0 || did.joined == 0 || did.left != did.joined {
		t.Fatalf("chaos evidence %+v: want every step to have happened (and every join to be followed by a leave)", did)
	}
	s.waitDecided(t, accepted, 120*time.Second)
	s.waitSettled(t, 60*time.Second)
	s.checkInvariants(t, accepted)
	t.Logf("%d accepted, outcomes %v", len(accepted), s.outcomes(t))
}

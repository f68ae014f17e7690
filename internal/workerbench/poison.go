package workerbench

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderpipe/orderpipe/internal/event"
	"github.com/orderpipe/orderpipe/internal/orderworker"
	"github.com/orderpipe/orderpipe/internal/paysim"
	"github.com/orderpipe/orderpipe/internal/redisstore"
	"github.com/orderpipe/orderpipe/internal/topology"
)

// poisonRounds is how many times each of the two poison-comparison arms runs.
const poisonRounds = 9

// poisonArms runs the clean and the poisoned batch alternately, each round on its own broker and
// schema: PoisonBatch orders pre-filled, the worker started, and the time until every order but
// the poison one is decided.
func poisonArms(ctx context.Context, cfg Config, prefix string, store *redisstore.Store, payURL string, sim *paysim.Server, skus []string, logf func(string, ...any)) (PoisonArms, error) {
	out := PoisonArms{Rounds: poisonRounds, Undone: true}
	for round := range poisonRounds {
		for _, poisoned := range []bool{false, true} {
			d, ok, err := poisonRound(ctx, cfg, prefix, store, payURL, skus, poisoned)
			if err != nil {
				return out, fmt.Errorf("poison comparison round %d: %w", round+1, err)
			}
			name := "clean batch"
			if poisoned {
				name = "batch with one poison record"
				out.Poison = append(out.Poison, d)
				out.Undone = out.Undone && ok
			} else {
				out.Clean = append(out.Clean, d)
			}
			logf("workerbench: %s of %d, round %d: %s", name, PoisonBatch, round+1, d.Round(time.Millisecond))
		}
	}
	if st := sim.Stats(); len(st.DoubleCaptured) > 0 {
		return out, fmt.Errorf("double captures: %v", st.DoubleCaptured)
	}
	return out, nil
}

// poisonRound measures one batch. With poisoned, the order at PoisonAt is one Postgres refuses for
// good: its customer is refused by a CHECK constraint planted on orders (SQLSTATE 23514; a NUL
// no longer gets this far, the input gate refuses it at decode, before any charge); ok then reports that it was refunded and
// recorded, dead-lettered once, and that nothing went to a retry topic.
func poisonRound(ctx context.Context, cfg Config, prefix string, store *redisstore.Store, payURL string, skus []string, poisoned bool) (time.Duration, bool, error) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		return 0, false, fmt.Errorf("start broker: %w", err)
	}
	defer cluster.Close()
	brokers := cluster.ListenAddrs()
	if err := provision(ctx, brokers); err != nil {
		return 0, false, err
	}
	var mutate func(i int, p *event.OrderPlaced)
	if poisoned {
		mutate = func(i int, p *event.OrderPlaced) {
			if i == PoisonAt {
				p.CustomerID = unstorableCustomer
			}
		}
	}
	if err := prefillWith(ctx, brokers, store, skus, PoisonBatch, mutate); err != nil {
		return 0, false, err
	}
	pool, dbURL, drop, err := schema(ctx, cfg.DatabaseURL, skus)
	if err != nil {
		return 0, false, err
	}
	defer drop()
	if poisoned {
		if _, err := pool.Exec(ctx, `ALTER TABLE orders ADD CONSTRAINT planted_unstorable CHECK (customer_id <> '`+unstorableCustomer+`')`); err != nil {
			return 0, false, fmt.Errorf("plant the refusal: %w", err)
		}
	}
	want := int64(PoisonBatch)
	if poisoned {
		want--
	}
	env := workerEnv(cfg, prefix, strings.Join(brokers, ","), payURL, dbURL, topology.GroupOrderWorker, PoisonBatch)
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- orderworker.Run(wctx, nil, func(k string) string { return env[k] }, io.Discard) }()
	var decided int64
	for {
		if err = pool.QueryRow(ctx, `SELECT count(*) FROM orders`).Scan(&decided); err != nil || decided >= want || time.Since(start) > 2*time.Minute {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	elapsed := time.Since(start)
	if err == nil && decided < want {
		err = fmt.Errorf("%d of %d orders decided in 2 minutes", decided, want)
	}
	if err != nil {
		cancel()
		<-done
		return 0, false, err
	}
	ok := true
	if poisoned {
		// Wait for the dead letter (its offset is committed after the batch's decisions).
		deadline := time.Now().Add(30 * time.Second)
		var dlq int
		for {
			dlq = countRecords(ctx, brokers, event.DeadLetterTopic(topology.GroupOrderWorker))
			if dlq > 0 || time.Now().After(deadline) {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		var undos int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM payment_undos WHERE refund_id <> ''`).Scan(&undos); err != nil {
			ok = false
		}
		retried := countRecords(ctx, brokers, event.RetryTopic(topology.GroupOrderWorker, 1))
		ok = ok && dlq == 1 && undos == 1 && retried == 0
	}
	cancel()
	if err := <-done; err != nil {
		return 0, false, err
	}
	return elapsed, ok, nil
}

// countRecords counts the records of topic (all partitions).
func countRecords(ctx context.Context, brokers []string, topic string) int {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return -1
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		return -1
	}
	var n int64
	ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
	return int(n)
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// unstorableCustomer is the customer of the poisoned order, refused by the planted constraint.
const unstorableCustomer = "c-unstorable"

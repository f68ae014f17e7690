package orderworker

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderpipe/orderpipe/internal/admin"
	"github.com/orderpipe/orderpipe/internal/consumer"
	"github.com/orderpipe/orderpipe/internal/event"
	"github.com/orderpipe/orderpipe/internal/kafka"
	"github.com/orderpipe/orderpipe/internal/payment"
	"github.com/orderpipe/orderpipe/internal/postgres"
	"github.com/orderpipe/orderpipe/internal/redisstore"
)

// Wiring is order-worker's processing built from its Config: the handler, the settings of the
// live group's consumer (dead-letter hook included) and the health checks, over clients it owns
// until Close. Run builds one for the live group. orderctl replay range builds one from the same
// environment and runs its handler under a replay group id (consumer.Config.GroupID), so a
// replay executes exactly the live group's code, and the handler claims processed events under
// cfg.Group, the live group's logical name: an event the live group processed is skipped.
type Wiring struct {
	Handler  *Processor
	Consumer consumer.Config
	Checks   []admin.Check
	closers  []func()
}

// Wire opens order-worker's stores and clients and builds its processor for the group cfg.Group.
func Wire(ctx context.Context, cfg Config, log *slog.Logger, reg prometheus.Registerer) (*Wiring, error) {
	w := &Wiring{}
	pool, err := postgres.Open(ctx, cfg.DatabaseURL, cfg.DatabaseMaxConns)
	if err != nil {
		return nil, err
	}
	w.closers = append(w.closers, pool.Close)
	rdb := redisstore.NewClient(cfg.Redis)
	w.closers = append(w.closers, func() { _ = rdb.Close() })
	holds := redisstore.New(rdb, cfg.RedisKeyPrefix)

	producer, err := kafka.NewClient(kafka.ClientConfig{
		Brokers: cfg.KafkaBrokers, ClientID: cfg.KafkaClientID + "-order-worker",
		ProduceTimeout: cfg.KafkaProduceTimeout, Registerer: reg,
	})
	if err != nil {
		w.Close()
		return nil, err
	}
	w.closers = append(w.closers, producer.Close)
	validator, err := event.NewValidator()
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("load event schemas: %w", err)
	}
	gateway := payment.NewClient(cfg.Settings.ClientConfig(), reg)
	store := postgres.NewProcessingStore(pool)
	w.Handler = NewProcessor(cfg.Group, cfg.EventSource, cfg.Concurrency, gateway, holds, store, producer, validator, log, reg)
	w.Consumer = consumer.Config{
		Group:           cfg.Group,
		Topics:          []string{event.TopicOrdersPlacedPriority, event.TopicOrdersPlaced},
		Brokers:         cfg.KafkaBrokers,
		ClientID:        cfg.KafkaClientID + "-order-worker",
		StartAt:         cfg.StartAt,
		MaxPollRecords:  cfg.BatchSize,
		RetryInPlaceFor: cfg.RetryInPlace,
		RetryTiers:      cfg.RetryTiers,
		PriorityTopic:   event.TopicOrdersPlacedPriority,
		MaxStarve:       cfg.MaxStarve,
		Registerer:      reg,
		Log:             log,
		KafkaOpts:       []kgo.Opt{kgo.SessionTimeout(cfg.KafkaSessionTimeout), kgo.HeartbeatInterval(cfg.KafkaSessionTimeout / 5)},
		OnDeadLetter: func(ctx context.Context, rec *kgo.Record, class string, err error) error {
			return recordDeadLetter(ctx, store, validator, rec, class, err)
		},
		DeadLetters: postgres.NewDeadLetterLedger(pool),
	}
	w.Checks = []admin.Check{
		{Name: "postgres", Fn: pool.Ping},
		{Name: "redis", Fn: holds.Ping},
		{Name: "kafka", Fn: func(ctx context.Context) error { return kafka.Ping(ctx, producer) }},
	}
	return w, nil
}

// Close closes the clients Wire opened, in reverse order.
func (w *Wiring) Close() {
	for i := len(w.closers) - 1; i >= 0; i-- {
		w.closers[i]()
	}
	w.closers = nil
}

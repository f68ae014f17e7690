package inventorysync

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderpipe/orderpipe/internal/admin"
	"github.com/orderpipe/orderpipe/internal/consumer"
	"github.com/orderpipe/orderpipe/internal/event"
	"github.com/orderpipe/orderpipe/internal/kafka"
	"github.com/orderpipe/orderpipe/internal/postgres"
	"github.com/orderpipe/orderpipe/internal/redisstore"
)

// Wiring is inventory-sync's event processing built from its Config: the handler, the settings
// of the live group's consumer and the health checks, over clients it owns until Close. Run
// builds one (and adds the reaper, reconciliation and maintenance); orderctl replay range builds
// one from the same environment and runs its handler under a replay group id
// (consumer.Config.GroupID), so a replay executes exactly the live group's code. Stock events
// deduplicate by their per-warehouse sequence number (I7), not by group, so a replay of events
// the live group applied changes nothing.
type Wiring struct {
	Handler  *Processor
	Consumer consumer.Config
	Checks   []admin.Check

	pool      *pgxpool.Pool
	counters  *redisstore.Store
	producer  *kgo.Client
	validator *event.Validator
	store     *postgres.InventoryStore
	closers   []func()
}

// Wire opens inventory-sync's stores and clients and builds its processor for the group cfg.Group.
func Wire(ctx context.Context, cfg Config, log *slog.Logger, reg prometheus.Registerer) (*Wiring, error) {
	w := &Wiring{}
	pool, err := postgres.Open(ctx, cfg.DatabaseURL, cfg.DatabaseMaxConns)
	if err != nil {
		return nil, err
	}
	w.pool = pool
	w.closers = append(w.closers, pool.Close)
	rdb := redisstore.NewClient(cfg.Redis)
	w.closers = append(w.closers, func() { _ = rdb.Close() })
	w.counters = redisstore.New(rdb, cfg.RedisKeyPrefix)

	w.producer, err = kafka.NewClient(kafka.ClientConfig{
		Brokers: cfg.KafkaBrokers, ClientID: cfg.KafkaClientID + "-inventory-sync",
		ProduceTimeout: cfg.KafkaProduceTimeout, Registerer: reg,
	})
	if err != nil {
		w.Close()
		return nil, err
	}
	w.closers = append(w.closers, w.producer.Close)
	w.validator, err = event.NewValidator()
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("load event schemas: %w", err)
	}
	w.store = postgres.NewInventoryStore(pool)
	w.Handler = NewProcessor(cfg.EventSource, w.store, w.counters, w.producer, w.validator, log, reg)

	// InPlaceOnly: a failing event is retried where it is (its partition paused with backoff),
	// never moved to a retry topic, so a warehouse's events of a SKU are applied in their order.
	// StartAt earliest: a new group applies every retained event; the seq guard (I7) makes the
	// ones already reflected in Postgres change nothing, while starting at the end would lose
	// whatever was published before the group first joined.
	w.Consumer = consumer.Config{
		Group:           cfg.Group,
		Topics:          []string{event.TopicInventoryStock},
		Brokers:         cfg.KafkaBrokers,
		ClientID:        cfg.KafkaClientID + "-inventory-sync",
		StartAt:         cfg.StartAt,
		MaxPollRecords:  cfg.BatchSize,
		RetryInPlaceFor: cfg.RetryInPlace,
		InPlaceOnly:     true,
		MaxBackoff:      cfg.MaxBackoff,
		DrainTimeout:    cfg.ShutdownTimeout,
		Registerer:      reg,
		Log:             log,
		KafkaOpts:       []kgo.Opt{kgo.SessionTimeout(cfg.KafkaSessionTimeout), kgo.HeartbeatInterval(cfg.KafkaSessionTimeout / 5)},
		DeadLetters:     postgres.NewDeadLetterLedger(pool),
	}
	counters, producer := w.counters, w.producer
	w.Checks = []admin.Check{
		{Name: "postgres", Fn: pool.Ping},
		{Name: "redis", Fn: counters.Ping},
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

package orderworker

import (
	"context"
	"fmt"
	"io"
	"strconv"

	"github.com/oklog/run"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderpipe/orderpipe/internal/admin"
	"github.com/orderpipe/orderpipe/internal/config"
	"github.com/orderpipe/orderpipe/internal/consumer"
	"github.com/orderpipe/orderpipe/internal/event"
	"github.com/orderpipe/orderpipe/internal/kafka"
	"github.com/orderpipe/orderpipe/internal/payment"
	"github.com/orderpipe/orderpipe/internal/postgres"
	"github.com/orderpipe/orderpipe/internal/redisstore"
)

// Run runs order-worker until ctx ends, then finishes the batch in hand, commits and leaves the
// group. Configuration comes from environment variables (-h lists them).
func Run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	var cfg Config
	if config.WantsHelp(args) {
		return config.Usage(stdout, "order-worker", "charges, decides and confirms accepted orders (consumer group order-worker)", &cfg)
	}
	if len(args) > 0 {
		return fmt.Errorf("unexpected arguments %q: order-worker is configured by environment variables (see -h)", args)
	}
	if err := config.Load(&cfg, getenv); err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	log := cfg.Logger(stdout, "order-worker")
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	pool, err := postgres.Open(ctx, cfg.DatabaseURL, cfg.DatabaseMaxConns)
	if err != nil {
		return err
	}
	defer pool.Close()
	rdb := redisstore.NewClient(cfg.Redis)
	defer rdb.Close()
	holds := redisstore.New(rdb, cfg.RedisKeyPrefix)

	producer, err := kafka.NewClient(kafka.ClientConfig{
		Brokers: cfg.KafkaBrokers, ClientID: cfg.KafkaClientID + "-order-worker",
		ProduceTimeout: cfg.KafkaProduceTimeout, Registerer: reg,
	})
	if err != nil {
		return err
	}
	defer producer.Close()
	validator, err := event.NewValidator()
	if err != nil {
		return fmt.Errorf("load event schemas: %w", err)
	}
	gateway := payment.NewClient(cfg.Settings.ClientConfig(), reg)
	store := postgres.NewProcessingStore(pool)
	proc := NewProcessor(cfg.Group, cfg.EventSource, cfg.Concurrency, gateway, holds, store, producer, validator, log, reg)

	c, err := consumer.New(consumer.Config{
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
	}, proc)
	if err != nil {
		return err
	}

	adm, err := admin.Listen(cfg.AdminAddr, []admin.Check{
		{Name: "postgres", Fn: pool.Ping},
		{Name: "redis", Fn: holds.Ping},
		{Name: "kafka", Fn: func(ctx context.Context) error { return kafka.Ping(ctx, producer) }},
	}, reg, log)
	if err != nil {
		return err
	}
	log.Info("listening", "admin_addr", adm.Addr(), "group", cfg.Group)

	var g run.Group
	cctx, stopConsumer := context.WithCancel(context.Background())
	g.Add(func() error { return c.Run(cctx) }, func(error) { adm.Drain(); stopConsumer() })
	g.Add(adm.Actor())
	g.Add(admin.UntilDone(ctx))
	err = g.Run()
	log.Info("stopped")
	return err
}

// recordDeadLetter keeps the order behind a dead-lettered record visible: GET /v1/orders/{id}
// and the dead-lettered-orders gauge show it until ops re-drive it. A record that is not even an
// OrderPlaced has no order to attach the fact to; the dead-letter topic and its metric carry it.
func recordDeadLetter(ctx context.Context, store *postgres.ProcessingStore, v *event.Validator, rec *kgo.Record, class string, cause error) error {
	env, err := event.FromRecord(rec)
	if err != nil {
		return nil
	}
	placed, err := event.Decode[event.OrderPlaced](v, env)
	if err != nil {
		return nil
	}
	topic, part, off := rec.Topic, rec.Partition, rec.Offset
	for _, h := range rec.Headers {
		switch h.Key {
		case consumer.HeaderSourceTopic:
			topic = string(h.Value)
		case consumer.HeaderSourcePart:
			if n, err := strconv.ParseInt(string(h.Value), 10, 32); err == nil {
				part = int32(n)
			}
		case consumer.HeaderSourceOffset:
			if n, err := strconv.ParseInt(string(h.Value), 10, 64); err == nil {
				off = n
			}
		}
	}
	return store.RecordDeadLetter(ctx, postgres.DeadLetter{
		OrderID: placed.OrderID, EventID: env.ID, SourceTopic: topic, SourcePartition: part,
		SourceOffset: off, ErrorClass: class, Error: cause.Error(),
	})
}

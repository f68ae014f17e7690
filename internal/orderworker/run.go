package orderworker

import (
	"context"
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
	"github.com/orderpipe/orderpipe/internal/postgres"
)

// Run runs order-worker until ctx ends, then finishes the batch in hand, commits and leaves the
// group. Configuration comes from environment variables (-h lists them).
func Run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	var cfg Config
	if help, err := config.Setup(args, getenv, stdout, "order-worker", "order-worker", "charges, decides and confirms accepted orders (consumer group order-worker)", &cfg); help || err != nil {
		return err
	}
	log := cfg.Logger(stdout, "order-worker")
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	w, err := Wire(ctx, cfg, log, reg)
	if err != nil {
		return err
	}
	defer w.Close()
	c, err := consumer.New(w.Consumer, w.Handler)
	if err != nil {
		return err
	}

	adm, err := admin.Listen(cfg.AdminAddr, w.Checks, reg, log)
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

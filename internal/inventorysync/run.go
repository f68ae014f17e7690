package inventorysync

import (
	"context"
	"github.com/orderpipe/orderpipe/internal/reaper"
	"github.com/orderpipe/orderpipe/internal/reconcile"
	"io"
	"log/slog"
	"time"

	"github.com/oklog/run"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/orderpipe/orderpipe/internal/admin"
	"github.com/orderpipe/orderpipe/internal/config"
	"github.com/orderpipe/orderpipe/internal/consumer"
	"github.com/orderpipe/orderpipe/internal/postgres"
)

// How often the shortfall gauges are refreshed from Postgres and old delta records pruned.
const (
	shortfallInterval = 15 * time.Second
	pruneInterval     = time.Hour
)

// Run runs inventory-sync until ctx ends, then finishes the batch in hand, commits and leaves the
// group. Configuration comes from environment variables (-h lists them).
func Run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	var cfg Config
	if help, err := config.Setup(args, getenv, stdout, "inventory-sync", "inventory-sync", "applies warehouse stock events to Postgres and Redis (consumer group inventory-sync)", &cfg); help || err != nil {
		return err
	}
	log := cfg.Logger(stdout, "inventory-sync")
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	w, err := Wire(ctx, cfg, log, reg)
	if err != nil {
		return err
	}
	defer w.Close()
	pool, counters, producer, validator, store, proc := w.pool, w.counters, w.producer, w.validator, w.store, w.Handler
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
	// The hold reaper and the periodic reconciliation run here too: both are safe with several
	// inventory-sync instances (atomic one-slot scripts; repairs under the stock row lock).
	reap := reaper.New(cfg.Reaper, reaper.Deps{
		Holds: counters, Stock: postgres.NewStockStore(pool), Producer: producer, Validator: validator,
		Source: cfg.EventSource, Log: log, Registerer: reg,
	})
	rec := reconcile.New(cfg.Reconcile, reconcile.Deps{
		Pool: pool, Store: counters, Brokers: cfg.KafkaBrokers, ClientID: cfg.KafkaClientID + "-reconcile",
		Validator: validator, Log: log, Registerer: reg,
	})
	bgctx, stopBackground := context.WithCancel(context.Background())
	if cfg.Reaper.ReaperEnabled {
		g.Add(func() error { return reap.Run(bgctx, cfg.Reaper.ReaperInterval) }, func(error) { stopBackground() })
	}
	g.Add(func() error { return rec.Run(bgctx, cfg.Reconcile.ReconcileInterval) }, func(error) { stopBackground() })
	mctx, stopMaintenance := context.WithCancel(context.Background())
	g.Add(func() error {
		maintain(mctx, store, proc, cfg.DeltaRetention, log)
		return nil
	}, func(error) { stopMaintenance() })
	g.Add(admin.UntilDone(ctx))
	err = g.Run()
	log.Info("stopped")
	return err
}

// maintain refreshes the shortfall gauges and prunes delta records older than retention until
// ctx ends.
func maintain(ctx context.Context, store *postgres.InventoryStore, proc *Processor, retention time.Duration, log *slog.Logger) {
	refresh := func() {
		qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		skus, units, err := store.Shortfall(qctx)
		if err != nil {
			if ctx.Err() == nil {
				log.Warn("shortfall gauges not refreshed", "err", err)
			}
			return
		}
		proc.SetShortfall(skus, units)
	}
	prune := func() {
		qctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		n, err := store.PruneStockDeltas(qctx, time.Now().Add(-retention))
		if err != nil {
			if ctx.Err() == nil {
				log.Warn("stock delta records not pruned", "err", err)
			}
			return
		}
		if n > 0 {
			log.Info("pruned stock delta records", "rows", n, "older_than", retention.String())
		}
	}
	refresh()
	prune()
	gauges, pruning := time.NewTicker(shortfallInterval), time.NewTicker(pruneInterval)
	defer gauges.Stop()
	defer pruning.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-gauges.C:
			refresh()
		case <-pruning.C:
			prune()
		}
	}
}

// Package reaper ends the holds nobody paid for in time: every REAPER_INTERVAL it returns to
// available-to-promise the units of every hold past its deadline, exactly once (invariant I6),
// announces the SKUs on the stock-changed channel so sold-out caches look again, and publishes a
// com.orderpipe.hold.expired event per expired hold to orders.events. The order itself is decided
// later by order-worker through the Postgres guard (confirmed late while stock remains, else
// cancelled with reason expired).
//
// It is cluster-safe and safe with several instances: each SKU is one Lua script in its own
// {SKU} hash slot that moves the units and marks the hold ended atomically, so a second reaper
// finds nothing to do. The expiry events go through a per-SKU outbox written by the same script,
// so a reaper that crashes after expiring a hold loses no event: the next run publishes it. An
// event may be published twice (two reapers, or a crash before the acknowledgement); its id is
// deterministic per order and SKU, so consumers deduplicate it.
package reaper

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderpipe/orderpipe/internal/config"
	"github.com/orderpipe/orderpipe/internal/event"
	"github.com/orderpipe/orderpipe/internal/postgres"
	"github.com/orderpipe/orderpipe/internal/redisstore"
)

// Settings configure the reaper; a process that runs it embeds them in its Config.
type Settings struct {
	ReaperEnabled    bool          `env:"REAPER_ENABLED" envDefault:"true" help:"run the hold reaper in this process (several instances may run at once)"`
	ReaperInterval   time.Duration `env:"REAPER_INTERVAL" envDefault:"1s" help:"how often holds past their deadline are returned to availability: a hold ends at most this long after its deadline"`
	ReaperBatchSKUs  int           `env:"REAPER_BATCH_SKUS" envDefault:"200" help:"SKUs per Redis pipeline of the reaper"`
	ReaperMaxPerSKU  int           `env:"REAPER_MAX_PER_SKU" envDefault:"500" help:"most holds of one SKU ended by one script call; a SKU with more due holds gets more calls in the same run"`
	ReaperSKURefresh time.Duration `env:"REAPER_SKU_REFRESH" envDefault:"30s" help:"how often the reaper reloads the list of SKUs from Postgres"`
}

// Validate checks the reaper settings.
func (s *Settings) Validate() error {
	switch {
	case s.ReaperInterval < 10*time.Millisecond || s.ReaperInterval > time.Hour:
		return config.Errorf("REAPER_INTERVAL", "want 10ms..1h, got %s", s.ReaperInterval)
	case s.ReaperBatchSKUs < 1 || s.ReaperBatchSKUs > 10000:
		return config.Errorf("REAPER_BATCH_SKUS", "want 1..10000, got %d", s.ReaperBatchSKUs)
	case s.ReaperMaxPerSKU < 1 || s.ReaperMaxPerSKU > 100000:
		return config.Errorf("REAPER_MAX_PER_SKU", "want 1..100000, got %d", s.ReaperMaxPerSKU)
	case s.ReaperSKURefresh < 100*time.Millisecond:
		return config.Errorf("REAPER_SKU_REFRESH", "want at least 100ms, got %s", s.ReaperSKURefresh)
	}
	return nil
}

// Holds is the part of the Redis store the reaper uses.
type Holds interface {
	ExpireDueMany(ctx context.Context, skus []string, now time.Time, limit int) ([]redisstore.SKUExpiry, error)
	PendingExpiries(ctx context.Context, skus []string) ([]redisstore.Expiry, error)
	AckExpiries(ctx context.Context, done []redisstore.Expiry) error
	Availabilities(ctx context.Context, skus []string) (map[string]redisstore.Stock, error)
	PublishStockChanged(ctx context.Context, skus ...string) error
}

// Stock lists the SKUs that have stock (postgres.StockStore).
type Stock interface {
	All(ctx context.Context) ([]postgres.StockLevel, error)
}

// Producer publishes events (a franz-go client).
type Producer interface {
	ProduceSync(ctx context.Context, rs ...*kgo.Record) kgo.ProduceResults
}

// Validator checks events against their schema.
type Validator interface {
	Validate(eventType string, data []byte) error
}

// Deps are what the reaper works with.
type Deps struct {
	Holds      Holds
	Stock      Stock
	Producer   Producer
	Validator  Validator
	Source     string // CloudEvents source of the hold.expired events
	Log        *slog.Logger
	Registerer prometheus.Registerer
	Now        func() time.Time // nil: time.Now
}

// Reaper ends expired holds. Its methods are safe for concurrent use.
type Reaper struct {
	s Settings
	d Deps

	mu       sync.Mutex
	skus     []string
	loadedAt time.Time

	expired   prometheus.Counter
	published prometheus.Counter
	runs      *prometheus.CounterVec
	active    prometheus.Gauge
	duration  prometheus.Histogram
}

// New builds a reaper and registers its metrics on d.Registerer.
func New(s Settings, d Deps) *Reaper {
	if d.Now == nil {
		d.Now = time.Now
	}
	f := promauto.With(d.Registerer)
	r := &Reaper{
		s: s, d: d,
		expired: f.NewCounter(prometheus.CounterOpts{
			Name: "orderpipe_holds_expired_total",
			Help: "Holds whose deadline passed and whose units this reaper returned to availability (each hold counts once across all reapers).",
		}),
		published: f.NewCounter(prometheus.CounterOpts{
			Name: "orderpipe_hold_expired_events_total",
			Help: "hold.expired events published to orders.events (a re-publish after a crash counts again).",
		}),
		runs: f.NewCounterVec(prometheus.CounterOpts{
			Name: "orderpipe_reaper_runs_total",
			Help: "Reaper runs, by result (ok or error).",
		}, []string{"result"}),
		active: f.NewGauge(prometheus.GaugeOpts{
			Name: "orderpipe_holds_active_units",
			Help: "Units held by pending orders, summed over every SKU, as of the last reaper run.",
		}),
		duration: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "orderpipe_reaper_run_duration_seconds",
			Help:    "Time of one reaper run over every SKU.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}),
	}
	// Both results exist at 0 from the start: OrderpipeReaperFailing takes increase() of them.
	r.runs.WithLabelValues("ok")
	r.runs.WithLabelValues("error")
	return r
}

// Run calls RunOnce every interval (Settings.ReaperInterval) until ctx ends; a failed run is
// logged and retried at the next tick. It returns nil when ctx ends. Whether to run it at all
// (Settings.ReaperEnabled) is the caller's decision.
func (r *Reaper) Run(ctx context.Context, every time.Duration) error {
	if every <= 0 { // disabled
		<-ctx.Done()
		return nil
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if n, err := r.RunOnce(ctx); err != nil && ctx.Err() == nil {
			r.d.Log.Warn("reaper run", "err", err, "expired", n)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// RunOnce ends every hold past its deadline, publishes the expiry events waiting in the outboxes
// (this run's and any left by an earlier run that failed or crashed), and announces the SKUs that
// got units back. It returns how many holds it ended.
func (r *Reaper) RunOnce(ctx context.Context) (expired int, err error) {
	start := time.Now()
	defer func() {
		r.duration.Observe(time.Since(start).Seconds())
		if err != nil {
			r.runs.WithLabelValues("error").Inc()
		} else {
			r.runs.WithLabelValues("ok").Inc()
		}
	}()
	skus, err := r.skuList(ctx)
	if err != nil {
		return 0, err
	}
	now := r.d.Now()
	var errs []error
	var held int64
	for from := 0; from < len(skus); from += r.s.ReaperBatchSKUs {
		batch := skus[from:min(from+r.s.ReaperBatchSKUs, len(skus))]
		n, h, err := r.batch(ctx, batch, now)
		expired += n
		held += h
		if err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) == 0 {
		r.active.Set(float64(held))
	}
	return expired, errors.Join(errs...)
}

// batch reaps one pipeline's worth of SKUs.
func (r *Reaper) batch(ctx context.Context, skus []string, now time.Time) (expired int, held int64, err error) {
	var errs []error
	changed := map[string]bool{}
	todo := skus
	for len(todo) > 0 {
		res, err := r.d.Holds.ExpireDueMany(ctx, todo, now, r.s.ReaperMaxPerSKU)
		if err != nil {
			return expired, 0, err
		}
		var again []string
		for _, x := range res {
			if x.Err != nil {
				errs = append(errs, x.Err)
				continue
			}
			if len(x.Expired) > 0 {
				changed[x.SKU] = true
				expired += len(x.Expired)
				r.expired.Add(float64(len(x.Expired)))
			}
			if len(x.Expired) == r.s.ReaperMaxPerSKU {
				again = append(again, x.SKU) // more may be due
			}
		}
		todo = again
	}
	if len(changed) > 0 {
		list := make([]string, 0, len(changed))
		for sku := range changed {
			list = append(list, sku)
		}
		if err := r.d.Holds.PublishStockChanged(ctx, list...); err != nil {
			// The api's sold-out entries time out by themselves; not worth failing the run.
			r.d.Log.Warn("announce expired holds", "err", err)
		}
	}
	if err := r.publish(ctx, skus); err != nil {
		errs = append(errs, err)
	}
	st, err := r.d.Holds.Availabilities(ctx, skus)
	if err != nil {
		errs = append(errs, err)
	}
	for _, s := range st {
		held += s.Held
	}
	return expired, held, errors.Join(errs...)
}

// publish sends the hold.expired events waiting in the outboxes of skus and acknowledges those
// the broker accepted; the others stay for the next run.
func (r *Reaper) publish(ctx context.Context, skus []string) error {
	pending, err := r.d.Holds.PendingExpiries(ctx, skus)
	if err != nil || len(pending) == 0 {
		return err
	}
	var send []*kgo.Record
	var done []redisstore.Expiry
	of := map[*kgo.Record]redisstore.Expiry{} // results come back in completion order
	for _, e := range pending {
		env, err := event.NewEnvelope(r.d.Source, event.HoldSubject(e.OrderID, e.SKU), e.ExpiredAt, event.HoldExpired{
			OrderID: e.OrderID, SKU: e.SKU, Quantity: e.Qty, HoldDeadline: e.Deadline, ExpiredAt: e.ExpiredAt,
		})
		if err == nil {
			err = r.d.Validator.Validate(env.Type, env.Data)
		}
		if err != nil {
			// Never publishable (the api only makes UUID order ids): drop it from the outbox
			// rather than retry it forever. The units were returned all the same.
			r.d.Log.Error("expiry event not publishable; dropped", "order_id", e.OrderID, "sku", e.SKU, "err", err)
			done = append(done, e)
			continue
		}
		rec := env.Record(event.TopicOrderEvents, []byte(e.OrderID))
		send = append(send, rec)
		of[rec] = e
	}
	var errs []error
	if len(send) > 0 {
		for _, res := range r.d.Producer.ProduceSync(ctx, send...) {
			e := of[res.Record]
			if res.Err != nil {
				errs = append(errs, fmt.Errorf("publish hold.expired of %s/%s: %w", e.OrderID, e.SKU, res.Err))
				continue
			}
			r.published.Inc()
			r.d.Log.Info("hold expired", "order_id", e.OrderID, "sku", e.SKU, "qty", e.Qty,
				"event_id", event.ID(event.TypeHoldExpired, event.HoldSubject(e.OrderID, e.SKU)))
			done = append(done, e)
		}
	}
	if err := r.d.Holds.AckExpiries(ctx, done); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// skuList returns the SKUs to reap, reloaded from Postgres every ReaperSKURefresh. If a reload
// fails, the last list is kept (and the error returned only when there is none).
func (r *Reaper) skuList(ctx context.Context) ([]string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.skus != nil && time.Since(r.loadedAt) < r.s.ReaperSKURefresh {
		return r.skus, nil
	}
	levels, err := r.d.Stock.All(ctx)
	if err != nil {
		if r.skus != nil {
			r.d.Log.Warn("reload SKUs for the reaper; keeping the last list", "err", err)
			r.loadedAt = time.Now()
			return r.skus, nil
		}
		return nil, fmt.Errorf("list SKUs: %w", err)
	}
	skus := make([]string, len(levels))
	for i, l := range levels {
		skus[i] = l.SKU
	}
	r.skus, r.loadedAt = skus, time.Now()
	return skus, nil
}

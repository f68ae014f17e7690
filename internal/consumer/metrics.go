package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
)

// Record outcomes, the outcome label of orderpipe_consumer_records_total.
const (
	outcomeDone         = "done"          // the handler finished it
	outcomeRetried      = "retried"       // one more attempt in place (counted per attempt)
	outcomeRetryTopic   = "retry_topic"   // forwarded to a retry topic
	outcomeDeadLettered = "dead_lettered" // written to the dead-letter topic
)

type metrics struct {
	batchRecords  *prometheus.HistogramVec
	handleSeconds *prometheus.HistogramVec
	records       *prometheus.CounterVec
	// isolationCalls counts the extra handler calls that isolate permanent failures.
	isolationCalls *prometheus.CounterVec
	deadLetters    *prometheus.CounterVec
	lag            *prometheus.GaugeVec
	lanePaused     *prometheus.GaugeVec
}

// newMetrics registers the consumer metrics on reg (nil: unregistered). Several consumers may
// share a registry: their series differ by the group label, and a collector already registered
// by another consumer is reused.
func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		batchRecords: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "orderpipe_consumer_batch_records",
			Help:    "Records per handler call.",
			Buckets: []float64{1, 2, 5, 10, 20, 50, 100, 200, 500, 1000},
		}, []string{"group"}),
		handleSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "orderpipe_consumer_handle_duration_seconds",
			Help:    "Time spent in one handler call.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}, []string{"group"}),
		records: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orderpipe_consumer_records_total",
			Help: "Records by outcome: done, retried (per in-place attempt), retry_topic, dead_lettered.",
		}, []string{"group", "outcome"}),
		isolationCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orderpipe_consumer_isolation_calls_total",
			Help: "Extra handler calls made to isolate records that failed permanently together with others (batch split in halves).",
		}, []string{"group"}),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orderpipe_consumer_dead_letters_total",
			Help: "Records written to the dead-letter topic, by source topic and error class.",
		}, []string{"group", "topic", "class"}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "orderpipe_consumer_lag",
			Help: "Records between the group's committed offset and the end of the partition.",
		}, []string{"group", "topic", "partition"}),
		lanePaused: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "orderpipe_consumer_lane_paused",
			Help: "1 while the standard lane is paused in favour of the priority topic.",
		}, []string{"group"}),
	}
	if reg == nil {
		return m, nil
	}
	var err error
	if m.batchRecords, err = register(reg, m.batchRecords); err != nil {
		return nil, err
	}
	if m.handleSeconds, err = register(reg, m.handleSeconds); err != nil {
		return nil, err
	}
	if m.records, err = register(reg, m.records); err != nil {
		return nil, err
	}
	if m.isolationCalls, err = register(reg, m.isolationCalls); err != nil {
		return nil, err
	}
	if m.deadLetters, err = register(reg, m.deadLetters); err != nil {
		return nil, err
	}
	if m.lag, err = register(reg, m.lag); err != nil {
		return nil, err
	}
	if m.lanePaused, err = register(reg, m.lanePaused); err != nil {
		return nil, err
	}
	return m, nil
}

func register[T prometheus.Collector](reg prometheus.Registerer, c T) (T, error) {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(T); ok {
				return existing, nil
			}
		}
		return c, fmt.Errorf("register consumer metrics: %w", err)
	}
	return c, nil
}

// zero makes the counters that alerts and dashboards read exist at 0 from the start for the
// group's known label values: increase() and rate() see nothing of a series until its second
// sample, so a counter that first appears at 3 would never fire an alert on its first increase.
func (m *metrics) zero(group string, sourceTopics []string) {
	for _, o := range []string{outcomeDone, outcomeRetried, outcomeRetryTopic, outcomeDeadLettered} {
		m.records.WithLabelValues(group, o)
	}
	for _, t := range sourceTopics {
		for _, class := range []string{ClassTransient, ClassPermanent} {
			m.deadLetters.WithLabelValues(group, t, class)
		}
	}
}

// Lag returns how far group is behind on each topic and partition it has committed offsets for or
// is assigned: the end offset minus the committed offset (the whole partition if nothing is
// committed yet).
func Lag(ctx context.Context, adm *kadm.Client, group string) (map[string]map[int32]int64, error) {
	lags, err := adm.Lag(ctx, group)
	if err != nil {
		return nil, fmt.Errorf("lag of group %s: %w", group, err)
	}
	l, ok := lags[group]
	if !ok {
		return map[string]map[int32]int64{}, nil
	}
	if err := l.Error(); err != nil {
		return nil, fmt.Errorf("lag of group %s: %w", group, err)
	}
	out := make(map[string]map[int32]int64, len(l.Lag))
	for t, ps := range l.Lag {
		for p, ml := range ps {
			if ml.Err != nil || ml.Lag < 0 {
				continue
			}
			if out[t] == nil {
				out[t] = make(map[int32]int64, len(ps))
			}
			out[t][p] = ml.Lag
		}
	}
	return out, nil
}

// refreshLag sets the lag gauge every interval until ctx ends.
func (c *Consumer) refreshLag(ctx context.Context, interval time.Duration) {
	adm := kadm.NewClient(c.cl)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		qctx, cancel := context.WithTimeout(ctx, interval)
		lags, err := Lag(qctx, adm, c.cfg.KafkaGroup())
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				c.log.LogAttrs(ctx, slog.LevelDebug, "consumer lag not refreshed", slog.String("group", c.cfg.Group), slog.Any("error", err))
			}
			continue
		}
		for t, ps := range lags {
			for p, n := range ps {
				c.m.lag.WithLabelValues(c.cfg.Group, t, strconv.Itoa(int(p))).Set(float64(n))
			}
		}
	}
}

package notifier

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/orderpipe/orderpipe/internal/consumer"
)

// Gate pauses the low-priority lanes while the critical consumer groups lag: every interval it
// reads their lag (committed offsets against end offsets, through kadm), pauses fetching when the
// total is above the threshold, and resumes when it is at or below half of it. A pause lasts at
// most maxPause; then the lanes run for at least minRun, so a critical group that is stuck rather
// than busy does not stop e-mail and reports altogether. A critical group that does not exist
// (not deployed) counts as no lag; when a lag cannot be read the gate keeps its state.
//
// Pausing is the Kafka client's PauseFetchTopics on every topic the lanes read (their source and
// retry topics): no fetch requests, no buffered records, no handler work, no Postgres or SMTP
// traffic from these lanes while the order path catches up. Already buffered records are dropped
// without moving the position, so nothing is skipped; the batch in hand finishes.
type Gate struct {
	adm       *kadm.Client
	groups    []string
	threshold int64
	interval  time.Duration
	maxPause  time.Duration
	minRun    time.Duration
	apply     func(paused bool)
	log       *slog.Logger
	m         *metrics

	paused   bool
	pausedAt time.Time
	runUntil time.Time // after a pause that hit maxPause, no new pause before this
}

// newGate builds a gate over the critical groups; apply pauses (true) or resumes (false) the
// lanes.
func newGate(adm *kadm.Client, groups []string, threshold int64, interval, maxPause, minRun time.Duration, apply func(bool), log *slog.Logger, m *metrics) *Gate {
	return &Gate{adm: adm, groups: groups, threshold: threshold, interval: interval, maxPause: maxPause, minRun: minRun,
		apply: apply, log: log, m: m}
}

// Run checks the lag every interval until ctx ends, then resumes the lanes.
func (g *Gate) Run(ctx context.Context) error {
	t := time.NewTicker(g.interval)
	defer t.Stop()
	defer func() {
		if g.paused {
			g.set(false, time.Now())
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		qctx, cancel := context.WithTimeout(ctx, max(g.interval, time.Second))
		lag, err := g.lag(qctx)
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				g.log.Debug("critical lag unknown; pause state kept", "err", err)
			}
			continue
		}
		g.m.criticalLag.Set(float64(lag))
		g.step(time.Now(), lag)
	}
}

// step decides the pause from one lag reading.
func (g *Gate) step(now time.Time, lag int64) {
	switch {
	case g.paused && now.Sub(g.pausedAt) >= g.maxPause:
		g.runUntil = now.Add(g.minRun)
		g.log.Warn("low-priority lanes resumed after the longest pause although the critical groups still lag", "lag", lag, "paused_for", now.Sub(g.pausedAt).String())
		g.set(false, now)
	case g.paused && lag <= g.threshold/2:
		g.set(false, now)
	case !g.paused && lag > g.threshold && !now.Before(g.runUntil):
		g.set(true, now)
	}
}

func (g *Gate) set(paused bool, now time.Time) {
	g.paused = paused
	g.apply(paused)
	if paused {
		g.pausedAt = now
		g.m.pauses.Inc()
		g.m.paused.Set(1)
		g.log.Info("low-priority lanes paused: the critical groups lag", "threshold", g.threshold)
		return
	}
	g.m.paused.Set(0)
	g.log.Info("low-priority lanes resumed", "paused_for", now.Sub(g.pausedAt).String())
}

// lag is the total lag of the critical groups.
func (g *Gate) lag(ctx context.Context) (int64, error) {
	var total int64
	for _, group := range g.groups {
		lags, err := consumer.Lag(ctx, g.adm, group)
		if errors.Is(err, kerr.GroupIDNotFound) {
			continue // not deployed (yet): nothing to wait for
		}
		if err != nil {
			return 0, err
		}
		for _, ps := range lags {
			for _, n := range ps {
				total += n
			}
		}
	}
	return total, nil
}

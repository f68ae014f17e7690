// Package reconcile keeps Redis, the fast gate, honest against Postgres, the truth (invariant
// I4: at rest, ATP + held in Redis equals on_hand - allocated in Postgres, for every SKU). It
// compares every SKU, exports the drift as metrics, repairs drift that is stable (not an update
// in flight), and rebuilds the SKUs Redis lost (flushed, or restarted empty) from Postgres plus the
// journal of the orders still in flight: the placed-order topics beyond order-worker's committed
// offsets, its retry topics and its dead-letter topic (see journal.go and docs/stock.md). A
// rebuild recreates the counters, the lost holds and the counters of the SKU's promotions (stock
// cap and per-customer limit, docs/promotions.md) together.
//
// Every write is one Lua script in the SKU's {SKU} slot, run while the SKU's Postgres stock row
// is locked, so several reconcilers (and order-workers) may run at once.
package reconcile

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/orderpipe/orderpipe/internal/config"
	"github.com/orderpipe/orderpipe/internal/event"
	"github.com/orderpipe/orderpipe/internal/postgres"
	"github.com/orderpipe/orderpipe/internal/redisstore"
	"github.com/orderpipe/orderpipe/internal/topology"
)

// Settings configure periodic reconciliation; a process that runs it embeds them in its Config.
type Settings struct {
	ReconcileInterval time.Duration `env:"RECONCILE_INTERVAL" envDefault:"30s" help:"how often every SKU's Redis counters are compared with Postgres (and lost SKUs rebuilt); 0 disables the periodic run"`
	ReconcileRepair   bool          `env:"RECONCILE_REPAIR" envDefault:"true" help:"repair stable drift and rebuild lost SKUs on each periodic run; false only measures"`
	ReconcileSettle   time.Duration `env:"RECONCILE_SETTLE" envDefault:"2s" help:"a drifting SKU is observed again after this delay and repaired only if neither Postgres nor Redis moved (updates in flight settle first)"`
	ReconcileTimeout  time.Duration `env:"RECONCILE_TIMEOUT" envDefault:"2m" help:"longest one reconciliation run may take, journal read included"`
}

// Validate checks the reconciliation settings.
func (s *Settings) Validate() error {
	switch {
	case s.ReconcileInterval != 0 && s.ReconcileInterval < time.Second:
		return config.Errorf("RECONCILE_INTERVAL", "want 0 (off) or at least 1s, got %s", s.ReconcileInterval)
	case s.ReconcileSettle < 0 || s.ReconcileSettle > time.Minute:
		return config.Errorf("RECONCILE_SETTLE", "want 0..1m, got %s", s.ReconcileSettle)
	case s.ReconcileTimeout < time.Second:
		return config.Errorf("RECONCILE_TIMEOUT", "want at least 1s, got %s", s.ReconcileTimeout)
	case s.ReconcileInterval != 0 && s.ReconcileSettle >= s.ReconcileInterval:
		return config.Errorf("RECONCILE_SETTLE", "want less than RECONCILE_INTERVAL (%s), got %s", s.ReconcileInterval, s.ReconcileSettle)
	}
	return nil
}

// Store is the part of the Redis store reconciliation uses.
type Store interface {
	ObserveStock(ctx context.Context, skus []string) (map[string]redisstore.Observed, error)
	RepairStock(ctx context.Context, sku string, truth int64, expectSum *int64, marks map[string]int64) (redisstore.Repaired, error)
	RebuildStock(ctx context.Context, sku string, truth int64, marks map[string]int64, holds []redisstore.RebuildHold, promos []redisstore.RebuildPromo, now time.Time) (redisstore.Rebuilt, error)
	EndedTTL() time.Duration
	Release(ctx context.Context, orderID string, skus []string) ([]redisstore.HoldResult, error)
	PublishStockChanged(ctx context.Context, skus ...string) error
}

// Deps are what a Reconciler works with.
type Deps struct {
	Pool      *pgxpool.Pool
	Store     Store
	Brokers   []string // Kafka, for the journal of in-flight orders
	ClientID  string
	Group     string // the order-worker group whose committed offsets bound the journal; "" is order-worker
	Validator *event.Validator
	Log       *slog.Logger
	// Registerer receives the metrics; nil registers none.
	Registerer prometheus.Registerer
	Now        func() time.Time // nil: time.Now
}

// Reconciler compares and repairs. Its methods are safe for concurrent use, and several
// reconcilers may run at once.
type Reconciler struct {
	s     Settings
	d     Deps
	stock *postgres.StockStore
	m     metrics
}

// New builds a Reconciler.
func New(s Settings, d Deps) *Reconciler {
	if d.Group == "" {
		d.Group = topology.GroupOrderWorker
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.ClientID == "" {
		d.ClientID = "orderpipe-reconcile"
	}
	return &Reconciler{s: s, d: d, stock: postgres.NewStockStore(d.Pool), m: newMetrics(d.Registerer)}
}

// SKU is one SKU compared.
type SKU struct {
	SKU       string `json:"sku"`
	OnHand    int64  `json:"on_hand"`
	Allocated int64  `json:"allocated"`
	Missing   bool   `json:"missing,omitempty"` // Redis has no counters: the api refuses the SKU with 503 until it is rebuilt
	ATP       int64  `json:"atp"`
	Held      int64  `json:"held"`
	HeldLive  int64  `json:"held_live"` // units in live holds; differs from held only if the counters were corrupted
	// Drift is (atp + held) - (on_hand - allocated): positive, Redis promises units Postgres
	// does not have (the guard will refuse them); negative, sellable units are hidden.
	Drift int64 `json:"drift"`
}

// Off reports whether the SKU needs repair.
func (s SKU) Off() bool { return s.Missing || s.Drift != 0 || s.Held != s.HeldLive }

func (s SKU) hot() bool { return s.Held > 0 || s.HeldLive > 0 }

// Report is one comparison of every SKU.
type Report struct {
	At       time.Time `json:"at"`
	SKUs     int       `json:"skus"`      // compared
	Off      []SKU     `json:"off"`       // drifting, inconsistent or missing, sorted by SKU
	AbsDrift int64     `json:"abs_drift"` // sum of |drift| over the SKUs Redis has
	Missing  int       `json:"missing"`
}

// Clean reports whether every SKU matched.
func (r Report) Clean() bool { return len(r.Off) == 0 }

// Check compares every SKU that has a stock row and updates the drift metrics.
func (r *Reconciler) Check(ctx context.Context) (Report, error) {
	rep, _, err := r.check(ctx)
	if err != nil {
		r.m.runs.WithLabelValues("check", "error").Inc()
		return Report{}, err
	}
	r.m.runs.WithLabelValues("check", "ok").Inc()
	return rep, nil
}

// checkBatch bounds the SKUs observed in one Redis pipeline.
const checkBatch = 500

func (r *Reconciler) check(ctx context.Context) (Report, map[string]redisstore.Observed, error) {
	lv, err := r.stock.All(ctx)
	if err != nil {
		return Report{}, nil, err
	}
	skus := make([]string, len(lv))
	for i, l := range lv {
		skus[i] = l.SKU
	}
	obs := make(map[string]redisstore.Observed, len(skus))
	for from := 0; from < len(skus); from += checkBatch {
		o, err := r.d.Store.ObserveStock(ctx, skus[from:min(from+checkBatch, len(skus))])
		if err != nil {
			return Report{}, nil, err
		}
		for k, v := range o {
			obs[k] = v
		}
	}
	rep := Report{At: r.d.Now().UTC(), SKUs: len(lv)}
	var drift, drifting [2]int64 // by class: hot, other
	for _, l := range lv {
		s := compare(l.SKU, level{OnHand: l.OnHand, Allocated: l.Allocated}, obs[l.SKU])
		if !s.Off() {
			continue
		}
		rep.Off = append(rep.Off, s)
		if s.Missing {
			rep.Missing++
			continue
		}
		c := 1
		if s.hot() {
			c = 0
		}
		rep.AbsDrift += abs(s.Drift)
		drift[c] += abs(s.Drift)
		drifting[c]++
	}
	for i, class := range []string{"hot", "other"} {
		r.m.driftUnits.WithLabelValues(class).Set(float64(drift[i]))
		r.m.driftingSKUs.WithLabelValues(class).Set(float64(drifting[i]))
	}
	r.m.missing.Set(float64(rep.Missing))
	return rep, obs, nil
}

func compare(sku string, l level, o redisstore.Observed) SKU {
	s := SKU{SKU: sku, OnHand: l.OnHand, Allocated: l.Allocated, HeldLive: o.HeldLive}
	if !o.Known {
		s.Missing = true
		s.Drift = -l.free()
		return s
	}
	s.ATP, s.Held = o.ATP, o.Held
	s.Drift = o.ATP + o.Held - l.free()
	return s
}

func abs(x int64) int64 {
	if x < 0 {
		return -x
	}
	return x
}

// Result is what Repair found and did.
type Result struct {
	Before   Report        `json:"before"`
	After    Report        `json:"after"`
	Rebuilt  []RebuiltSKU  `json:"rebuilt,omitempty"`
	Repaired []RepairedSKU `json:"repaired,omitempty"`
	// Unsettled lists drifting SKUs left alone because Postgres or Redis moved while they were
	// observed (an update in flight); the next run looks again.
	Unsettled []string      `json:"unsettled,omitempty"`
	Journal   *JournalStats `json:"journal,omitempty"` // set when SKUs were rebuilt
}

// RebuiltSKU is a SKU whose counters were recreated.
type RebuiltSKU struct {
	SKU        string `json:"sku"`
	ATP        int64  `json:"atp"` // negative: more units were promised than Postgres has; the guard decides
	Held       int64  `json:"held"`
	Holds      int    `json:"holds"`                // re-created
	Expired    int    `json:"expired"`              // past their deadline, ended as expired
	Promotions int    `json:"promotions,omitempty"` // promotions whose counters were rebuilt
}

// RepairedSKU is a SKU whose counters were set from the truth.
type RepairedSKU struct {
	SKU        string `json:"sku"`
	ATPBefore  int64  `json:"atp_before"`
	HeldBefore int64  `json:"held_before"`
	ATP        int64  `json:"atp"`
	Held       int64  `json:"held"`
}

// JournalStats describe the journal read for a rebuild.
type JournalStats struct {
	Records    int `json:"records"`
	Orders     int `json:"orders"`      // accepted and not finished by order-worker
	DeadLetter int `json:"dead_letter"` // of which parked in the dead-letter topic
	Decided    int `json:"decided"`     // of the orders on rebuilt SKUs, already decided in Postgres
	Held       int `json:"held"`        // holds given back
	Released   int `json:"released"`    // holds of orders cancelled while the rebuild ran, released
}

// Repair compares every SKU, rebuilds the SKUs Redis lost, repairs the counters of SKUs whose
// drift held still for Settings.ReconcileSettle, and compares again.
func (r *Reconciler) Repair(ctx context.Context) (res Result, err error) {
	start := time.Now()
	defer func() {
		r.m.duration.Observe(time.Since(start).Seconds())
		result := "ok"
		if err != nil {
			result = "error"
		}
		r.m.runs.WithLabelValues("repair", result).Inc()
	}()
	before, obs, err := r.check(ctx)
	if err != nil {
		return Result{}, err
	}
	res.Before = before
	var missing, drifting []SKU
	for _, s := range before.Off {
		if s.Missing {
			missing = append(missing, s)
		} else {
			drifting = append(drifting, s)
		}
	}
	var errs []error
	if len(missing) > 0 {
		if err := r.rebuild(ctx, missing, &res); err != nil {
			errs = append(errs, err)
		}
	}
	if len(drifting) > 0 {
		if err := r.repair(ctx, drifting, obs, &res); err != nil {
			errs = append(errs, err)
		}
	}
	var changed []string
	for _, s := range res.Rebuilt {
		changed = append(changed, s.SKU)
	}
	for _, s := range res.Repaired {
		if s.ATP > s.ATPBefore {
			changed = append(changed, s.SKU)
		}
	}
	if err := r.d.Store.PublishStockChanged(ctx, changed...); err != nil {
		r.d.Log.Warn("announce reconciled SKUs", "err", err)
	}
	if len(res.Rebuilt) == 0 && len(res.Repaired) == 0 {
		res.After = before
	} else if res.After, _, err = r.check(ctx); err != nil {
		errs = append(errs, err)
	}
	return res, errors.Join(errs...)
}

// repair sets the counters of the drifting SKUs from the truth, if their drift is stable.
func (r *Reconciler) repair(ctx context.Context, drifting []SKU, obs map[string]redisstore.Observed, res *Result) error {
	if r.s.ReconcileSettle > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(r.s.ReconcileSettle):
		}
	}
	skus := make([]string, len(drifting))
	for i, s := range drifting {
		skus[i] = s.SKU
	}
	nowLv, err := levels(ctx, r.d.Pool, skus)
	if err != nil {
		return err
	}
	nowObs, err := r.d.Store.ObserveStock(ctx, skus)
	if err != nil {
		return err
	}
	var mu sync.Mutex // guards res and errs
	var errs []error
	unsettled := func(sku string) {
		mu.Lock()
		defer mu.Unlock()
		res.Unsettled = append(res.Unsettled, sku)
		r.m.actions.WithLabelValues("unsettled").Inc()
	}
	eachSKU(drifting, func(s SKU) {
		was, now := obs[s.SKU], nowObs[s.SKU]
		lv, ok := nowLv[s.SKU]
		if !ok || !now.Known || lv.OnHand != s.OnHand || lv.Allocated != s.Allocated || now.ATP+now.Held != was.ATP+was.Held {
			unsettled(s.SKU)
			return
		}
		sum := was.ATP + was.Held
		err := withLockedStock(ctx, r.d.Pool, s.SKU, func(tx pgx.Tx, l level) error {
			if l != (level{OnHand: s.OnHand, Allocated: s.Allocated}) {
				unsettled(s.SKU)
				return nil
			}
			mk, err := marks(ctx, tx, s.SKU)
			if err != nil {
				return err
			}
			out, err := r.d.Store.RepairStock(ctx, s.SKU, l.free(), &sum, mk)
			if err != nil {
				return err
			}
			if out.Outcome != redisstore.RepairDone { // moved meanwhile, or lost: the next run looks again
				unsettled(s.SKU)
				return nil
			}
			r.m.actions.WithLabelValues("repaired").Inc()
			r.d.Log.Warn("stock drift repaired", "sku", s.SKU, "drift", s.Drift, "atp_before", out.ATPBefore, "held_before", out.HeldBefore,
				"atp", out.ATP, "held", out.Held, "on_hand", l.OnHand, "allocated", l.Allocated)
			mu.Lock()
			defer mu.Unlock()
			res.Repaired = append(res.Repaired, RepairedSKU{SKU: s.SKU, ATPBefore: out.ATPBefore, HeldBefore: out.HeldBefore, ATP: out.ATP, Held: out.Held})
			return nil
		})
		if err != nil {
			mu.Lock()
			defer mu.Unlock()
			errs = append(errs, fmt.Errorf("repair %s: %w", s.SKU, err))
		}
	})
	sortResult(res)
	return errors.Join(errs...)
}

// parallelism bounds the SKUs repaired or rebuilt at once (each holds a Postgres connection and
// its stock row lock for a few milliseconds).
const parallelism = 8

// eachSKU calls fn for every SKU, parallelism at a time, and returns when all are done.
func eachSKU(skus []SKU, fn func(SKU)) {
	sem := make(chan struct{}, parallelism)
	var wg sync.WaitGroup
	for _, s := range skus {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			fn(s)
		})
	}
	wg.Wait()
}

// sortResult orders the lists of res by SKU (they are filled in parallel).
func sortResult(res *Result) {
	slices.SortFunc(res.Repaired, func(a, b RepairedSKU) int { return strings.Compare(a.SKU, b.SKU) })
	slices.SortFunc(res.Rebuilt, func(a, b RebuiltSKU) int { return strings.Compare(a.SKU, b.SKU) })
	slices.Sort(res.Unsettled)
}

// rebuild recreates the counters of the SKUs Redis lost, with the holds of the orders in flight
// and the counters of the SKUs' promotions (stock cap, per-customer limit).
func (r *Reconciler) rebuild(ctx context.Context, missing []SKU, res *Result) error {
	orders, st, err := readJournal(ctx, r.d.Brokers, r.d.ClientID, r.d.Group, r.d.Validator)
	if err != nil {
		return err
	}
	now := r.d.Now()
	// The promotions whose counters may still exist: the others' would have expired already.
	ends, err := promoEnds(ctx, r.d.Pool, now.Add(-r.d.Store.EndedTTL()))
	if err != nil {
		return err
	}
	live := slices.Sorted(maps.Keys(ends))
	js := &JournalStats{Records: st.Records, Orders: st.Orders, DeadLetter: st.DeadLetter}
	res.Journal = js
	bySKU := map[string][]*journalOrder{}
	for _, o := range orders {
		if _, err := uuid.Parse(o.ID); err != nil {
			continue // never from the api; the worker cancels it as invalid without a hold
		}
		for sku := range o.Lines {
			bySKU[sku] = append(bySKU[sku], o)
		}
	}
	held := map[string][]string{} // order -> SKUs whose hold this rebuild gave back
	var mu sync.Mutex             // guards res, js, held and errs
	var errs []error
	eachSKU(missing, func(s SKU) {
		cands := bySKU[s.SKU]
		ids := make([]string, len(cands))
		for i, o := range cands {
			ids[i] = o.ID
		}
		slices.Sort(ids)
		err := withLockedStock(ctx, r.d.Pool, s.SKU, func(tx pgx.Tx, l level) error {
			done, err := decided(ctx, tx, ids)
			if err != nil {
				return err
			}
			var holds []redisstore.RebuildHold
			for _, o := range cands {
				if _, ok := done[o.ID]; !ok {
					pu := o.Promo[s.SKU]
					holds = append(holds, redisstore.RebuildHold{OrderID: o.ID, Qty: o.Lines[s.SKU], Deadline: o.Deadline,
						PromotionID: pu.ID, PromoQty: min(pu.Units, o.Lines[s.SKU]), Customer: o.Customer})
				}
			}
			mk, err := marks(ctx, tx, s.SKU)
			if err != nil {
				return err
			}
			sold, err := promoSold(ctx, tx, s.SKU, live)
			if err != nil {
				return err
			}
			promos := rebuildPromos(sold, holds, ends)
			out, err := r.d.Store.RebuildStock(ctx, s.SKU, l.free(), mk, holds, promos, now)
			if err != nil || !out.Done {
				return err // !Done: another reconciler rebuilt it first
			}
			mu.Lock()
			defer mu.Unlock()
			js.Decided += len(cands) - len(holds)
			for _, h := range holds {
				if h.Deadline.After(now) {
					held[h.OrderID] = append(held[h.OrderID], s.SKU)
				}
			}
			js.Held += out.Created
			res.Rebuilt = append(res.Rebuilt, RebuiltSKU{SKU: s.SKU, ATP: out.ATP, Held: out.Held, Holds: out.Created, Expired: out.Expired, Promotions: out.Promotions})
			r.m.actions.WithLabelValues("rebuilt").Inc()
			r.m.holds.WithLabelValues("held").Add(float64(out.Created))
			r.m.holds.WithLabelValues("expired").Add(float64(out.Expired))
			if out.ATP < 0 {
				r.m.negative.Inc()
				r.d.Log.Warn("rebuilt SKU is promised beyond its stock; the Postgres guard decides which orders get it",
					"sku", s.SKU, "atp", out.ATP, "held", out.Held, "on_hand", l.OnHand, "allocated", l.Allocated)
			}
			r.d.Log.Info("stock rebuilt", "sku", s.SKU, "atp", out.ATP, "held", out.Held, "holds", out.Created, "expired", out.Expired,
				"promotions", out.Promotions)
			return nil
		})
		if err != nil {
			mu.Lock()
			defer mu.Unlock()
			errs = append(errs, fmt.Errorf("rebuild %s: %w", s.SKU, err))
		}
	})
	sortResult(res)
	// An order decided while the rebuild ran: a confirmation needs the stock row lock, so it
	// happened after this SKU's rebuild and its confirm finds the hold. A cancellation does not
	// take the lock: its release may have run before the hold was given back, which would leave
	// the hold to its deadline. Release those now (a no-op if the worker already did).
	if len(held) > 0 {
		ids := make([]string, 0, len(held))
		for id := range held {
			ids = append(ids, id)
		}
		done, err := decided(ctx, r.d.Pool, ids)
		if err != nil {
			errs = append(errs, err)
		}
		for id, status := range done {
			if status != "cancelled" {
				continue
			}
			rel, err := r.d.Store.Release(ctx, id, held[id])
			if err != nil {
				errs = append(errs, err)
				continue
			}
			for _, x := range rel {
				if x.Found {
					js.Released++
				}
			}
		}
	}
	return errors.Join(errs...)
}

// rebuildPromos are the promotions whose counters a SKU's rebuild recreates: those with
// promotional units in orders Postgres decided and did not cancel (sold: promotion -> customer ->
// units) or in the holds given back, among the promotions whose counters may still exist (ends).
// A hold under a promotion that ended long ago keeps its units but counts against nothing.
func rebuildPromos(sold map[string]map[string]int64, holds []redisstore.RebuildHold, ends map[string]time.Time) []redisstore.RebuildPromo {
	ids := map[string]bool{}
	for id := range sold {
		ids[id] = true
	}
	for _, h := range holds {
		if h.PromoQty > 0 {
			ids[h.PromotionID] = true
		}
	}
	var out []redisstore.RebuildPromo
	for _, id := range slices.Sorted(maps.Keys(ids)) {
		end, ok := ends[id]
		if !ok {
			continue
		}
		out = append(out, redisstore.RebuildPromo{ID: id, End: end, Customers: sold[id]})
	}
	return out
}

// Run reconciles every interval (Settings.ReconcileInterval; 0 disables) until ctx ends: Repair
// when Settings.ReconcileRepair, else Check, each bounded by Settings.ReconcileTimeout. Failed
// runs are logged and retried at the next tick. It returns nil when ctx ends.
func (r *Reconciler) Run(ctx context.Context, every time.Duration) error {
	if every <= 0 { // disabled (RECONCILE_INTERVAL=0)
		<-ctx.Done()
		return nil
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		r.runOnce(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (r *Reconciler) runOnce(ctx context.Context) {
	if r.s.ReconcileTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, r.s.ReconcileTimeout)
		defer cancel()
	}
	if !r.s.ReconcileRepair {
		rep, err := r.Check(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			r.d.Log.Warn("reconcile check", "err", err)
		case err == nil && !rep.Clean():
			r.d.Log.Warn("stock drift", "skus_off", len(rep.Off), "abs_drift", rep.AbsDrift, "missing", rep.Missing)
		}
		return
	}
	res, err := r.Repair(ctx)
	if err != nil && ctx.Err() == nil {
		r.d.Log.Warn("reconcile repair", "err", err)
	}
	if !res.Before.Clean() {
		r.d.Log.Info("reconciled", "skus_off", len(res.Before.Off), "rebuilt", len(res.Rebuilt), "repaired", len(res.Repaired),
			"unsettled", len(res.Unsettled), "skus_off_after", len(res.After.Off))
	}
}

type metrics struct {
	driftUnits   *prometheus.GaugeVec
	driftingSKUs *prometheus.GaugeVec
	missing      prometheus.Gauge
	runs         *prometheus.CounterVec
	actions      *prometheus.CounterVec
	holds        *prometheus.CounterVec
	negative     prometheus.Counter
	duration     prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) metrics {
	f := promauto.With(reg)
	m := metrics{
		driftUnits: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "orderpipe_stock_drift_units",
			Help: "Sum over SKUs of |(Redis atp + held) - (Postgres on_hand - allocated)| at the last comparison, by SKU class (hot: the SKU has holds; other).",
		}, []string{"sku_class"}),
		driftingSKUs: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "orderpipe_stock_drifting_skus",
			Help: "SKUs whose Redis counters disagree with Postgres at the last comparison, by SKU class (hot: the SKU has holds; other).",
		}, []string{"sku_class"}),
		missing: f.NewGauge(prometheus.GaugeOpts{
			Name: "orderpipe_stock_missing_skus",
			Help: "SKUs with stock in Postgres and no counters in Redis at the last comparison (the api answers 503 for them until they are rebuilt).",
		}),
		runs: f.NewCounterVec(prometheus.CounterOpts{
			Name: "orderpipe_reconcile_runs_total",
			Help: "Reconciliation runs by mode (check or repair) and result (ok or error).",
		}, []string{"mode", "result"}),
		actions: f.NewCounterVec(prometheus.CounterOpts{
			Name: "orderpipe_reconcile_skus_total",
			Help: "SKUs acted on by reconciliation: repaired, rebuilt, or unsettled (drift left for the next run because an update was in flight).",
		}, []string{"action"}),
		holds: f.NewCounterVec(prometheus.CounterOpts{
			Name: "orderpipe_reconcile_holds_total",
			Help: "Holds of in-flight orders given back by rebuilds: held again, or ended as expired (deadline passed).",
		}, []string{"state"}),
		negative: f.NewCounter(prometheus.CounterOpts{
			Name: "orderpipe_reconcile_negative_atp_total",
			Help: "Rebuilt SKUs whose in-flight holds exceed their stock (ATP below zero); the Postgres guard decides which orders get the units.",
		}),
		duration: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "orderpipe_reconcile_duration_seconds",
			Help:    "Time of one repair run (compare, rebuild, repair, compare again).",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}),
	}
	// The runs exist at 0 from the start: OrderpipeReconcileFailing takes increase() of them.
	for _, mode := range []string{"check", "repair"} {
		for _, result := range []string{"ok", "error"} {
			m.runs.WithLabelValues(mode, result)
		}
	}
	return m
}

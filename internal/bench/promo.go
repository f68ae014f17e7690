package bench

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/orderpipe/orderpipe/internal/postgres"
	"github.com/orderpipe/orderpipe/internal/pricing"
	"github.com/orderpipe/orderpipe/internal/promotion"
	"github.com/orderpipe/orderpipe/internal/redisstore"
)

// PromoSectionName names the promotion section of docs/benchmarks.md.
const PromoSectionName = "promo"

// PromoTarget is the target: intake throughput with an active promotion on the hot SKU
// at least this share of the throughput without.
const PromoTarget = 0.9

// PromoReport is the outcome of RunPromo.
type PromoReport struct {
	cfg      Config
	rounds   int
	started  time.Time
	machine  machine
	without  []runResult
	with     []runResult
	promoted int64 // promotional units counted in Redis at the end
	checkErr error
}

const (
	benchPlainSKU = "BRK-PAD-9001"
	benchPromoSKU = "BRK-PAD-9002"
)

// RunPromo measures the cost of promotions on the intake path: one api (in this process, with an
// in-process kfake broker) takes orders for two otherwise identical SKUs, one priced by an active
// promotion with a stock cap and a per-customer limit (both too large to be reached, so every
// order runs the full promotional path: window lookup, counters checked and raised in the
// reservation script, a split-capable event). Closed-loop runs alternate between the SKUs, so
// both arms see the same machine, process and warm caches. The promotion's counters are checked
// against the accepted orders at the end.
func RunPromo(ctx context.Context, cfg Config, rounds int) (*PromoReport, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	if rounds < 1 {
		rounds = 3
	}
	id := randomHex(6)
	rep := &PromoReport{cfg: cfg, rounds: rounds, started: time.Now().UTC(), machine: describeMachine(ctx, cfg)}
	schema := "bench_promo_" + id
	dbURL, err := withSearchPath(cfg.DatabaseURL, schema)
	if err != nil {
		return nil, err
	}
	if err := execAdmin(ctx, cfg.DatabaseURL, "CREATE SCHEMA "+pgx.Identifier{schema}.Sanitize()); err != nil {
		return nil, fmt.Errorf("create schema %s: %w", schema, err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_ = execAdmin(cctx, cfg.DatabaseURL, "DROP SCHEMA "+pgx.Identifier{schema}.Sanitize()+" CASCADE")
	}()
	rdb := redisstore.NewClient(cfg.Redis)
	defer rdb.Close()
	prefix := "bench-promo-" + id + ":"
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_ = redisstore.DeleteKeys(cctx, rdb, prefix+"*")
	}()
	store := redisstore.New(rdb, prefix)
	token, err := seedIntake(ctx, dbURL, store, benchPlainSKU, cfg.Stock)
	if err != nil {
		return nil, fmt.Errorf("seed: %w", err)
	}
	if err := seedPromo(ctx, dbURL, store, cfg.Stock); err != nil {
		return nil, fmt.Errorf("seed promotion: %w", err)
	}
	arm, err := startIntake(ctx, cfg, dbURL, prefix, token, store)
	if err != nil {
		return nil, err
	}
	defer arm.close()

	plain, promo := arm.target(benchPlainSKU), arm.target(benchPromoSKU)
	for i, t := range []target{plain, promo} {
		attack(ctx, t, fmt.Sprintf("warm-%d-", i), load{label: "warm-up", workers: 8, duration: time.Second})
	}
	settle(ctx)
	arms := [2]struct {
		name string
		t    target
		out  *[]runResult
	}{{"without promotion", plain, &rep.without}, {"with promotion", promo, &rep.with}}
	for r := range rounds {
		order := []int{0, 1}
		if r%2 == 1 { // alternate which arm goes first in a round
			order = []int{1, 0}
		}
		for _, i := range order {
			side := arms[i]
			cpu := sampleCPU()
			res := attack(ctx, side.t, fmt.Sprintf("r%d-%s-", r, strings.ReplaceAll(side.name, " ", "-")),
				load{label: fmt.Sprintf("round %d, %s", r+1, side.name), workers: cfg.Workers, duration: cfg.Duration})
			res.cpu = cpu.until(sampleCPU())
			*side.out = append(*side.out, res)
			fmt.Fprintf(cfg.Progress, "round %d, %s: %.0f orders/s, p50 %s, p99 %s, %d not 202\n",
				r+1, side.name, res.throughput(), ms(res.quantile(0.5)), ms(res.quantile(0.99)), res.failed())
			settle(ctx)
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
	if err := arm.stop(); err != nil {
		return nil, err
	}
	sold, _, err := store.PromoCounters(ctx, benchPromoSKU, benchPromoID)
	if err != nil {
		return nil, err
	}
	rep.promoted = sold
	st, err := store.Availability(ctx, benchPromoSKU)
	if err != nil {
		return nil, err
	}
	// Every unit held on the promoted SKU is a promotional unit (cap and limit never reached).
	if st.Held != sold {
		rep.checkErr = fmt.Errorf("promoted SKU: %d units held, %d counted as promotional: %w", st.Held, sold, ErrOversell)
	}
	return rep, rep.checkErr
}

const benchPromoID = "bench-flash"

// seedPromo adds the promoted SKU with stock, and an active promotion on it, published to Redis.
func seedPromo(ctx context.Context, databaseURL string, store *redisstore.Store, stock int64) error {
	pool, err := postgres.Open(ctx, databaseURL, 2)
	if err != nil {
		return err
	}
	defer pool.Close()
	cat := postgres.NewCatalogStore(pool)
	if _, err := cat.UpsertMany(ctx, []postgres.Product{{
		SKU: benchPromoSKU, Name: "Brake pads, rear axle (benchmark)", Category: "brakes", Brand: "Benchmark",
		PriceMinor: 4999, Currency: "EUR", Active: true,
	}}); err != nil {
		return err
	}
	if err := postgres.NewStockStore(pool).Set(ctx, benchPromoSKU, stock); err != nil {
		return err
	}
	if _, err := store.SeedStock(ctx, map[string]int64{benchPromoSKU: stock}); err != nil {
		return err
	}
	promos := postgres.NewPromotionStore(pool)
	svc := &pricing.Service{Store: promos, Publisher: pricing.NewPublisher(pricing.Stores{Catalog: cat, Promotions: promos}, store)}
	now := time.Now()
	_, err = svc.Create(ctx, promotion.Promotion{
		ID: benchPromoID, Name: "Benchmark flash sale", Kind: promotion.KindPercent, PercentOff: 20,
		SKUs: []string{benchPromoSKU}, StartsAt: now.Add(-time.Minute), EndsAt: now.Add(24 * time.Hour),
		StockCap: 1 << 40, PerCustomerLimit: 1 << 40, OverCap: promotion.OverCapBase,
	})
	return err
}

func sumRuns(rs []runResult) (accepted int, elapsed time.Duration, failed int) {
	for _, r := range rs {
		accepted += r.accepted()
		elapsed += r.elapsed
		failed += r.failed()
	}
	return
}

// mergedQuantile is the q-quantile of the latencies of every run in rs together.
func mergedQuantile(rs []runResult, q float64) time.Duration {
	var all []time.Duration
	for _, r := range rs {
		all = append(all, r.latencies...)
	}
	slices.Sort(all)
	return quantile(all, q)
}

// Ratio is the throughput with the promotion over the throughput without, over every round.
func (r *PromoReport) Ratio() float64 {
	aw, ew, _ := sumRuns(r.with)
	ao, eo, _ := sumRuns(r.without)
	if ao == 0 || ew == 0 || eo == 0 {
		return 0
	}
	return (float64(aw) / ew.Seconds()) / (float64(ao) / eo.Seconds())
}

// Markdown renders the promotion section of docs/benchmarks.md, markers included.
func (r *PromoReport) Markdown() string {
	var b strings.Builder
	begin, end := markers(PromoSectionName)
	b.WriteString(begin + "\n")
	b.WriteString("## Promotions on the intake path\n\n")
	fmt.Fprintf(&b, "Command: `%s`, started %s.\n\n", r.cfg.Command, r.started.Format(time.RFC3339))
	fmt.Fprintf(&b, "Machine: %d CPUs (%s), %s %s, %s, %s. Shared with other work; the two arms alternate round by round, so both saw the same conditions.\n\n",
		r.machine.cpus, r.machine.model, r.machine.goVer, r.machine.os, r.machine.postgres, r.machine.redis)
	b.WriteString("One api in this process (in-process kfake broker, acks=all, the real Redis scripts) takes closed-loop orders of one unit, " +
		fmt.Sprintf("%d in flight, for %s per run, ", r.cfg.Workers, r.cfg.Duration) +
		"alternately for a SKU without a promotion and an identical SKU priced by an active promotion (-20%, stock cap and " +
		"per-customer limit set but never reached, so every order takes the full promotional path: window lookup in memory, " +
		"cap and customer counters checked and raised in the reservation script, the promotion id on the event).\n\n")
	b.WriteString("| run | without promotion, orders/s | with promotion, orders/s |\n|---|---|---|\n")
	other := func(r runResult) string {
		if !r.cpu.known {
			return "other processes: unknown"
		}
		return fmt.Sprintf("other processes %.2f cores", r.cpu.other)
	}
	for i := range min(len(r.with), len(r.without)) {
		fmt.Fprintf(&b, "| round %d | %.0f (p50 %s, p99 %s; %s) | %.0f (p50 %s, p99 %s; %s) |\n", i+1,
			r.without[i].throughput(), ms(r.without[i].quantile(0.5)), ms(r.without[i].quantile(0.99)), other(r.without[i]),
			r.with[i].throughput(), ms(r.with[i].quantile(0.5)), ms(r.with[i].quantile(0.99)), other(r.with[i]))
	}
	aw, ew, fw := sumRuns(r.with)
	ao, eo, fo := sumRuns(r.without)
	if ew > 0 && eo > 0 {
		fmt.Fprintf(&b, "| all rounds | %.0f (p50 %s, p99 %s, %d not 202) | %.0f (p50 %s, p99 %s, %d not 202) |\n\n",
			float64(ao)/eo.Seconds(), ms(mergedQuantile(r.without, 0.5)), ms(mergedQuantile(r.without, 0.99)), fo,
			float64(aw)/ew.Seconds(), ms(mergedQuantile(r.with, 0.5)), ms(mergedQuantile(r.with, 0.99)), fw)
	}
	ratio := r.Ratio()
	verdict := "met"
	if ratio < PromoTarget {
		verdict = "**not met**"
	}
	fmt.Fprintf(&b, "**With an active promotion the intake takes %.2fx the orders per second it takes without** (target at least %.1fx: %s).\n\n", ratio, PromoTarget, verdict)
	check := fmt.Sprintf("Check: every unit held on the promoted SKU is counted as promotional in Redis (%d units): passed.", r.promoted)
	if r.checkErr != nil {
		check = "Check **failed**: " + r.checkErr.Error()
	}
	b.WriteString(check + "\n")
	b.WriteString(end + "\n")
	return b.String()
}

// WritePromo writes rep's section into path, keeping the rest of the file.
func WritePromo(path string, rep *PromoReport) error {
	if rep == nil {
		return errors.New("no promotion benchmark report")
	}
	return WriteNamedSection(path, PromoSectionName, rep.Markdown())
}

package orderctl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/orderpipe/orderpipe/internal/bench"
	"github.com/orderpipe/orderpipe/internal/httpapi"
	"github.com/orderpipe/orderpipe/internal/order"
	"github.com/orderpipe/orderpipe/internal/postgres"
	"github.com/orderpipe/orderpipe/internal/pricing"
	"github.com/orderpipe/orderpipe/internal/promotion"
	"github.com/orderpipe/orderpipe/internal/redisstore"
)

// promoFlags are the flags that describe a promotion (create sets them, update changes those given).
type promoFlags struct {
	id, name        string
	percent         int
	fixed           int64
	skus            []string
	category        string
	starts, ends    string
	tz              string
	stockCap, limit int64
	overCap         string
	output          string
}

func (f *promoFlags) register(cmd *cobra.Command, create bool) {
	fl := cmd.Flags()
	if create {
		fl.StringVar(&f.id, "id", "", "promotion id (lower-case letters, digits, dashes); generated when empty")
	}
	fl.StringVar(&f.name, "name", "", "name shown to merchandisers")
	fl.IntVar(&f.percent, "percent", 0, "percent off the base price (1-99)")
	fl.Int64Var(&f.fixed, "fixed-price", 0, "fixed unit price in minor units (instead of --percent)")
	fl.StringSliceVar(&f.skus, "skus", nil, "comma-separated SKUs the promotion prices")
	fl.StringVar(&f.category, "category", "", "price every SKU of this category (instead of --skus)")
	fl.StringVar(&f.starts, "starts", "", "start, inclusive: RFC 3339 (2026-12-01T08:00:00+01:00) or \"2026-12-01 08:00\" in --tz")
	fl.StringVar(&f.ends, "ends", "", "end, exclusive: same formats as --starts")
	fl.Int64Var(&f.stockCap, "cap", 0, "promotional units per SKU (0: no cap)")
	fl.StringVar(&f.overCap, "over-cap", "", "units beyond the cap or a customer's limit: base (sold at the base price) or refuse (order refused); default base")
	fl.Int64Var(&f.limit, "limit", 0, "promotional units per customer and SKU (0: no limit)")
	f.registerView(cmd)
}

func (f *promoFlags) registerView(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.tz, "tz", "", "IANA time zone to read --starts/--ends in and to show times in (default: the promotion's own zone; on create it becomes the promotion's zone, UTC if empty)")
	cmd.Flags().StringVar(&f.output, "output", "table", "table or json")
}

func (f *promoFlags) location() (*time.Location, error) {
	if f.tz == "" {
		return nil, nil
	}
	loc, err := time.LoadLocation(f.tz)
	if err != nil {
		return nil, usageErr("--tz %q: %v", f.tz, err)
	}
	return loc, nil
}

// parseInstant reads RFC 3339 (with its own offset) or a local date-time in loc (UTC when nil).
func parseInstant(flag, s string, loc *time.Location) (time.Time, error) {
	if loc == nil {
		loc = time.UTC
	}
	t, err := parseWhen(s, loc)
	if err != nil {
		return time.Time{}, usageErr("--%s %q: want RFC 3339 (2026-12-01T08:00:00+01:00) or \"2026-12-01 08:00\" (read in --tz)", flag, s)
	}
	return t, nil
}

// apply sets the flags given on the command line on p.
func (f *promoFlags) apply(cmd *cobra.Command, p *promotion.Promotion) error {
	loc, err := f.location()
	if err != nil {
		return err
	}
	ch := cmd.Flags().Changed
	if ch("name") {
		p.Name = f.name
	}
	if ch("percent") && ch("fixed-price") {
		return usageErr("give --percent or --fixed-price, not both")
	}
	if ch("percent") {
		p.Kind, p.PercentOff, p.FixedPriceMinor = promotion.KindPercent, f.percent, 0
	}
	if ch("fixed-price") {
		p.Kind, p.FixedPriceMinor, p.PercentOff = promotion.KindFixed, f.fixed, 0
	}
	if ch("skus") && ch("category") {
		return usageErr("give --skus or --category, not both")
	}
	if ch("skus") {
		p.SKUs, p.Category = f.skus, ""
	}
	if ch("category") {
		p.Category, p.SKUs = f.category, nil
	}
	if ch("starts") {
		if p.StartsAt, err = parseInstant("starts", f.starts, loc); err != nil {
			return err
		}
	}
	if ch("ends") {
		if p.EndsAt, err = parseInstant("ends", f.ends, loc); err != nil {
			return err
		}
	}
	if ch("cap") {
		p.StockCap = f.stockCap
	}
	if ch("limit") {
		p.PerCustomerLimit = f.limit
	}
	if ch("over-cap") {
		p.OverCap = promotion.OverCap(f.overCap)
	}
	if err := checkOutput(f.output); err != nil {
		return err
	}
	return nil
}

func (e *env) promoService(ctx context.Context) (*pricing.Service, func(), error) {
	pool, err := e.pool(ctx)
	if err != nil {
		return nil, nil, err
	}
	rdb := redisstore.NewClient(e.cfg.Redis)
	store := redisstore.New(rdb, e.cfg.RedisKeyPrefix)
	promos := postgres.NewPromotionStore(pool)
	pub := pricing.NewPublisher(pricing.Stores{Catalog: postgres.NewCatalogStore(pool), Promotions: promos}, store)
	return &pricing.Service{Store: promos, Publisher: pub}, func() { _ = rdb.Close(); pool.Close() }, nil
}

// promoErr turns domain errors into clear command errors.
func promoErr(err error) error {
	var inv *order.InvalidError
	switch {
	case errors.As(err, &inv):
		parts := make([]string, len(inv.Problems))
		for i, p := range inv.Problems {
			parts[i] = flagOf(p.Field) + ": " + p.Detail
		}
		return usageErr("invalid promotion: %s", strings.Join(parts, "; "))
	case errors.Is(err, postgres.ErrNotFound):
		return &exitError{code: ExitError, err: errors.New("no promotion has this id")}
	case errors.Is(err, postgres.ErrConflict):
		return &exitError{code: ExitError, err: errors.New("a promotion with this id exists; change it with orderctl promo update")}
	}
	return err
}

// flagOf names the flag behind a validation field.
func flagOf(field string) string {
	switch {
	case field == "percent_off":
		return "--percent"
	case field == "fixed_price_minor":
		return "--fixed-price"
	case field == "starts_at":
		return "--starts"
	case field == "ends_at":
		return "--ends"
	case field == "stock_cap":
		return "--cap"
	case field == "per_customer_limit":
		return "--limit"
	case field == "over_cap":
		return "--over-cap"
	case field == "time_zone":
		return "--tz"
	case field == "kind":
		return "--percent/--fixed-price"
	case strings.HasPrefix(field, "skus"):
		return "--skus " + strings.TrimPrefix(field, "skus")
	}
	return "--" + field
}

func (e *env) promoCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "promo",
		Short: "Schedule, list, change and end promotions (prices are published to the api instances at once)",
		Long: "Promotions live in Postgres (DATABASE_URL); their precomputed prices are published to Redis\n" +
			"(REDIS_ADDRS, REDIS_KEY_PREFIX) and every api reloads them at once. Times are stored in UTC and shown\n" +
			"in the promotion's zone, or in --tz. The window is start inclusive, end exclusive, to the millisecond of\n" +
			"each order's acceptance by the api. See docs/promotions.md.",
	}
	cmd.AddCommand(e.promoCreateCmd(), e.promoListCmd(), e.promoShowCmd(), e.promoUpdateCmd(), e.promoEndCmd())
	return cmd
}

func (e *env) promoCreateCmd() *cobra.Command {
	var f promoFlags
	cmd := &cobra.Command{
		Use:   "create --name NAME (--percent N | --fixed-price MINOR) (--skus A,B | --category C) --starts T --ends T",
		Short: "Create a promotion",
		Example: "  orderctl promo create --id winter-tyres-30 --name 'Winter tyres -30%' --percent 30 --category tyres \\\n" +
			"    --starts '2026-12-01 08:00' --ends '2026-12-01 20:00' --tz Europe/Berlin --cap 500 --limit 4",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p := promotion.Promotion{ID: f.id, TimeZone: f.tz}
			if p.ID == "" {
				p.ID = httpapi.NewPromotionID()
			}
			if err := f.apply(cmd, &p); err != nil {
				return err
			}
			svc, done, err := e.promoService(cmd.Context())
			if err != nil {
				return err
			}
			defer done()
			stored, err := svc.Create(cmd.Context(), p)
			return e.printWritten(f, stored, err)
		},
	}
	f.register(cmd, true)
	return cmd
}

func (e *env) promoUpdateCmd() *cobra.Command {
	var f promoFlags
	cmd := &cobra.Command{
		Use:   "update ID [flags]",
		Short: "Change the given fields of a promotion (its prices are republished)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			svc, done, err := e.promoService(cmd.Context())
			if err != nil {
				return err
			}
			defer done()
			p, err := svc.Get(cmd.Context(), args[0])
			if err != nil {
				return promoErr(err)
			}
			if f.tz == "" {
				f.tz = p.TimeZone // read local times in the promotion's zone
			}
			if err := f.apply(cmd, &p); err != nil {
				return err
			}
			stored, err := svc.Update(cmd.Context(), p)
			return e.printWritten(f, stored, err)
		},
	}
	f.register(cmd, false)
	return cmd
}

func (e *env) promoEndCmd() *cobra.Command {
	return e.promoByIDCmd("end ID", "End a promotion now (it stays listed, for audit and reports)", (*pricing.Service).End, e.printWritten)
}

// promoByIDCmd is a command on one promotion given by id: do reads or changes it through the
// service, print shows the outcome.
func (e *env) promoByIDCmd(use, short string,
	do func(*pricing.Service, context.Context, string) (promotion.Promotion, error),
	print func(promoFlags, promotion.Promotion, error) error) *cobra.Command {
	var f promoFlags
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.apply(cmd, &promotion.Promotion{}); err != nil {
				return err
			}
			svc, done, err := e.promoService(cmd.Context())
			if err != nil {
				return err
			}
			defer done()
			p, err := do(svc, cmd.Context(), args[0])
			return print(f, p, err)
		},
	}
	f.registerView(cmd)
	return cmd
}

// printWritten finishes a command that stored a promotion: a store error is the command's error;
// a promotion stored but whose prices could not be published yet (pricing.ErrNotPublished) is
// printed and its error still returned, so the exit code tells.
func (e *env) printWritten(f promoFlags, p promotion.Promotion, err error) error {
	if err != nil && !errors.Is(err, pricing.ErrNotPublished) {
		return promoErr(err)
	}
	if perr := printPromos(e.stdout, f, p); perr != nil {
		return perr
	}
	return err
}

func (e *env) promoShowCmd() *cobra.Command {
	return e.promoByIDCmd("show ID", "Show a promotion", (*pricing.Service).Get, func(f promoFlags, p promotion.Promotion, err error) error {
		if err != nil {
			return promoErr(err)
		}
		return printPromos(e.stdout, f, p)
	})
}

func (e *env) promoListCmd() *cobra.Command {
	var f promoFlags
	var all bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List scheduled and active promotions (--all: ended ones too)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := f.apply(cmd, &promotion.Promotion{}); err != nil {
				return err
			}
			svc, done, err := e.promoService(cmd.Context())
			if err != nil {
				return err
			}
			defer done()
			ps, err := svc.List(cmd.Context(), !all)
			if err != nil {
				return err
			}
			return printPromos(e.stdout, f, ps...)
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "include ended promotions")
	f.registerView(cmd)
	return cmd
}

// printPromos writes promotions as a table (times in --tz, else each promotion's zone, with the
// zone shown) or as the API's JSON documents.
func printPromos(w io.Writer, f promoFlags, ps ...promotion.Promotion) error {
	now := time.Now()
	if f.output == "json" {
		docs := make([]httpapi.PromotionDoc, len(ps))
		for i, p := range ps {
			docs[i] = httpapi.DocOf(p, now)
		}
		if len(ps) == 1 {
			return writeJSON(w, docs[0])
		}
		return writeJSON(w, docs)
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATUS\tPRICE\tSCOPE\tSTARTS\tENDS\tCAP\tLIMIT\tNAME")
	for _, p := range ps {
		zone := f.tz
		if zone == "" {
			zone = p.TimeZone
		}
		loc, err := time.LoadLocation(zone)
		if err != nil {
			loc = time.UTC
		}
		price := fmt.Sprintf("-%d%%", p.PercentOff)
		if p.Kind == promotion.KindFixed {
			price = fmt.Sprintf("%d.%02d", p.FixedPriceMinor/100, p.FixedPriceMinor%100)
		}
		scope := "category " + p.Category
		if p.Category == "" {
			scope = strings.Join(p.SKUs, ",")
		}
		capS, limS := "-", "-"
		if p.StockCap > 0 {
			capS = fmt.Sprintf("%d (%s)", p.StockCap, p.OverCap)
		}
		if p.PerCustomerLimit > 0 {
			limS = fmt.Sprint(p.PerCustomerLimit)
		}
		const layout = "2006-01-02 15:04:05.000 -07:00 MST"
		ends := p.End().In(loc).Format(layout)
		if p.EndedAt != nil && p.EndedAt.Before(p.EndsAt) {
			ends += " (ended early)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", p.ID, p.Status(now), price, scope,
			p.StartsAt.In(loc).Format(layout), ends, capS, limS, p.Name)
	}
	return tw.Flush()
}

func (e *env) benchPromoCmd() *cobra.Command {
	var (
		out      string
		duration time.Duration
		workers  int
		rounds   int
	)
	cmd := &cobra.Command{
		Use:   "promo",
		Short: "Benchmark the intake with an active promotion on the hot SKU against the same intake without",
		Long: "Runs one api in this process (in-process kfake broker) against Postgres (DATABASE_URL; a temporary\n" +
			"schema) and one Redis node (REDIS_ADDRS; a temporary key prefix), and alternates closed-loop runs of\n" +
			"--duration between a SKU without a promotion and an identical SKU priced by an active promotion with a\n" +
			"stock cap and a per-customer limit, --rounds times each. Writes the section between <!-- promo:begin -->\n" +
			"and <!-- promo:end --> of --out (- prints it): throughput per round, the ratio with/without (target at\n" +
			"least 0.9) and a check of the promotion counters. Exits 1 if the check failed (the report is still written).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if duration < time.Second || workers < 1 || rounds < 1 {
				return usageErr("--duration must be at least 1s, --workers and --rounds at least 1")
			}
			ctx := cmd.Context()
			if err := createDatabase(ctx, e.cfg.DatabaseURL); err != nil {
				return err
			}
			rep, err := bench.RunPromo(ctx, bench.Config{
				DatabaseURL: e.cfg.DatabaseURL, Redis: e.cfg.Redis, Duration: duration, Workers: workers,
				Command:  strings.TrimSpace("orderctl bench promo " + strings.Join(flagArgs(cmd), " ")),
				Progress: e.stdout,
			}, rounds)
			if rep == nil {
				return err
			}
			if out == "" || out == "-" {
				fmt.Fprint(e.stdout, rep.Markdown())
			} else {
				if werr := bench.WritePromo(out, rep); werr != nil {
					return errors.Join(err, werr)
				}
				fmt.Fprintf(e.stdout, "wrote %s: with/without promotion %.2fx\n", out, rep.Ratio())
			}
			return err
		},
	}
	cmd.Flags().StringVar(&out, "out", "docs/benchmarks.md", "Markdown file to write the promo section into (- prints it)")
	cmd.Flags().DurationVar(&duration, "duration", 5*time.Second, "length of each closed-loop run")
	cmd.Flags().IntVar(&workers, "workers", 64, "requests kept in flight")
	cmd.Flags().IntVar(&rounds, "rounds", 3, "runs per arm, alternating")
	return cmd
}

// Package api is the api process: it loads configuration, opens Postgres, Redis and Kafka,
// serves the HTTP API, and shuts down in reverse order (drain, stop accepting, finish in-flight
// requests, flush the producer, close clients) when its context ends.
package api

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"github.com/orderpipe/orderpipe/internal/admin"
	"github.com/redis/go-redis/v9"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"github.com/oklog/run"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderpipe/orderpipe/internal/auth"
	"github.com/orderpipe/orderpipe/internal/catalog"
	"github.com/orderpipe/orderpipe/internal/config"
	"github.com/orderpipe/orderpipe/internal/event"
	"github.com/orderpipe/orderpipe/internal/httpapi"
	"github.com/orderpipe/orderpipe/internal/intake"
	"github.com/orderpipe/orderpipe/internal/kafka"
	"github.com/orderpipe/orderpipe/internal/postgres"
	"github.com/orderpipe/orderpipe/internal/pricing"
	"github.com/orderpipe/orderpipe/internal/redisstore"
	"github.com/orderpipe/orderpipe/internal/tradeaccounts"
	"github.com/orderpipe/orderpipe/internal/warehouses"
)

// Run runs the api until ctx ends. args are the command-line arguments after the program name
// (only -h is understood: everything else is configured by environment variables).
func Run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	var cfg Config
	if help, err := config.Setup(args, getenv, stdout, "api", "the api", "the orderpipe intake API (HTTP, Echo)", &cfg); help || err != nil {
		return err
	}
	log := cfg.Logger(stdout, "api")

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	pool, err := postgres.Open(ctx, cfg.DatabaseURL, cfg.DatabaseMaxConns)
	if err != nil {
		return err
	}
	defer pool.Close()

	rdb := redisstore.NewClient(cfg.Redis)
	defer rdb.Close()
	// The intake's Redis calls go through the auto-pipeliner; rdb stays for the rest (it is
	// what closes the auto-pipeliner too).
	var hot redis.UniversalClient = rdb
	if cfg.RedisAutoPipeline {
		ap, err := redisstore.AutoPipeline(rdb)
		if err != nil {
			return err
		}
		hot = ap
	}
	store := redisstore.New(hot, cfg.RedisKeyPrefix)

	kcl, err := kafka.NewClient(kafka.ClientConfig{
		Brokers: cfg.KafkaBrokers, ClientID: cfg.KafkaClientID + "-api",
		ProduceTimeout: cfg.KafkaProduceTimeout, Registerer: reg,
	})
	if err != nil {
		return err
	}
	defer kcl.Close()

	validator, err := event.NewValidator()
	if err != nil {
		return fmt.Errorf("load event schemas: %w", err)
	}

	catalogStore := postgres.NewCatalogStore(pool)
	cat := catalog.New(func(ctx context.Context) ([]catalog.Product, error) {
		ps, err := catalogStore.All(ctx)
		if err != nil {
			return nil, err
		}
		out := make([]catalog.Product, len(ps))
		for i, p := range ps {
			out[i] = productFromRow(p)
		}
		return out, nil
	})
	keyStore := postgres.NewKeyStore(pool)
	keys := auth.NewKeys(func(ctx context.Context) ([]auth.Key, error) {
		rows, err := keyStore.All(ctx)
		if err != nil {
			return nil, err
		}
		out := make([]auth.Key, len(rows))
		for i, k := range rows {
			out[i] = auth.Key{ID: k.ID, Name: k.Name, SecretHash: k.SecretHash, Scopes: k.Scopes, Revoked: k.RevokedAt != nil}
		}
		return out, nil
	})
	tradeStore := postgres.NewTradeAccountStore(pool)
	trade := tradeaccounts.New(func(ctx context.Context) ([]string, error) {
		as, err := tradeStore.All(ctx)
		if err != nil {
			return nil, err
		}
		ids := make([]string, len(as))
		for i, a := range as {
			ids[i] = a.CustomerID
		}
		return ids, nil
	})
	inventory := postgres.NewInventoryStore(pool)
	registry := warehouses.New(func(ctx context.Context) ([]warehouses.Warehouse, error) {
		ws, err := inventory.Warehouses(ctx)
		if err != nil {
			return nil, err
		}
		out := make([]warehouses.Warehouse, len(ws))
		for i, w := range ws {
			out[i] = warehouses.Warehouse{ID: w.ID, Secret: w.Secret}
		}
		return out, nil
	})
	if err := registry.Refresh(ctx); err != nil {
		return err
	}
	if err := cat.Refresh(ctx); err != nil {
		return err
	}
	if err := trade.Refresh(ctx); err != nil {
		return err
	}
	if err := keys.Refresh(ctx); err != nil {
		return err
	}

	// Published price timelines (promotions), kept fresh by prices-changed announcements; this
	// process's own publishes reload it at once.
	prices := pricing.NewCache(store.Prices, log)
	if err := prices.Refresh(ctx); err != nil {
		// Orders are refused (503) and /readyz fails until the first load succeeds.
		log.Warn("price timelines not loaded; retrying", "err", err)
	}
	promoStore := postgres.NewPromotionStore(pool)
	publisher := pricing.NewPublisher(pricing.Stores{Catalog: catalogStore, Promotions: promoStore}, store)
	publisher.OnPublish = prices.Reload
	promos := &pricing.Service{Store: promoStore, Publisher: publisher}
	scheduler := &pricing.Scheduler{
		Publisher: publisher, Cache: prices, Redis: store, Owner: schedulerOwner(),
		Interval: cfg.PromoSchedulerTick, Full: cfg.PromoRepublish, Log: log,
	}

	// Availability cache and sold-out fast path, kept fresh by stock-changed announcements.
	view := httpapi.NewStockView(store.Availability, cfg.InventoryMaxAge, reg)
	svc := intake.New(intake.Config{
		HoldTTL: cfg.HoldTTL, ProduceTimeout: cfg.KafkaProduceTimeout,
		Currency: cfg.Currency, ShippingStandardMinor: cfg.ShippingStandardMinor,
		ShippingExpressMinor: cfg.ShippingExpressMinor, Source: cfg.EventSource, SoldOut: view,
		Prices: prices, TradeAccounts: trade,
	}, store, kcl, cat, validator, log, reg)

	orders := postgres.NewOrderStore(pool)
	stock := postgres.NewStockStore(pool)
	processing := postgres.NewProcessingStore(pool)
	reports := postgres.NewReportStore(pool)
	proxies, err := cfg.trustedProxies() // validated at start
	if err != nil {
		return err
	}
	var draining atomic.Bool
	e, err := httpapi.New(httpapi.Config{
		MaxBodyBytes: cfg.MaxBodyBytes, MaxLines: cfg.MaxLines, MaxQuantity: cfg.MaxQuantity,
		IdempotencyTTL: cfg.IdempotencyTTL, IdempotencyLease: cfg.IdempotencyLease, PendingTTL: cfg.PendingTTL,
		RateLimit: cfg.RateLimit, RateBurst: cfg.RateBurst, LowStock: cfg.LowStock,
		AuthFailureRate: cfg.AuthFailureRate, AuthFailureBurst: cfg.AuthFailureBurst, TrustedProxies: proxies,
		InventoryMaxAge: cfg.InventoryMaxAge, SoldOutGate: cfg.SoldOutGate, ProductsMaxAge: cfg.ProductsMaxAge,
	}, httpapi.Deps{
		Prices: prices, Promotions: promos,
		TradeAccounts: &httpapi.TradeAccounts{
			Add: tradeStore.Add, Remove: tradeStore.Remove, All: tradeStore.All, Changed: trade.Refresh,
		},
		Repriced: func(ctx context.Context, sku string) error {
			_, err := publisher.Recompute(ctx, []string{sku})
			return err
		},
		Keys: keys, Catalog: cat, Intake: svc, Store: view.Wrap(store), SoldOut: view,
		OrderByID: func(ctx context.Context, id string) (intake.View, bool, error) {
			o, ok, err := orders.Get(ctx, id)
			if err != nil || !ok {
				return intake.View{}, ok, err
			}
			return viewFromRow(o), true, nil
		},
		DeadLetter: func(ctx context.Context, id string) (*intake.DeadLetter, error) {
			d, ok, err := processing.DeadLetterOf(ctx, id)
			if err != nil || !ok {
				return nil, err
			}
			return intake.NewDeadLetter(d.ErrorClass, d.At), nil // d.Error stays with ops
		},
		SaveProduct: func(ctx context.Context, p catalog.Product) (catalog.Product, error) {
			row, err := catalogStore.Upsert(ctx, productToRow(p))
			if err != nil {
				return catalog.Product{}, err
			}
			// A new product starts with no stock: zero in Postgres and in Redis, so orders for
			// it get an honest 409 until stock arrives (never overwriting live counters).
			if _, err := stock.SeedMissing(ctx, map[string]int64{p.SKU: 0}); err != nil {
				return catalog.Product{}, err
			}
			if _, err := store.SeedStock(ctx, map[string]int64{p.SKU: 0}); err != nil {
				return catalog.Product{}, err
			}
			return productFromRow(row), nil
		},
		Warehouse: httpapi.WarehouseDeps{
			Secret: registry.Secret,
			Publish: func(ctx context.Context, recs []*kgo.Record) error {
				ctx, cancel := context.WithTimeout(ctx, cfg.KafkaProduceTimeout)
				defer cancel()
				return kcl.ProduceSync(ctx, recs...).FirstErr()
			},
			Validator: validator,
		},
		SalesReport: func(ctx context.Context, q httpapi.SalesQuery) ([]httpapi.SalesRow, error) {
			return salesReport(ctx, reports, q)
		},
		Checks: []httpapi.Check{
			{Name: "postgres", Fn: pool.Ping},
			{Name: "redis", Fn: store.Ping},
			{Name: "prices", Fn: func(context.Context) error {
				if !prices.Ready() {
					return errors.New("promotional price timelines not loaded yet")
				}
				return nil
			}},
			{Name: "kafka", Fn: func(ctx context.Context) error { return kafka.Ping(ctx, kcl) }},
		},
		Draining: draining.Load,
		Log:      log,
		Registry: reg,
		Gatherer: reg,
	})
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           e,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       cfg.RequestTimeout,
		WriteTimeout:      cfg.RequestTimeout + time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on API_ADDR %s: %w", cfg.Addr, err)
	}
	log.Info("listening", "addr", ln.Addr().String(), "url", "http://"+loopbackURL(ln.Addr()))

	var g run.Group
	{
		g.Add(func() error {
			if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("serve http: %w", err)
			}
			return nil
		}, func(error) {
			// Drain: fail readiness first so load balancers stop routing here, then stop
			// accepting and wait for in-flight requests, then flush the producer.
			draining.Store(true)
			log.Info("draining", "delay", cfg.DrainDelay.String())
			time.Sleep(cfg.DrainDelay)
			sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
			defer cancel()
			if err := srv.Shutdown(sctx); err != nil {
				log.Error("http shutdown", "err", err)
			}
			if err := kcl.Flush(sctx); err != nil {
				log.Error("flush producer", "err", err)
			}
		})
	}
	refreshCtx, stopRefresh := context.WithCancel(context.Background())
	{
		g.Add(func() error {
			return cat.Run(refreshCtx, cfg.CatalogRefresh, func(err error) { log.Warn("catalog refresh", "err", err) })
		}, func(error) { stopRefresh() })
		g.Add(func() error {
			return keys.Run(refreshCtx, cfg.CatalogRefresh, func(err error) { log.Warn("api key refresh", "err", err) })
		}, func(error) { stopRefresh() })
		g.Add(func() error {
			return trade.Run(refreshCtx, cfg.CatalogRefresh, func(err error) { log.Warn("trade account refresh", "err", err) })
		}, func(error) { stopRefresh() })
		g.Add(func() error {
			return registry.Run(refreshCtx, cfg.CatalogRefresh, func(err error) { log.Warn("warehouse registry refresh", "err", err) })
		}, func(error) { stopRefresh() })
		g.Add(func() error { return view.Run(refreshCtx, store.SubscribeStockChanged) }, func(error) { stopRefresh() })
		g.Add(func() error { return prices.Run(refreshCtx, cfg.CatalogRefresh, store.SubscribePricesChanged) }, func(error) { stopRefresh() })
		g.Add(func() error { return scheduler.Run(refreshCtx) }, func(error) { stopRefresh() })
	}
	g.Add(admin.UntilDone(ctx))
	err = g.Run()
	log.Info("stopped")
	return err
}

// schedulerOwner names this process in the promotion scheduler's Redis lock.
func schedulerOwner() string {
	host, _ := os.Hostname()
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s/%d/%x", host, os.Getpid(), b)
}

func loopbackURL(a net.Addr) string {
	if tcp, ok := a.(*net.TCPAddr); ok && tcp.IP.IsUnspecified() {
		return fmt.Sprintf("127.0.0.1:%d", tcp.Port)
	}
	return a.String()
}

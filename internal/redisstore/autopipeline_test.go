package redisstore_test

import (
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/orderpipe/orderpipe/internal/config"
	"github.com/orderpipe/orderpipe/internal/redisstore"
	"github.com/orderpipe/orderpipe/internal/testenv"
)

// TestAutoPipelineSharesOneConnection runs the intake's calls (idempotency begin, reservation,
// idempotency finish with the pending snapshot) of many concurrent orders through the
// auto-pipeliner, as the api does: every order gets its own correct answer, the books balance,
// and all of it travels over one connection, where the plain pool opens one per concurrent call.
func TestAutoPipelineSharesOneConnection(t *testing.T) {
	t.Parallel()
	raw, prefix := testenv.Redis(t)
	const orders, stock = 200, 150

	run := func(t *testing.T, name string, auto bool) (conns int) {
		accepted := 0
		proxy := testenv.NewProxy(t, raw.Options().Addr)
		client := redisstore.NewClient(config.Redis{
			RedisAddrs: []string{proxy.Addr()}, RedisTimeout: 2 * time.Second, RedisPoolSize: 64,
		})
		t.Cleanup(func() { _ = client.Close() })
		var rdb redis.UniversalClient = client
		if auto {
			ap, err := redisstore.AutoPipeline(client)
			if err != nil {
				t.Fatalf("AutoPipeline: %v", err)
			}
			rdb = ap
		}
		store := redisstore.New(rdb, prefix+name+":")
		sku := "BRK-" + name
		if _, err := store.SeedStock(t.Context(), map[string]int64{sku: stock}); err != nil {
			t.Fatalf("SeedStock: %v", err)
		}
		before := proxy.Accepted()

		start := make(chan struct{})
		var wg sync.WaitGroup
		var mu sync.Mutex
		for i := range orders {
			wg.Go(func() {
				<-start
				ctx := t.Context()
				id, key := "order-"+strconv.Itoa(i), "key-"+strconv.Itoa(i)
				b, err := store.BeginIdempotent(ctx, "api", key, "hash", id, time.Minute, time.Hour, time.Now())
				if err != nil || b.Outcome != redisstore.IdemNew || b.ID != id {
					t.Errorf("begin %s: %+v, %v; want new %s", key, b, err, id)
					return
				}
				res, err := store.Reserve(ctx, id, []redisstore.Line{{SKU: sku, Qty: 1}}, time.Now().Add(time.Minute))
				if err != nil {
					t.Errorf("reserve %s: %v", id, err)
					return
				}
				status := 409
				if res.OK {
					status = 202
					mu.Lock()
					accepted++
					mu.Unlock()
				}
				err = store.FinishIdempotent(ctx, "api", key, status, "application/json", []byte(`{"order_id":"`+id+`"}`),
					redisstore.Snapshot{OrderID: id, Doc: []byte(`{"status":"pending"}`), TTL: time.Hour})
				if err != nil {
					t.Errorf("finish %s: %v", key, err)
				}
			})
		}
		close(start)
		wg.Wait()
		conns = proxy.Accepted() - before

		got, err := store.Availability(t.Context(), sku)
		if err != nil {
			t.Fatalf("Availability: %v", err)
		}
		if got.ATP != 0 || got.Held != stock || accepted != stock {
			t.Fatalf("%s: atp %d held %d, %d accepted; want 0, %d, %d", name, got.ATP, got.Held, accepted, stock, stock)
		}
		for i := range orders {
			b, err := store.BeginIdempotent(t.Context(), "api", "key-"+strconv.Itoa(i), "hash", "other", time.Minute, time.Hour, time.Now())
			if err != nil || b.Outcome != redisstore.IdemReplay || b.ID != "order-"+strconv.Itoa(i) {
				t.Fatalf("%s: replay of key-%d: %+v, %v", name, i, b, err)
			}
		}
		return conns
	}

	autoConns := run(t, "auto", true)
	plainConns := run(t, "plain", false)
	// The auto-pipeliner holds one connection for its stream; a command it diverts (none of
	// these) would take a pooled one.
	if autoConns > 2 {
		t.Fatalf("auto-pipelined: %d new connections for %d concurrent orders, want at most 2", autoConns, orders)
	}
	if plainConns <= autoConns {
		t.Fatalf("plain pool: %d new connections, auto-pipelined %d: the comparison shows nothing", plainConns, autoConns)
	}
	t.Logf("new connections for %d concurrent orders: auto-pipelined %d, plain pool %d", orders, autoConns, plainConns)
}

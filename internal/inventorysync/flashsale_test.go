package inventorysync_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/orderpipe/orderpipe/internal/api"
	"github.com/orderpipe/orderpipe/internal/auth"
	"github.com/orderpipe/orderpipe/internal/event"
	"github.com/orderpipe/orderpipe/internal/orderworker"
	"github.com/orderpipe/orderpipe/internal/paysim"
	"github.com/orderpipe/orderpipe/internal/postgres"
	"github.com/orderpipe/orderpipe/internal/testenv"
)

// A flash sale on a SKU whose warehouse reported 20 units; 30 more arrive in the middle of it.
// Buyers order through the real api, order-worker decides, inventory-sync applies the arrival:
// exactly 50 orders are accepted and confirmed (every arriving unit was sold, none twice), and
// afterwards Postgres and Redis agree. Then shipments of five orders ship them.
func TestStockArrivingDuringAFlashSaleIsSold(t *testing.T) {
	t.Parallel()
	const sku = "HOT-DEAL-1"
	s := setup(t, []string{sku}, map[string]int64{sku: 0})
	ctx := t.Context()
	sim := paysim.New(paysim.Config{Latency: time.Millisecond, Seed: 1})
	simSrv := httptest.NewServer(sim.Handler())
	t.Cleanup(simSrv.Close)
	tok, k, err := auth.Generate("checkout", []string{auth.ScopeOrdersWrite})
	if err != nil {
		t.Fatal(err)
	}
	if err := postgres.NewKeyStore(s.pool).Create(ctx, postgres.APIKey{ID: k.ID, Name: k.Name, SecretHash: k.SecretHash, Scopes: k.Scopes}); err != nil {
		t.Fatal(err)
	}
	apiProc := testenv.Start(t, "api", api.Run, s.env(map[string]string{"API_ADDR": "127.0.0.1:0", "API_DRAIN_DELAY": "0s", "RATE_LIMIT_PER_SECOND": "0"}))
	testenv.Start(t, "order-worker", orderworker.Run, s.env(map[string]string{
		"WORKER_ADMIN_ADDR": "127.0.0.1:0", "PAYMENT_URL": simSrv.URL, "ORDER_WORKER_RETRY_IN_PLACE": "2s",
		"ORDER_WORKER_RETRY_TIERS": "1s,2s", "ORDER_WORKER_MAX_STARVE": "500ms",
	}))
	s.sync(t, nil)

	s.kcat(t, levelMsg("hot-1", "WH-1", sku, 1, 20))
	waitATP := func(want int64) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			st, err := s.redis.Availability(ctx, sku)
			if err == nil && st.Known && st.ATP+st.Held >= want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("availability: got %+v, %v; want %d units", st, err, want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitATP(20)

	var accepted, refused atomic.Int64
	var mu sync.Mutex
	ids := map[string]bool{}
	client := &http.Client{Timeout: 10 * time.Second}
	buy := func() {
		body, _ := json.Marshal(map[string]any{
			"customer_id": "c-" + uuid.NewString()[:8], "email": "buyer@example.com",
			"lines":            []map[string]any{{"sku": sku, "quantity": 1}},
			"payment":          map[string]string{"method": "card", "token": "tok_visa_4242"},
			"shipping_address": map[string]string{"name": "Ada Buyer", "line1": "Hauptstr. 1", "city": "Berlin", "postal_code": "10115", "country": "DE"},
		})
		req, _ := http.NewRequest(http.MethodPost, apiProc.URL+"/v1/orders", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Idempotency-Key", uuid.NewString())
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			t.Error(err)
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		switch resp.StatusCode {
		case http.StatusAccepted:
			var v struct {
				OrderID string `json:"order_id"`
			}
			_ = json.Unmarshal(b, &v)
			mu.Lock()
			ids[v.OrderID] = true
			mu.Unlock()
			accepted.Add(1)
		case http.StatusConflict:
			refused.Add(1)
		default:
			t.Errorf("order: %d %s", resp.StatusCode, b)
		}
	}

	// Sixteen buyers keep ordering. Once 10 units are sold, 30 more arrive.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				buy()
				time.Sleep(2 * time.Millisecond)
			}
		})
	}
	deadline := time.Now().Add(60 * time.Second)
	for accepted.Load() < 10 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	s.kcat(t, adjustMsg("hot-2", "WH-1", sku, 2, 30, event.ReasonReceived))
	for accepted.Load() < 50 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	// Sold out again: keep the buyers at it a little longer; nothing more may be accepted.
	refusedBefore := refused.Load()
	for refused.Load() < refusedBefore+200 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if got := accepted.Load(); got != 50 {
		t.Fatalf("accepted %d orders, want exactly 50 (20 on the shelf + 30 arrived)", got)
	}

	// Every accepted order is confirmed; Postgres and Redis agree at rest.
	deadline = time.Now().Add(60 * time.Second)
	for {
		var confirmed int
		if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM orders WHERE status = 'confirmed'`).Scan(&confirmed); err != nil {
			t.Fatal(err)
		}
		if confirmed == 50 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of 50 orders confirmed", confirmed)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got, want := s.stock(t, sku), (stockRow{OnHand: 50, Allocated: 50}); got != want {
		t.Fatalf("Postgres: got %+v, want %+v", got, want)
	}
	waitRedis := func(atp, held int64) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			st, err := s.redis.Availability(ctx, sku)
			if err == nil && st.ATP == atp && st.Held == held {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("Redis: got %+v, %v; want atp %d held %d", st, err, atp, held)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitRedis(0, 0)

	// Five orders ship: they become shipped and are announced; availability does not move.
	var shipped []string
	for id := range ids {
		if len(shipped) == 5 {
			break
		}
		shipped = append(shipped, id)
	}
	var ms []msg
	for i, id := range shipped {
		ms = append(ms, shipMsg(fmt.Sprintf("hot-ship-%d", i), "WH-1", sku, int64(3+i), id, 1))
	}
	s.kcatAll(t, map[string][]msg{sku: ms})
	s.waitSettled(t, "inventory-sync", 30*time.Second)
	for _, id := range shipped {
		if st := s.orderStatus(t, id); st != "shipped" {
			t.Fatalf("order %s: got %s, want shipped", id, st)
		}
	}
	if got, want := s.stock(t, sku), (stockRow{OnHand: 45, Allocated: 45}); got != want {
		t.Fatalf("Postgres after shipping: got %+v, want %+v", got, want)
	}
	waitRedis(0, 0)
	announced := map[string]bool{}
	for _, r := range s.records(t, event.TopicOrderEvents) {
		env, err := event.FromRecord(r)
		if err != nil {
			t.Fatal(err)
		}
		if env.Type == event.TypeOrderShipped {
			announced[string(r.Key)] = true
		}
	}
	for _, id := range shipped {
		if !announced[id] {
			t.Fatalf("order %s shipped without an OrderShipped event", id)
		}
	}
	t.Logf("accepted %d, refused %d", accepted.Load(), refused.Load())
}

package checker_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/smtp"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderpipe/orderpipe/internal/checker"
	"github.com/orderpipe/orderpipe/internal/event"
	"github.com/orderpipe/orderpipe/internal/loadgen"
	"github.com/orderpipe/orderpipe/internal/mailsink"
	"github.com/orderpipe/orderpipe/internal/paysim"
	"github.com/orderpipe/orderpipe/internal/postgres"
	"github.com/orderpipe/orderpipe/internal/promotion"
	"github.com/orderpipe/orderpipe/internal/redisstore"
	"github.com/orderpipe/orderpipe/internal/testenv"
)

// world is a settled system built for real: rows in a Postgres schema, counters under a Redis
// prefix, records on a kfake cluster, charges in a payment simulator over HTTP and e-mails in a
// mail sink over SMTP, plus the outcomes of a load run that led to it.
type world struct {
	t       *testing.T
	pool    *pgxpool.Pool
	rdb     *redis.Client
	prefix  string
	kafka   *kfake.Cluster
	payURL  string
	sink    *mailsink.Sink
	mailURL string
	res     *loadgen.Result
	buyer   int
}

func newWorld(t *testing.T) *world {
	t.Helper()
	w := &world{t: t}
	w.pool, _ = testenv.Postgres(t)
	w.rdb, w.prefix = testenv.Redis(t)
	w.kafka = testenv.Kafka(t)
	sim := httptest.NewServer(paysim.New(paysim.Config{}).Handler())
	t.Cleanup(sim.Close)
	w.payURL = sim.URL
	sink, err := mailsink.Start(mailsink.Config{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sink.Close() })
	w.sink = sink
	ms := httptest.NewServer(sink.Handler())
	t.Cleanup(ms.Close)
	w.mailURL = ms.URL
	w.res = &loadgen.Result{Scenario: "planted", RunID: "c0ffee01", Started: time.Now(), Stock: map[string]int64{}}
	return w
}

// product adds a SKU with its on-hand (also the scenario's starting stock).
func (w *world) product(sku string, onHand int64) {
	w.t.Helper()
	ctx := w.t.Context()
	if _, err := postgres.NewCatalogStore(w.pool).UpsertMany(ctx, []postgres.Product{{SKU: sku, Name: "Part " + sku, Category: "brakes", Brand: "Test", PriceMinor: 1000, Currency: "EUR", Active: true}}); err != nil {
		w.t.Fatal(err)
	}
	if err := postgres.NewStockStore(w.pool).Set(ctx, sku, onHand); err != nil {
		w.t.Fatal(err)
	}
	w.res.Stock[sku] = onHand
}

type planted struct {
	status, reason string // confirmed, cancelled (with reason) or pending
	sku            string
	qty            int
	inPostgres     bool      // false: the order was accepted but never written (a lost order)
	promo          string    // the promotion that priced the line, if any
	unit           int64     // the line's unit price; 0: the base price 1000
	placedAt       time.Time // the order's placed_at; zero: now
}

// order plants one buyer whose first submission was answered 202, and everything the pipeline
// does for such an order: the OrderPlaced record, the order row with lines, payment, allocation
// and notification, the charge at the simulator and the e-mail in the sink.
func (w *world) order(p planted) string {
	w.t.Helper()
	ctx := w.t.Context()
	id := uuid.NewString()
	n := w.buyer
	w.buyer++
	cid := fmt.Sprintf("lg-%s-%d", w.res.RunID, n)
	w.res.Outcomes = append(w.res.Outcomes, loadgen.Outcome{Buyer: n, IdempotencyKey: cid, CustomerID: cid, OrderID: id,
		Lines: []loadgen.Line{{SKU: p.sku, Qty: p.qty}}, Token: "tok_visa_" + cid, Class: loadgen.ClassAccepted, Status: 202,
		Start: time.Now(), Latency: time.Millisecond, Attempts: 1})
	w.produce(id, cid)
	if !p.inPostgres {
		return id
	}
	var reason any
	if p.reason != "" {
		reason = p.reason
	}
	w.exec(`INSERT INTO orders (id, status, cancel_reason, customer_id, email, priority, currency, subtotal_minor,
		shipping_minor, total_minor, shipping_address, placed_at, hold_deadline, decided_at)
		VALUES ($1, $2, $3, $4, $5, 'standard', 'EUR', $6, 0, $6, '{}', coalesce($7, now()), now() + interval '15 minutes', now())`,
		id, p.status, reason, cid, "b@example.com", int64(1000*p.qty), placedAt(p.placedAt))
	unit, promo := p.unit, any(nil)
	if unit == 0 {
		unit = 1000
	}
	if p.promo != "" {
		promo = p.promo
	}
	w.exec(`INSERT INTO order_lines (order_id, line_no, sku, name, quantity, unit_price_minor, promotion_id) VALUES ($1, 1, $2, 'Part', $3, $4, $5)`, id, p.sku, p.qty, unit, promo)
	switch p.status {
	case "confirmed":
		w.exec(`INSERT INTO payments (order_id, provider_id, status, amount_minor, currency) VALUES ($1, 'ch', 'captured', $2, 'EUR')`, id, int64(1000*p.qty))
		w.exec(`INSERT INTO allocations (order_id, sku, quantity) VALUES ($1, $2, $3)`, id, p.sku, p.qty)
		w.exec(`UPDATE stock SET allocated = allocated + $2 WHERE sku = $1`, p.sku, p.qty)
		w.charge(id, id, "tok_visa_"+cid, int64(1000*p.qty))
		w.mail("order_confirmed", id, 0)
	case "cancelled":
		w.exec(`INSERT INTO payments (order_id, status, decline_code, amount_minor, currency) VALUES ($1, 'declined', 'card_declined', $2, 'EUR')`, id, int64(1000*p.qty))
		w.charge(id, id, "tok_decline_"+cid, int64(1000*p.qty))
		w.mail("order_cancelled", id, 0)
	}
	_ = ctx
	return id
}

// refused plants a buyer refused as out of stock for sku.
func (w *world) refused(sku string, qty int) {
	n := w.buyer
	w.buyer++
	cid := fmt.Sprintf("lg-%s-%d", w.res.RunID, n)
	w.res.Outcomes = append(w.res.Outcomes, loadgen.Outcome{Buyer: n, IdempotencyKey: cid, CustomerID: cid,
		Lines: []loadgen.Line{{SKU: sku, Qty: qty}}, Token: "tok_visa_" + cid, Class: loadgen.ClassRefused, Status: 409,
		Reason: "out-of-stock", Short: []string{sku}, Start: time.Now(), Latency: time.Millisecond, Attempts: 1})
}

func placedAt(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t
}

// refusedWith plants a buyer whose only answer was status with the problem type reason.
func (w *world) refusedWith(sku string, status int, reason string) {
	n := w.buyer
	w.buyer++
	cid := fmt.Sprintf("lg-%s-%d", w.res.RunID, n)
	w.res.Outcomes = append(w.res.Outcomes, loadgen.Outcome{Buyer: n, IdempotencyKey: cid, CustomerID: cid,
		Lines: []loadgen.Line{{SKU: sku, Qty: 1}}, Token: "tok_visa_" + cid, Class: loadgen.ClassRefused, Status: status,
		Reason: reason, Start: time.Now(), Latency: time.Millisecond, Attempts: 1})
}

func (w *world) exec(sql string, args ...any) {
	w.t.Helper()
	if _, err := w.pool.Exec(w.t.Context(), sql, args...); err != nil {
		w.t.Fatalf("%s: %v", sql, err)
	}
}

func (w *world) produce(orderID, customerID string) {
	w.t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(w.kafka.ListenAddrs()...))
	if err != nil {
		w.t.Fatal(err)
	}
	defer cl.Close()
	v, _ := json.Marshal(map[string]string{"order_id": orderID, "customer_id": customerID})
	rec := &kgo.Record{Topic: event.TopicOrdersPlaced, Key: []byte(orderID), Value: v,
		Headers: []kgo.RecordHeader{{Key: "ce_type", Value: []byte(event.TypeOrderPlaced)}}}
	if err := cl.ProduceSync(w.t.Context(), rec).FirstErr(); err != nil {
		w.t.Fatal(err)
	}
}

// charge posts a charge to the simulator over HTTP.
func (w *world) charge(key, orderID, token string, amount int64) {
	w.t.Helper()
	b, _ := json.Marshal(map[string]any{"order_id": orderID, "token": token, "method": "card", "amount_minor": amount, "currency": "EUR"})
	req, _ := http.NewRequest(http.MethodPost, w.payURL+"/v1/charges", bytes.NewReader(b))
	req.Header.Set("Idempotency-Key", key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		w.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		w.t.Fatalf("charge %s: %s", orderID, resp.Status)
	}
}

// mail sends the e-mail of kind about orderID over SMTP and records its notification row.
func (w *world) mail(kind, orderID string, resends int) {
	w.t.Helper()
	msgID := fmt.Sprintf("<%s.%s@shop.example>", kind, orderID)
	msg := fmt.Sprintf("From: shop@shop.example\r\nTo: b@example.com\r\nSubject: %s\r\nMessage-ID: %s\r\nX-Orderpipe-Kind: %s\r\nX-Orderpipe-Order: %s\r\n\r\nHello\r\n", kind, msgID, kind, orderID)
	if err := smtp.SendMail(w.sink.Addr(), nil, "shop@shop.example", []string{"b@example.com"}, []byte(msg)); err != nil {
		w.t.Fatal(err)
	}
	w.exec(`INSERT INTO notifications (kind, subject, recipient, message_id, state, claimed_at, sent_at, resends)
		VALUES ($1, $2, 'b@example.com', $3, 'sent', now(), now(), $4)
		ON CONFLICT (kind, subject) DO UPDATE SET resends = EXCLUDED.resends`, kind, orderID, msgID, resends)
}

// settleRedis gives Redis the counters Postgres implies (atp = on_hand - allocated, held 0).
func (w *world) settleRedis() {
	w.t.Helper()
	levels, err := postgres.NewStockStore(w.pool).All(w.t.Context())
	if err != nil {
		w.t.Fatal(err)
	}
	store := redisstore.New(w.rdb, w.prefix)
	for _, l := range levels {
		if err := store.SetStock(w.t.Context(), l.SKU, l.OnHand-l.Allocated); err != nil {
			w.t.Fatal(err)
		}
	}
}

func (w *world) check() *checker.Report {
	w.t.Helper()
	r, err := checker.Check(w.t.Context(), checker.Sources{Pool: w.pool, Redis: w.rdb, Prefix: w.prefix,
		Brokers: w.kafka.ListenAddrs(), PaymentURL: w.payURL, MailURL: w.mailURL, Result: w.res})
	if err != nil {
		w.t.Fatal(err)
	}
	return r
}

// cleanSale plants a small settled sale: HOT-1 (3 units) sold out to three buyers, a fourth
// refused as out of stock, and a declined order for BG-1.
func cleanSale(w *world) (confirmed []string) {
	w.product("HOT-1", 3)
	w.product("BG-1", 10)
	for range 3 {
		confirmed = append(confirmed, w.order(planted{status: "confirmed", sku: "HOT-1", qty: 1, inPostgres: true}))
	}
	w.refused("HOT-1", 1)
	w.order(planted{status: "cancelled", reason: "payment_declined", sku: "BG-1", qty: 2, inPostgres: true})
	return confirmed
}

func invariant(t *testing.T, r *checker.Report, id string) checker.InvariantResult {
	t.Helper()
	for _, i := range r.Invariants {
		if i.ID == id {
			return i
		}
	}
	t.Fatalf("report has no %s: %+v", id, r.Invariants)
	return checker.InvariantResult{}
}

// onlyBroken asserts that exactly the invariants ids are broken.
func onlyBroken(t *testing.T, r *checker.Report, ids ...string) {
	t.Helper()
	if len(r.Invariants) != 9 {
		t.Fatalf("%d invariants reported, want I1-I7, P1 and R0", len(r.Invariants))
	}
	for _, i := range r.Invariants {
		want := !strings.Contains(" "+strings.Join(ids, " ")+" ", " "+i.ID+" ")
		if i.Holds != want {
			t.Errorf("%s holds = %v, want %v; evidence %v", i.ID, i.Holds, want, i.Evidence)
		}
	}
	if r.OK() != (len(ids) == 0) {
		t.Errorf("OK() = %v with %v broken", r.OK(), ids)
	}
}

func TestCleanStateHolds(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	cleanSale(w)
	w.settleRedis()
	r := w.check()
	onlyBroken(t, r)
	if len(r.Undersell) != 0 {
		t.Errorf("undersell %+v, want none (HOT-1 sold out)", r.Undersell)
	}
	for k, want := range map[string]int64{"accepted_orders": 4, "orders_confirmed": 3, "orders_cancelled": 1, "units_sold": 3,
		"captures": 3, "emails_order_confirmed": 3, "emails_order_cancelled": 1, "outcome_refused": 1, "orderplaced_records": 4, "holds_outstanding": 0} {
		if got := r.Summary[k]; got != want {
			t.Errorf("summary %s = %d, want %d", k, got, want)
		}
	}
	md := r.Markdown()
	for _, want := range []string{"Checker verdict: all invariants hold.", "| I1 | No oversell | yes | 0 | - |", "| I7 | Stale stock events are ignored | yes | 0 | - |", "| P1 | Promotion caps and limits hold | yes | 0 | - |", "Undersell (units left unsold while out-of-stock refusals named the SKU): none.", "| units_sold | 3 |"} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
}

func TestPlantedOversellIsReported(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	cleanSale(w)
	// A fourth unit of HOT-1 confirmed with the constraint gone: one unit sold that the shop
	// does not have.
	w.exec(`ALTER TABLE stock DROP CONSTRAINT stock_no_oversell`)
	w.order(planted{status: "confirmed", sku: "HOT-1", qty: 1, inPostgres: true})
	w.settleRedis()
	r := w.check()
	onlyBroken(t, r, "I1")
	i1 := invariant(t, r, "I1")
	if i1.Count != 2 { // allocated 4 > on_hand 3, and 4 sold of 3 available at the start
		t.Errorf("I1 count %d, want 2 (1 unit by Postgres, 1 by the run's sales)", i1.Count)
	}
	ev := strings.Join(i1.Evidence, "\n")
	for _, want := range []string{"HOT-1: allocated 4 > on_hand 3: 1 units oversold", "HOT-1: the run's confirmed orders hold 4 units, 3 were available at the start"} {
		if !strings.Contains(ev, want) {
			t.Errorf("I1 evidence lacks %q:\n%s", want, ev)
		}
	}
	if !strings.Contains(r.Markdown(), "| I1 | No oversell | **NO** | 2 |") {
		t.Errorf("markdown does not show I1 broken:\n%s", r.Markdown())
	}
}

func TestPlantedLostOrderIsReported(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	cleanSale(w)
	lost := w.order(planted{sku: "BG-1", qty: 1, inPostgres: false})
	w.settleRedis()
	r := w.check()
	onlyBroken(t, r, "I2")
	i2 := invariant(t, r, "I2")
	want := fmt.Sprintf("order %s was answered 202 but has no row in Postgres (OrderPlaced records 1", lost)
	if i2.Count != 1 || !strings.Contains(strings.Join(i2.Evidence, "\n"), want) {
		t.Errorf("I2 count %d evidence %v, want 1 naming %q", i2.Count, i2.Evidence, want)
	}
}

func TestPlantedDoubleEmailIsReported(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	confirmed := cleanSale(w)
	w.mail("order_confirmed", confirmed[1], 0) // the same e-mail again, with no crash recorded
	w.settleRedis()
	r := w.check()
	onlyBroken(t, r, "I3")
	i3 := invariant(t, r, "I3")
	want := fmt.Sprintf("order %s got 2 order_confirmed e-mails (notification resends recorded: 0)", confirmed[1])
	if i3.Count != 1 || !strings.Contains(strings.Join(i3.Evidence, "\n"), want) {
		t.Errorf("I3 count %d evidence %v, want 1 naming %q", i3.Count, i3.Evidence, want)
	}
}

// A duplicate e-mail after a recorded takeover of an expired send lease is the documented
// crash window: counted by design, the invariant holds.
func TestDuplicateEmailAfterACrashIsByDesign(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	confirmed := cleanSale(w)
	w.mail("order_confirmed", confirmed[0], 1)
	w.settleRedis()
	r := w.check()
	onlyBroken(t, r)
	if i3 := invariant(t, r, "I3"); i3.ByDesignCount != 1 || !strings.Contains(i3.ByDesign, "NOTIFIER_SEND_LEASE") {
		t.Errorf("I3 by design %d %q, want 1 explained", i3.ByDesignCount, i3.ByDesign)
	}
}

// A buyer who resubmitted with the same Idempotency-Key after Redis lost it got a second order,
// which order-worker cancelled as duplicate without a charge: not a second order of the buyer. A
// second order cancelled for any other reason still is.
func TestOrderCancelledAsDuplicateIsNoSecondOrder(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		reason string
		broken []string
	}{{"duplicate", nil}, {"invalid", []string{"I3"}}} {
		t.Run(tc.reason, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t)
			cleanSale(w)
			first := w.order(planted{status: "confirmed", sku: "BG-1", qty: 1, inPostgres: true})
			second := w.order(planted{status: "cancelled", reason: tc.reason, sku: "BG-1", qty: 1, inPostgres: true})
			w.exec(`UPDATE orders SET customer_id = (SELECT customer_id FROM orders WHERE id = $1) WHERE id = $2`, first, second)
			w.settleRedis()
			onlyBroken(t, w.check(), tc.broken...)
		})
	}
}

func TestPlantedDoubleCaptureDriftAndHoldAreReported(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	confirmed := cleanSale(w)
	w.charge("other-key", confirmed[2], "tok_visa_x", 1000) // a second capture of the same order
	w.settleRedis()
	store := redisstore.New(w.rdb, w.prefix)
	if err := store.SetStock(t.Context(), "BG-1", 9); err != nil { // one unit of drift
		t.Fatal(err)
	}
	// A hold left behind by a refused request: no order, nobody was told 202.
	ghost := uuid.NewString()
	if _, err := store.Reserve(t.Context(), ghost, []redisstore.Line{{SKU: "BG-1", Qty: 1}}, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	r := w.check()
	onlyBroken(t, r, "I3", "I4", "I5")
	if ev := strings.Join(invariant(t, r, "I3").Evidence, "\n"); !strings.Contains(ev, fmt.Sprintf("order %s was captured 2 times", confirmed[2])) {
		t.Errorf("I3 evidence lacks the double capture:\n%s", ev)
	}
	if ev := strings.Join(invariant(t, r, "I4").Evidence, "\n"); !strings.Contains(ev, "BG-1: Redis atp 8 + held 1 = 9, Postgres on_hand 10 - allocated 0 = 10: drift -1") {
		t.Errorf("I4 evidence lacks the drift:\n%s", ev)
	}
	if ev := strings.Join(invariant(t, r, "I5").Evidence, "\n"); !strings.Contains(ev, "BG-1: hold of 1 for "+ghost) {
		t.Errorf("I5 evidence lacks the ghost hold:\n%s", ev)
	}
}

func TestUndersellIsReported(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.product("HOT-1", 5)
	w.order(planted{status: "confirmed", sku: "HOT-1", qty: 1, inPostgres: true})
	w.refused("HOT-1", 2) // refused while 4 units stay unsold
	w.settleRedis()
	r := w.check()
	onlyBroken(t, r)
	if len(r.Undersell) != 1 || r.Undersell[0] != (checker.UndersellRow{SKU: "HOT-1", RefusedOrders: 1, RefusedUnits: 2, Unsold: 4}) {
		t.Errorf("undersell %+v, want HOT-1: 1 order, 2 units refused, 4 unsold", r.Undersell)
	}
	if r.Summary["undersell_units"] != 2 {
		t.Errorf("undersell_units %d, want 2", r.Summary["undersell_units"])
	}
}

func TestMissingSourcesAreAnError(t *testing.T) {
	t.Parallel()
	if _, err := checker.Check(t.Context(), checker.Sources{}); err == nil {
		t.Fatal("Check without sources: no error")
	}
}

// promotion plants a live promotion of 20 % off on sku (base price 1000: promotional price 800)
// with a cap per SKU and a limit per customer, as one of the scenario's promotions.
func (w *world) promotion(id, sku string, stockCap, limit int64) {
	w.t.Helper()
	now := time.Now().UTC()
	if _, err := postgres.NewPromotionStore(w.pool).Create(w.t.Context(), promotion.Promotion{ID: id, Name: id, Kind: promotion.KindPercent,
		PercentOff: 20, SKUs: []string{sku}, StartsAt: now.Add(-time.Hour), EndsAt: now.Add(time.Hour), TimeZone: "UTC",
		StockCap: stockCap, PerCustomerLimit: limit, OverCap: promotion.OverCapBase}); err != nil {
		w.t.Fatal(err)
	}
	w.res.Promotions = append(w.res.Promotions, id)
}

// promoSale plants HOT-1 (10 units) under promotion hot-20 (cap 3, 2 per customer): two buyers
// get 1 and 2 units at 800 (the cap is used up), a declined order's 2 promotional units do not
// count against it, and a fourth buyer pays the base price.
func promoSale(w *world) {
	w.product("HOT-1", 10)
	w.promotion("hot-20", "HOT-1", 3, 2)
	w.order(planted{status: "confirmed", sku: "HOT-1", qty: 1, inPostgres: true, promo: "hot-20", unit: 800})
	w.order(planted{status: "confirmed", sku: "HOT-1", qty: 2, inPostgres: true, promo: "hot-20", unit: 800})
	w.order(planted{status: "cancelled", reason: "payment_declined", sku: "HOT-1", qty: 2, inPostgres: true, promo: "hot-20", unit: 800})
	w.order(planted{status: "confirmed", sku: "HOT-1", qty: 1, inPostgres: true})
}

func TestPromotionWithinItsCapAndLimitsHolds(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	promoSale(w)
	w.settleRedis()
	r := w.check()
	onlyBroken(t, r)
	if got := r.Summary["promo_units_sold_hot-20"]; got != 3 {
		t.Errorf("promo_units_sold_hot-20 = %d, want 3 (the cancelled order's 2 units do not count)", got)
	}
	if got := r.Summary["promo_units_sold"]; got != 3 {
		t.Errorf("promo_units_sold = %d, want 3", got)
	}
	if md := r.Markdown(); !strings.Contains(md, "| P1 | Promotion caps and limits hold | yes | 0 | - |") || !strings.Contains(md, "| promo_units_sold_hot-20 | 3 |") {
		t.Errorf("markdown lacks the P1 row or the promotion's units:\n%s", md)
	}
}

func TestPlantedPromotionViolationsAreReported(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name  string
		plant planted
		want  string
	}{
		{"over the cap", planted{status: "confirmed", sku: "HOT-1", qty: 1, inPostgres: true, promo: "hot-20", unit: 800},
			"promotion hot-20, HOT-1: 4 promotional units sold (orders not cancelled), cap 3: 1 over the cap"},
		{"over a customer's limit", planted{status: "confirmed", sku: "HOT-1", qty: 3, inPostgres: true, promo: "hot-20", unit: 800},
			"promotion hot-20, HOT-1, customer lg-c0ffee01-4: 3 promotional units, limit 2 per customer: 1 over the limit"},
		{"wrong promotional price", planted{status: "confirmed", sku: "BG-1", qty: 1, inPostgres: true, promo: "bg-20", unit: 1000},
			"x BG-1 at 1000 under promotion bg-20, whose price is 800 (base 1000)"},
		// The promotions run from an hour ago to an hour from now.
		{"placed before the window", planted{status: "confirmed", sku: "BG-1", qty: 1, inPostgres: true, promo: "bg-20", unit: 800, placedAt: time.Now().Add(-2 * time.Hour)},
			"line 1: priced by promotion bg-20 but placed at "},
		{"placed after the window", planted{status: "confirmed", sku: "BG-1", qty: 1, inPostgres: true, promo: "bg-20", unit: 800, placedAt: time.Now().Add(2 * time.Hour)},
			"line 1: priced by promotion bg-20 but placed at "},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t)
			promoSale(w)
			w.product("BG-1", 10)
			w.promotion("bg-20", "BG-1", 0, 0)
			w.order(c.plant)
			w.settleRedis()
			r := w.check()
			onlyBroken(t, r, "P1")
			p1 := invariant(t, r, "P1")
			ev := strings.Join(p1.Evidence, "\n")
			if !strings.Contains(ev, c.want) {
				t.Errorf("P1 evidence lacks %q:\n%s", c.want, ev)
			}
			if c.name == "over a customer's limit" {
				// 3 units also take the promotion to 6 of its cap of 3: both are reported, the
				// worst first.
				if p1.Count != 2 || !strings.Contains(p1.Evidence[0], "cap 3: 3 over the cap") {
					t.Errorf("P1 count %d evidence %v, want 2 with the cap (3 over) first", p1.Count, p1.Evidence)
				}
			} else if p1.Count != 1 {
				t.Errorf("P1 count %d, want 1; evidence %v", p1.Count, p1.Evidence)
			}
			if !strings.Contains(r.Markdown(), "| P1 | Promotion caps and limits hold | **NO** |") {
				t.Errorf("markdown does not show P1 broken:\n%s", r.Markdown())
			}
		})
	}
}

// A run that did not exercise the pipeline fails R0 although every invariant holds over its
// zero orders: the verdict cannot pass by accident.
func TestRunThatDidNotExerciseThePipelineIsBroken(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name  string
		plant func(w *world)
		want  string
	}{
		{"no submissions", func(w *world) { w.product("HOT-1", 3) }, "the run has no submissions"},
		{"everybody refused", func(w *world) {
			w.product("HOT-1", 3)
			for range 3 {
				w.refusedWith("HOT-1", 503, "unavailable")
			}
		}, "no order was accepted (3 submissions by 3 buyers: 3 refused (unavailable 3), 0 errors, 0 unknown)"},
		{"fewer buyers than the scenario brings", func(w *world) {
			cleanSale(w)
			w.res.Expected = &loadgen.Expectation{Buyers: 100, MinAccepted: 2}
		}, "5 buyers played, the scenario brings 100"},
		{"far fewer accepted than the scenario can sell", func(w *world) {
			cleanSale(w)
			w.res.Expected = &loadgen.Expectation{Buyers: 5, MinAccepted: 40}
		}, "4 orders accepted, far fewer than the scenario's floor of 40"},
		{"most accepted orders cancelled", func(w *world) {
			w.product("BG-1", 10)
			w.order(planted{status: "confirmed", sku: "BG-1", qty: 1, inPostgres: true})
			for range 2 {
				w.order(planted{status: "cancelled", reason: "payment_declined", sku: "BG-1", qty: 1, inPostgres: true})
			}
		}, "only 1 of 3 decided accepted orders were confirmed"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t)
			c.plant(w)
			w.settleRedis()
			r := w.check()
			onlyBroken(t, r, "R0")
			r0 := invariant(t, r, "R0")
			if r0.Count != 1 || !strings.Contains(strings.Join(r0.Evidence, "\n"), c.want) {
				t.Errorf("R0 count %d evidence %v, want 1 naming %q", r0.Count, r0.Evidence, c.want)
			}
			if !strings.Contains(r.Markdown(), "| R0 | The run exercised the pipeline | **NO** | 1 |") {
				t.Errorf("markdown does not show R0 broken:\n%s", r.Markdown())
			}
		})
	}
}

// A run that meets its scenario's expectation holds R0.
func TestRunMeetingItsExpectationHolds(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	cleanSale(w)
	w.res.Expected = &loadgen.Expectation{Buyers: 5, MinAccepted: 4}
	w.settleRedis()
	onlyBroken(t, w.check())
}

// stockEvent publishes a warehouse's stock level of sku with seq on inventory.stock, as a
// warehouse system does, and, with apply, applies it to Postgres through the store inventory-sync
// uses (postgres.InventoryStore.ApplyStock), returning the outcome.
func (w *world) stockEvent(wh, sku string, seq, onHand int64, apply bool) string {
	w.t.Helper()
	h := event.StockHeader{WarehouseID: wh, SKU: sku, Seq: seq, OccurredAt: time.Now().UTC()}
	v, _ := json.Marshal(event.StockLevel{StockHeader: h, OnHand: onHand})
	cl, err := kgo.NewClient(kgo.SeedBrokers(w.kafka.ListenAddrs()...))
	if err != nil {
		w.t.Fatal(err)
	}
	defer cl.Close()
	id := uuid.NewString()
	rec := &kgo.Record{Topic: event.TopicInventoryStock, Key: []byte(sku), Value: v,
		Headers: []kgo.RecordHeader{{Key: "ce_type", Value: []byte(event.TypeStockLevel)}, {Key: "ce_id", Value: []byte(id)}}}
	if err := cl.ProduceSync(w.t.Context(), rec).FirstErr(); err != nil {
		w.t.Fatal(err)
	}
	if !apply {
		return ""
	}
	res, err := postgres.NewInventoryStore(w.pool).ApplyStock(w.t.Context(), []postgres.StockEvent{{EventID: id, Kind: postgres.StockKindLevel,
		WarehouseID: wh, SKU: sku, Seq: seq, OccurredAt: h.OccurredAt, OnHand: onHand}})
	if err != nil {
		w.t.Fatal(err)
	}
	return res[0].Outcome
}

// stockFeed plants a clean warehouse feed on BG-1 (warehouse WH-1): levels 10, 8, 12 with seqs
// 1, 2, 4, and a stale level 50 with seq 3 between the last two, which inventory-sync ignores.
func stockFeed(w *world) {
	w.t.Helper()
	for _, e := range []struct {
		seq, onHand int64
		want        string
	}{{1, 10, postgres.StockApplied}, {2, 8, postgres.StockApplied}, {4, 12, postgres.StockApplied}, {3, 50, postgres.StockStale}} {
		if got := w.stockEvent("WH-1", "BG-1", e.seq, e.onHand, true); got != e.want {
			w.t.Fatalf("stock event seq %d: %s, want %s", e.seq, got, e.want)
		}
	}
}

// A clean sale with a warehouse feed (including a stale event) holds every invariant: I7 is
// judged on stock events, not on an empty topic.
func TestStockFeedWithAStaleEventHolds(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	cleanSale(w)
	stockFeed(w)
	w.settleRedis()
	r := w.check()
	onlyBroken(t, r)
	var onHand int64
	if err := w.pool.QueryRow(t.Context(), `SELECT on_hand FROM stock WHERE sku = 'BG-1'`).Scan(&onHand); err != nil {
		t.Fatal(err)
	}
	if onHand != 12 {
		t.Errorf("BG-1 on_hand %d, want 12 (the stale level 50 changed nothing)", onHand)
	}
}

func TestPlantedStaleStockEventsAreReported(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name  string
		plant func(w *world)
		want  string
	}{
		// A broken applier took the stale seq 3 after seq 4: a stock_deltas row applied later
		// with a lower seq, and its units in the stock.
		{"stale event applied", func(w *world) {
			w.exec(`INSERT INTO stock_deltas (warehouse_id, sku, seq, event_id, event_type, delta_on_hand, delta_atp, applied_at)
				VALUES ('WH-1', 'BG-1', 3, 'stale', 'level', 38, 38, now() + interval '1 second')`)
			w.exec(`UPDATE warehouse_stock SET on_hand = 50 WHERE warehouse_id = 'WH-1' AND sku = 'BG-1'`)
			w.exec(`UPDATE stock SET on_hand = 50 WHERE sku = 'BG-1'`)
		}, "WH-1/BG-1: event seq 3 applied after seq 4"},
		// A newer event on the topic that Postgres never applied.
		{"newest event not applied", func(w *world) { w.stockEvent("WH-1", "BG-1", 5, 7, false) },
			"WH-1/BG-1: the topic's newest event has seq 5, Postgres applied up to 4"},
		// Postgres claims a seq no event on the topic has.
		{"applied beyond the topic", func(w *world) {
			w.exec(`UPDATE warehouse_stock SET last_seq = 9 WHERE warehouse_id = 'WH-1' AND sku = 'BG-1'`)
		}, "WH-1/BG-1: the topic's newest event has seq 4, Postgres applied up to 9"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t)
			cleanSale(w)
			stockFeed(w)
			c.plant(w)
			w.settleRedis()
			r := w.check()
			onlyBroken(t, r, "I7")
			i7 := invariant(t, r, "I7")
			if ev := strings.Join(i7.Evidence, "\n"); i7.Count < 1 || !strings.Contains(ev, c.want) {
				t.Errorf("I7 count %d evidence:\n%s\nwant it to name %q", i7.Count, ev, c.want)
			}
		})
	}
}

func TestPlantedHoldThatDidNotEndIsReported(t *testing.T) {
	t.Parallel()
	t.Run("live hold of a confirmed order", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t)
		confirmed := cleanSale(w)
		w.settleRedis()
		// The order was confirmed but its hold was never confirmed away: it ended zero times.
		store := redisstore.New(w.rdb, w.prefix)
		if _, err := store.Reserve(t.Context(), confirmed[0], []redisstore.Line{{SKU: "BG-1", Qty: 1}}, time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		r := w.check()
		onlyBroken(t, r, "I6")
		want := fmt.Sprintf("BG-1: hold of 1 for order %s is still live although the order is confirmed", confirmed[0])
		if i6 := invariant(t, r, "I6"); i6.Count != 1 || !strings.Contains(strings.Join(i6.Evidence, "\n"), want) {
			t.Errorf("I6 count %d evidence %v, want 1 naming %q", i6.Count, i6.Evidence, want)
		}
	})
	t.Run("confirmed order without allocations", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t)
		confirmed := cleanSale(w)
		// Confirmed without the allocation the hold should have become (stock kept consistent,
		// so only the missing allocation is wrong).
		w.exec(`DELETE FROM allocations WHERE order_id = $1`, confirmed[1])
		w.exec(`UPDATE stock SET allocated = allocated - 1 WHERE sku = 'HOT-1'`)
		w.settleRedis()
		r := w.check()
		onlyBroken(t, r, "I6")
		want := fmt.Sprintf("order %s is confirmed without allocations", confirmed[1])
		if i6 := invariant(t, r, "I6"); i6.Count != 1 || !strings.Contains(strings.Join(i6.Evidence, "\n"), want) {
			t.Errorf("I6 count %d evidence %v, want 1 naming %q", i6.Count, i6.Evidence, want)
		}
	})
	t.Run("hold live long after its deadline", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t)
		cleanSale(w)
		// An accepted order still pending (I2) whose hold outlived its deadline by two minutes:
		// nothing expired it (I6).
		pending := w.order(planted{status: "pending", sku: "BG-1", qty: 1, inPostgres: true})
		w.settleRedis()
		store := redisstore.New(w.rdb, w.prefix)
		if _, err := store.Reserve(t.Context(), pending, []redisstore.Line{{SKU: "BG-1", Qty: 1}}, time.Now().Add(-2*time.Minute)); err != nil {
			t.Fatal(err)
		}
		r := w.check()
		onlyBroken(t, r, "I2", "I6")
		want := fmt.Sprintf("BG-1: hold of 1 for order %s is live 2m", pending)
		if i6 := invariant(t, r, "I6"); i6.Count != 1 || !strings.Contains(strings.Join(i6.Evidence, "\n"), want) {
			t.Errorf("I6 count %d evidence %v, want 1 naming %q", i6.Count, i6.Evidence, want)
		}
	})
}

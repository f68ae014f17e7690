package orderworker_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderpipe/orderpipe/internal/consumer"
	"github.com/orderpipe/orderpipe/internal/event"
	"github.com/orderpipe/orderpipe/internal/paysim"
	"github.com/orderpipe/orderpipe/internal/redisstore"
	"github.com/orderpipe/orderpipe/internal/workerbench"
)

// publishOrders holds stock for n orders in Redis, as the api would, and produces their
// OrderPlaced records straight to orders.placed (the api refuses some of what tests need).
// mutate may change the i-th order before it is published. It returns the order ids in order.
func publishOrders(t *testing.T, s *stack, n int, mutate func(i int, p *event.OrderPlaced)) []string {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.Kafka.ListenAddrs()...), kgo.ProducerLinger(5*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	now := time.Now().UTC().Truncate(time.Millisecond)
	ids := make([]string, n)
	var recs []*kgo.Record
	for i := range n {
		id := uuid.Must(uuid.NewV7()).String()
		sku := skus[i%len(skus)]
		p, _ := workerbench.Order(i, id, sku, now)
		p.Priority = "standard"
		p.Lines[0].Name = "Part " + sku
		if mutate != nil {
			mutate(i, &p)
		}
		if _, err := s.Store.Reserve(t.Context(), id, []redisstore.Line{{SKU: sku, Qty: 1}}, p.HoldDeadline); err != nil {
			t.Fatal(err)
		}
		env, err := event.NewOrderPlaced("/test", p)
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = id
		recs = append(recs, env.Record(event.TopicOrdersPlaced, []byte(id)))
	}
	if err := cl.ProduceSync(t.Context(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	return ids
}

// An order that passes every check before money moves but that Postgres refuses for good, in the
// middle of 500: it is poison at once. (A NUL in customer_id used to be such an order, SQLSTATE
// 22021; the input gate now refuses it at decode, before any charge: see
// TestControlCharacterOrderIsRefusedBeforeAnyCharge. The refusal is planted here as a CHECK
// constraint on orders, SQLSTATE 23514, so the storage path stays proven.) Its capture is refunded in the same run and
// recorded, it is dead-lettered with its cause and without a trip through the retry topics, and
// the other 499 are decided normally.
func TestUnstorableOrderIsRefundedDeadLetteredAndTheBatchMoves(t *testing.T) {
	t.Parallel()
	s := setup(t, paysim.Config{Seed: 3}, stockAll(1000))
	const n, poisonAt = 500, 250
	ids := publishOrders(t, s, n, func(i int, p *event.OrderPlaced) {
		if i == poisonAt {
			p.CustomerID = unstorableCustomer
		}
	})
	poison := ids[poisonAt]
	plantUnstorable(t, s)
	// Retry tiers far beyond the test: a record classed transient would sit there.
	s.Worker(t, map[string]string{"ORDER_WORKER_BATCH_SIZE": "500", "ORDER_WORKER_RETRY_TIERS": "10m,20m"})
	s.WaitDecided(t, n-1, 60*time.Second)

	dlq := waitDeadLetters(t, s)
	if len(dlq) != 1 || string(dlq[0].Key) != poison {
		t.Fatalf("dead letters %v, want exactly the poison order %s", dlq, poison)
	}
	if d := dlq[0]; d.Class != consumer.ClassPermanent || d.Attempts != 1 || !strings.Contains(d.Error, "23514") {
		t.Errorf("dead letter of the poison order: class %q, attempts %d, error %q; want permanent, 1, the SQLSTATE 23514 cause", d.Class, d.Attempts, d.Error)
	}
	for _, topic := range []string{event.RetryTopic("order-worker", 1), event.RetryTopic("order-worker", 2)} {
		if recs := s.Records(t, topic); len(recs) != 0 {
			t.Errorf("%d records went to %s, want none (the poison is permanent, the rest succeed)", len(recs), topic)
		}
	}
	s.WaitSettled(t, "order-worker", []string{event.TopicOrdersPlaced}, 30*time.Second)

	// The other 499 are confirmed, each once; the poison order has no row.
	out := s.outcomes(t)
	if out["confirmed"] != n-1 || len(out) != 1 {
		t.Errorf("outcomes %v, want %d confirmed and nothing else", out, n-1)
	}
	// Money: the poison order's capture was refunded, and the refund is recorded.
	charges, err := chargesOf(s, poison)
	if err != nil || len(charges) != 1 {
		t.Fatalf("charges of the poison order: %v (%v), want one", charges, err)
	}
	charge := charges[0]
	if charge.Status == "captured" && !charge.Refunded {
		t.Errorf("poison order %s: captured and not refunded (I8)", poison)
	}
	st := s.Sim.Stats()
	if len(st.DoubleCaptured) > 0 || st.Captures-st.Refunds != n-1 {
		t.Errorf("simulator: %d captures, %d refunds, double %v; want %d kept captures", st.Captures, st.Refunds, st.DoubleCaptured, n-1)
	}
	if charge.Status == "captured" {
		var refundID, class string
		err := s.Pool.QueryRow(t.Context(), `SELECT refund_id, error_class FROM payment_undos WHERE order_id = $1`, poison).Scan(&refundID, &class)
		if err != nil || refundID == "" || class != consumer.ClassPermanent {
			t.Errorf("undo of %s: refund %q class %q (%v); want the refund recorded", poison, refundID, class, err)
		}
	}
	// Its holds were released: nothing stays held.
	for _, sku := range skus {
		r, err := s.Store.Availability(t.Context(), sku)
		if err != nil {
			t.Fatal(err)
		}
		if r.Held != 0 {
			t.Errorf("%s: %d units still held", sku, r.Held)
		}
	}
	_ = fmt.Sprint
}

// A dead-lettered order whose capture was refunded (payment_undos) comes back, re-driven after
// its data was repaired: it is not charged again (the provider would answer the repeated order id
// with the first, refunded capture) but cancelled as invalid with its payment refunded, and its
// holds released.
func TestRedrivenOrderWhosePaymentWasUndoneIsNotChargedAgain(t *testing.T) {
	t.Parallel()
	s := setup(t, paysim.Config{Seed: 5}, stockAll(100))
	var id string
	ids := publishOrders(t, s, 3, nil)
	id = ids[1]
	if _, err := s.Pool.Exec(t.Context(), `INSERT INTO payment_undos (order_id, event_id, charge_id, refund_id, amount_minor, currency, error_class, error)
		VALUES ($1, $2, 'ch_1', 're_1', 1999, 'EUR', 'permanent', 'SQLSTATE 22021')`, id, event.ID(event.TypeOrderPlaced, id)); err != nil {
		t.Fatal(err)
	}
	s.Worker(t, nil)
	s.WaitDecided(t, 3, 30*time.Second)
	s.waitSettled(t, 30*time.Second)
	var status, payment string
	if err := s.Pool.QueryRow(t.Context(), `SELECT o.status || '/' || coalesce(o.cancel_reason, ''), p.status FROM orders o JOIN payments p ON p.order_id = o.id WHERE o.id = $1`, id).Scan(&status, &payment); err != nil {
		t.Fatal(err)
	}
	if status != "cancelled/invalid" || payment != "refunded" {
		t.Errorf("re-driven undone order: %s, payment %s; want cancelled/invalid, refunded", status, payment)
	}
	if st := s.Sim.Stats(); st.Captures != 2 || st.Requests != 2 {
		t.Errorf("simulator: %d captures in %d requests, want 2 and 2 (the undone order is not charged)", st.Captures, st.Requests)
	}
	for _, sku := range skus {
		if r, err := s.Store.Availability(t.Context(), sku); err != nil || r.Held != 0 {
			t.Errorf("%s: held %d (%v), want 0", sku, r.Held, err)
		}
	}
}

// unstorableCustomer is refused by the CHECK constraint plantUnstorable adds.
const unstorableCustomer = "c-unstorable"

// plantUnstorable makes Postgres refuse, for good, any order of unstorableCustomer: a check
// violation (SQLSTATE 23514, class 23) that no retry can fix.
func plantUnstorable(t *testing.T, s *stack) {
	t.Helper()
	if _, err := s.Pool.Exec(t.Context(), `ALTER TABLE orders ADD CONSTRAINT planted_unstorable CHECK (customer_id <> '`+unstorableCustomer+`')`); err != nil {
		t.Fatalf("plant the refusal: %v", err)
	}
}

// A control character in an order that reached the topic (the api refuses it at the door) is
// refused when the worker decodes it: dead-lettered as permanent, and no money moves at all.
func TestControlCharacterOrderIsRefusedBeforeAnyCharge(t *testing.T) {
	t.Parallel()
	s := setup(t, paysim.Config{Seed: 3}, stockAll(100))
	const n, poisonAt = 20, 10
	ids := publishOrders(t, s, n, func(i int, p *event.OrderPlaced) {
		if i == poisonAt {
			p.CustomerID = "c-1001\x00x"
		}
	})
	poison := ids[poisonAt]
	s.Worker(t, map[string]string{"ORDER_WORKER_RETRY_TIERS": "10m,20m"})
	s.WaitDecided(t, n-1, 60*time.Second)
	dlq := waitDeadLetters(t, s)
	if len(dlq) != 1 || string(dlq[0].Key) != poison || dlq[0].Class != consumer.ClassPermanent || !strings.Contains(dlq[0].Error, "control character") {
		t.Fatalf("dead letters %+v, want the poison order %s alone, permanent, for its control character", dlq, poison)
	}
	charges, err := chargesOf(s, poison)
	if err != nil || len(charges) != 0 {
		t.Fatalf("charges of the poison order: %v (%v), want none", charges, err)
	}
}

// waitDeadLetters returns order-worker's dead letters once there is at least one (30 s at most).
func waitDeadLetters(t *testing.T, s *stack) []consumer.DeadLetter {
	t.Helper()
	var dlq []consumer.DeadLetter
	deadline := time.Now().Add(30 * time.Second)
	for len(dlq) == 0 && time.Now().Before(deadline) {
		for _, r := range s.Records(t, event.DeadLetterTopic("order-worker")) {
			d, err := consumer.ParseDeadLetter(r)
			if err != nil {
				t.Fatal(err)
			}
			dlq = append(dlq, d)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return dlq
}

// chargesOf asks the payment simulator for the charges of orderID.
func chargesOf(s *stack, orderID string) ([]paysim.Charge, error) {
	resp, err := http.Get(s.SimURL + "/v1/charges?order_id=" + orderID)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var body struct{ Charges []paysim.Charge }
	err = json.NewDecoder(resp.Body).Decode(&body)
	return body.Charges, err
}

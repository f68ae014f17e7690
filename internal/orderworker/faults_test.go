package orderworker_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderpipe/orderpipe/internal/consumer"
	"github.com/orderpipe/orderpipe/internal/event"
	"github.com/orderpipe/orderpipe/internal/paysim"
	"github.com/orderpipe/orderpipe/internal/testenv"
)

func stockAll(n int64) map[string]int64 {
	m := map[string]int64{}
	for _, s := range skus {
		m[s] = n
	}
	return m
}

// A worker process killed with SIGKILL in the middle of its work, then started again: every
// accepted order ends once, nothing is charged twice, nothing is oversold.
func TestWorkerKilledMidBatchLosesAndDoublesNothing(t *testing.T) {
	t.Parallel()
	s := setup(t, paysim.Config{Latency: 15 * time.Millisecond, LatencyJitter: 10 * time.Millisecond, DeclineRate: 0.05, Seed: 11}, stockAll(400))
	accepted := s.PlaceMany(t, 1500, 32, func(i int) []byte {
		return orderJSON("tok_card_"+fmt.Sprint(i), []string{"standard", "express"}[i%2], skus[i%len(skus)], 1)
	})
	bin := testenv.Binary(t, "order-worker")
	env := s.Env(map[string]string{"ORDER_WORKER_BATCH_SIZE": "100", "ORDER_WORKER_PAYMENT_CONCURRENCY": "8", "KAFKA_SESSION_TIMEOUT": "6s"})
	for round := range 3 {
		cmd := exec.Command(bin)
		for k, v := range env {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
		var logs bytes.Buffer
		cmd.Stdout, cmd.Stderr = &logs, &logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		var before int
		if err := s.Pool.QueryRow(t.Context(), `SELECT count(*) FROM orders`).Scan(&before); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(60 * time.Second)
		for {
			var n int
			if err := s.Pool.QueryRow(t.Context(), `SELECT count(*) FROM orders`).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n >= before+200 || n == len(accepted) || time.Now().After(deadline) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
		t.Logf("round %d: killed the worker after it decided %d orders", round, before)
	}
	s.Worker(t, nil)
	s.waitDecided(t, accepted, 90*time.Second)
	s.waitSettled(t, 90*time.Second)
	s.checkInvariants(t, accepted)
}

// The payment provider goes down: orders wait and retry (nothing is cancelled for a transient
// fault), the breaker opens, and when the provider is back the breaker closes and every order
// completes. Declines cancel with payment_declined and release their holds.
func TestGatewayOutageRetriesAndBreakerRecovers(t *testing.T) {
	t.Parallel()
	s := setup(t, paysim.Config{Latency: time.Millisecond, Seed: 5}, stockAll(100))
	w := s.Worker(t, map[string]string{"ORDER_WORKER_RETRY_IN_PLACE": "10s", "ORDER_WORKER_RETRY_TIERS": "5s,10s", "PAYMENT_BREAKER_FAILURES": "3"})
	s.Sim.SetDown(true)
	accepted := s.PlaceMany(t, 60, 8, func(i int) []byte {
		tok := "tok_card_" + fmt.Sprint(i)
		if i%10 == 0 {
			tok = "tok_decline_" + fmt.Sprint(i)
		}
		return orderJSON(tok, "standard", skus[i%len(skus)], 1)
	})
	// While it is down nothing is decided, and the breaker opens.
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(metrics(t, w.URL), "orderpipe_payment_breaker_state 2") {
		if time.Now().After(deadline) {
			t.Fatalf("breaker did not open during the outage:\n%s", grep(metrics(t, w.URL), "breaker"))
		}
		time.Sleep(100 * time.Millisecond)
	}
	var n int
	if err := s.Pool.QueryRow(t.Context(), `SELECT count(*) FROM orders`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("%d orders decided during a total payment outage, want 0 (nothing cancelled for a transient fault)", n)
	}
	s.Sim.SetDown(false)
	s.waitDecided(t, accepted, 60*time.Second)
	s.waitSettled(t, 60*time.Second)
	s.checkInvariants(t, accepted)
	out := s.outcomes(t)
	if out["cancelled/payment_declined"] != 6 || out["confirmed"] != len(accepted)-6 {
		t.Fatalf("outcomes %v, want 6 declines and the rest confirmed", out)
	}
	if m := metrics(t, w.URL); !strings.Contains(m, "orderpipe_payment_breaker_state 0") {
		t.Fatalf("breaker not closed after recovery:\n%s", grep(m, "breaker"))
	}
}

// A schema-invalid record goes straight to the dead-letter topic with the documented headers,
// and the partition keeps flowing: valid orders behind it on the same partition are processed.
func TestPoisonRecordIsDeadLetteredAndThePartitionFlows(t *testing.T) {
	t.Parallel()
	s := setup(t, paysim.Config{Latency: time.Millisecond, Seed: 1}, stockAll(100))
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.Kafka.ListenAddrs()...), kgo.DefaultProduceTopic(event.TopicOrdersPlaced),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	poison := &kgo.Record{Partition: 0, Key: []byte("bad"), Value: []byte(`{"order_id":"not-a-uuid","lines":[]}`), Headers: []kgo.RecordHeader{
		{Key: "ce_id", Value: []byte("9b2f1a3c-0000-4000-8000-000000000001")}, {Key: "ce_type", Value: []byte(event.TypeOrderPlaced)},
		{Key: "ce_source", Value: []byte("/test")}, {Key: "ce_specversion", Value: []byte("1.0")}, {Key: "content-type", Value: []byte("application/json")},
	}}
	garbage := &kgo.Record{Partition: 0, Key: []byte("garbage"), Value: []byte("\x00\x01 not json")}
	if err := cl.ProduceSync(t.Context(), poison, garbage).FirstErr(); err != nil {
		t.Fatal(err)
	}
	// Valid orders after the poison, on the same partition.
	accepted := s.PlaceMany(t, 30, 4, func(i int) []byte { return orderJSON("tok_card_"+fmt.Sprint(i), "standard", skus[i%len(skus)], 1) })
	s.Worker(t, nil)
	s.waitDecided(t, accepted, 30*time.Second)
	s.waitSettled(t, 30*time.Second)
	s.checkInvariants(t, accepted)
	var dlq []consumer.DeadLetter
	deadline := time.Now().Add(20 * time.Second)
	for len(dlq) < 2 && time.Now().Before(deadline) {
		dlq = dlq[:0]
		for _, r := range s.Records(t, event.DeadLetterTopic("order-worker")) {
			d, err := consumer.ParseDeadLetter(r)
			if err != nil {
				t.Fatal(err)
			}
			dlq = append(dlq, d)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(dlq) != 2 {
		t.Fatalf("%d dead letters, want the 2 poison records", len(dlq))
	}
	for _, d := range dlq {
		if d.Topic != event.TopicOrdersPlaced || d.Partition != 0 || d.Class != "permanent" || d.Error == "" || d.Attempts != 1 || d.Time.IsZero() {
			t.Errorf("dead letter %+v lacks its source, class, error, attempts or time", d)
		}
	}
	byKey := map[string]consumer.DeadLetter{}
	for _, d := range dlq {
		byKey[string(d.Key)] = d
	}
	if d := byKey["bad"]; !bytes.Equal(d.Value, poison.Value) || d.Offset != 0 || len(d.Headers) != len(poison.Headers) {
		t.Errorf("dead letter of the schema-invalid record %+v does not carry the original record at offset 0", d)
	}
	if d := byKey["garbage"]; !bytes.Equal(d.Value, garbage.Value) || d.Offset != 1 {
		t.Errorf("dead letter of the undecodable record %+v does not carry the original record at offset 1", d)
	}
}

// Holds that expired before the worker reached the order: the Postgres guard decides. With stock
// left in Postgres the order is confirmed late (its units leave availability again); without,
// it is cancelled as expired and refunded. Never an oversell.
func TestExpiredHoldsAreDecidedByTheGuard(t *testing.T) {
	t.Parallel()
	s := setup(t, paysim.Config{Latency: time.Millisecond, Seed: 2}, map[string]int64{"BRK-PAD-1001": 10, "FLT-OIL-2001": 10, "BAT-5001": 10, "WIP-6001": 10, "TYR-WIN-7101": 10})
	// Hold all 10 units with orders whose holds then expire (the reaper returns them).
	first := s.PlaceMany(t, 10, 4, func(i int) []byte { return orderJSON("tok_card_a"+fmt.Sprint(i), "standard", "BRK-PAD-1001", 1) })
	if len(first) != 10 {
		t.Fatalf("%d accepted, want 10", len(first))
	}
	expired, err := s.Store.ExpireDue(t.Context(), "BRK-PAD-1001", time.Now().Add(time.Hour), 100)
	if err != nil || len(expired) != 10 {
		t.Fatalf("expired %d holds (%v), want 10", len(expired), err)
	}
	// The units are sellable again and get sold to 5 more buyers.
	second := s.PlaceMany(t, 5, 5, func(i int) []byte { return orderJSON("tok_card_b"+fmt.Sprint(i), "standard", "BRK-PAD-1001", 1) })
	if len(second) != 5 {
		t.Fatalf("%d accepted after the expiry, want 5", len(second))
	}
	all := map[string]bool{}
	for id := range first {
		all[id] = true
	}
	for id := range second {
		all[id] = true
	}
	s.Worker(t, nil)
	s.waitDecided(t, all, 30*time.Second)
	s.waitSettled(t, 30*time.Second)
	s.checkInvariants(t, all)
	var onHand, allocated int64
	if err := s.Pool.QueryRow(t.Context(), `SELECT on_hand, allocated FROM stock WHERE sku = 'BRK-PAD-1001'`).Scan(&onHand, &allocated); err != nil {
		t.Fatal(err)
	}
	out := s.outcomes(t)
	if allocated != 10 || out["confirmed"] != 10 || out["cancelled/expired"]+out["cancelled/out_of_stock"] != 5 {
		t.Fatalf("allocated %d of %d, outcomes %v: want 10 confirmed and 5 refused by the guard", allocated, onHand, out)
	}
	if st := s.Sim.Stats(); st.Refunds != 5 {
		t.Fatalf("%d refunds, want 5 (captured orders the guard refused)", st.Refunds)
	}
}

func metrics(t *testing.T, base string) string {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return b.String()
}

func grep(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

var (
	_ = context.Background
	_ = json.Marshal
	_ sync.Mutex
)

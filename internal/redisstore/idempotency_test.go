package redisstore_test

import (
	"reflect"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/orderpipe/orderpipe/internal/redisstore"
)

const (
	lease = 30 * time.Second
	ttl   = 24 * time.Hour
)

func TestBeginIdempotentConcurrentHasOneWinner(t *testing.T) {
	t.Parallel()
	b := setup(t)
	now := time.Now()

	const n = 20
	results := make([]redisstore.IdemBegin, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			results[i], errs[i] = b.store.BeginIdempotent(t.Context(), "orders", "key-1", "hash-1",
				"order-"+strconv.Itoa(i), lease, ttl, now)
		})
	}
	wg.Wait()

	counts := map[redisstore.IdemOutcome]int{}
	winner := ""
	for i, r := range results {
		if errs[i] != nil {
			t.Fatalf("BeginIdempotent %d: %v", i, errs[i])
		}
		counts[r.Outcome]++
		if r.Outcome == redisstore.IdemNew {
			winner = r.ID
		}
	}
	want := map[redisstore.IdemOutcome]int{redisstore.IdemNew: 1, redisstore.IdemInFlight: n - 1}
	if !reflect.DeepEqual(counts, want) {
		t.Fatalf("outcomes: got %v, want %v", counts, want)
	}
	for i, r := range results {
		if r.ID != winner {
			t.Fatalf("result %d ID: got %q, want the winner's %q", i, r.ID, winner)
		}
	}
}

// TestBeginIdempotentResentClaimIsStillOurs: a client that resends its begin command after
// losing the reply (a retry after a timeout, a pipelined batch replayed after a broken
// connection) must find its own claim, not a request in flight (a 409 to its own request).
// Another attempt, with its own new id, still finds the claim in flight.
func TestBeginIdempotentResentClaimIsStillOurs(t *testing.T) {
	t.Parallel()
	b := setup(t)
	now := time.Now()
	first, err := b.store.BeginIdempotent(t.Context(), "orders", "key-1", "hash-1", "order-a", lease, ttl, now)
	if err != nil || first.Outcome != redisstore.IdemNew || first.ID != "order-a" {
		t.Fatalf("first begin: %+v, %v; want new order-a", first, err)
	}
	again, err := b.store.BeginIdempotent(t.Context(), "orders", "key-1", "hash-1", "order-a", lease, ttl, now.Add(time.Millisecond))
	if err != nil || again.Outcome != redisstore.IdemNew || again.ID != "order-a" {
		t.Fatalf("the same begin resent: %+v, %v; want new order-a", again, err)
	}
	other, err := b.store.BeginIdempotent(t.Context(), "orders", "key-1", "hash-1", "order-b", lease, ttl, now.Add(time.Millisecond))
	if err != nil || other.Outcome != redisstore.IdemInFlight || other.ID != "order-a" {
		t.Fatalf("another attempt: %+v, %v; want in_flight with order-a", other, err)
	}
}

func TestIdempotencyLifecycle(t *testing.T) {
	t.Parallel()
	body := []byte("{\"order_id\":\"order-1\"}\x00\xff binary-safe")
	tests := []struct {
		name string
		// after runs between the first Begin (which creates order-1) and the
		// second Begin, made at now+elapsed with the given body hash.
		after   func(t *testing.T, b bundle)
		elapsed time.Duration
		hash    string
		want    redisstore.IdemBegin
	}{
		{
			name:  "in flight while the lease lives",
			after: func(*testing.T, bundle) {},
			hash:  "hash-1", elapsed: lease - time.Millisecond,
			want: redisstore.IdemBegin{Outcome: redisstore.IdemInFlight, ID: "order-1"},
		},
		{
			name: "finished answer replays",
			after: func(t *testing.T, b bundle) {
				if err := b.store.FinishIdempotent(t.Context(), "orders", "k", 202, "application/json", body); err != nil {
					t.Fatalf("FinishIdempotent: %v", err)
				}
			},
			hash: "hash-1",
			want: redisstore.IdemBegin{Outcome: redisstore.IdemReplay, ID: "order-1", Status: 202, ContentType: "application/json", Body: body},
		},
		{
			name:  "different body is a mismatch",
			after: func(*testing.T, bundle) {},
			hash:  "hash-2",
			want:  redisstore.IdemBegin{Outcome: redisstore.IdemMismatch, ID: "order-1"},
		},
		{
			name: "different body is a mismatch after finish too",
			after: func(t *testing.T, b bundle) {
				if err := b.store.FinishIdempotent(t.Context(), "orders", "k", 202, "application/json", body); err != nil {
					t.Fatalf("FinishIdempotent: %v", err)
				}
			},
			hash: "hash-2",
			want: redisstore.IdemBegin{Outcome: redisstore.IdemMismatch, ID: "order-1"},
		},
		{
			name: "aborted attempt is taken over with the same id",
			after: func(t *testing.T, b bundle) {
				if err := b.store.AbortIdempotent(t.Context(), "orders", "k"); err != nil {
					t.Fatalf("AbortIdempotent: %v", err)
				}
			},
			hash: "hash-1",
			want: redisstore.IdemBegin{Outcome: redisstore.IdemNew, ID: "order-1"},
		},
		{
			name:  "expired lease is taken over with the same id",
			after: func(*testing.T, bundle) {},
			hash:  "hash-1", elapsed: lease + time.Millisecond,
			want: redisstore.IdemBegin{Outcome: redisstore.IdemNew, ID: "order-1"},
		},
		{
			name: "abort does not reopen a finished answer",
			after: func(t *testing.T, b bundle) {
				if err := b.store.FinishIdempotent(t.Context(), "orders", "k", 409, "application/problem+json", body); err != nil {
					t.Fatalf("FinishIdempotent: %v", err)
				}
				if err := b.store.AbortIdempotent(t.Context(), "orders", "k"); err != nil {
					t.Fatalf("AbortIdempotent: %v", err)
				}
			},
			hash: "hash-1",
			want: redisstore.IdemBegin{Outcome: redisstore.IdemReplay, ID: "order-1", Status: 409, ContentType: "application/problem+json", Body: body},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			now := time.Now()
			first, err := b.store.BeginIdempotent(t.Context(), "orders", "k", "hash-1", "order-1", lease, ttl, now)
			if err != nil {
				t.Fatalf("first BeginIdempotent: %v", err)
			}
			if want := (redisstore.IdemBegin{Outcome: redisstore.IdemNew, ID: "order-1"}); !reflect.DeepEqual(first, want) {
				t.Fatalf("first BeginIdempotent: got %+v, want %+v", first, want)
			}
			tt.after(t, b)

			got, err := b.store.BeginIdempotent(t.Context(), "orders", "k", tt.hash, "order-2", lease, ttl, now.Add(tt.elapsed))
			if err != nil {
				t.Fatalf("second BeginIdempotent: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("second BeginIdempotent: got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestIdempotencyTTL(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	key := b.prefix + "idem:orders:k"
	now := time.Now()
	if _, err := b.store.BeginIdempotent(ctx, "orders", "k", "h", "order-1", lease, ttl, now); err != nil {
		t.Fatalf("BeginIdempotent: %v", err)
	}
	if got := pttl(t, b, key); got <= ttl-time.Minute || got > ttl {
		t.Fatalf("TTL after create: got %s, want about %s", got, ttl)
	}

	// Shorten the TTL, then take over: the TTL must not be extended.
	if err := b.client.PExpire(ctx, key, time.Minute).Err(); err != nil {
		t.Fatalf("PEXPIRE: %v", err)
	}
	got, err := b.store.BeginIdempotent(ctx, "orders", "k", "h", "order-2", lease, ttl, now.Add(2*lease))
	if err != nil {
		t.Fatalf("takeover: %v", err)
	}
	if got.Outcome != redisstore.IdemNew {
		t.Fatalf("takeover outcome: got %v, want %v", got.Outcome, redisstore.IdemNew)
	}
	if got := pttl(t, b, key); got <= 0 || got > time.Minute {
		t.Fatalf("TTL after takeover: got %s, want <= 1m", got)
	}

	if err := b.store.FinishIdempotent(ctx, "orders", "k", 202, "application/json", []byte("{}")); err != nil {
		t.Fatalf("FinishIdempotent: %v", err)
	}
	if got := pttl(t, b, key); got <= 0 || got > time.Minute {
		t.Fatalf("TTL after finish: got %s, want <= 1m", got)
	}
}

func TestFinishIdempotentDoesNotRecreateExpiredRecord(t *testing.T) {
	t.Parallel()
	b := setup(t)
	if err := b.store.FinishIdempotent(t.Context(), "orders", "gone", 202, "application/json", []byte("{}")); err != nil {
		t.Fatalf("FinishIdempotent: %v", err)
	}
	if err := b.store.AbortIdempotent(t.Context(), "orders", "gone"); err != nil {
		t.Fatalf("AbortIdempotent: %v", err)
	}
	n, err := b.client.Exists(t.Context(), b.prefix+"idem:orders:gone").Result()
	if err != nil {
		t.Fatalf("EXISTS: %v", err)
	}
	if n != 0 {
		t.Fatalf("record exists after finish and abort of an absent key: got %d, want 0", n)
	}
}

func pttl(t *testing.T, b bundle, key string) time.Duration {
	t.Helper()
	d, err := b.client.PTTL(t.Context(), key).Result()
	if err != nil {
		t.Fatalf("PTTL %s: %v", key, err)
	}
	return d
}

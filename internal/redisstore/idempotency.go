package redisstore

import (
	"context"
	"errors"
	"fmt"
	"github.com/redis/go-redis/v9"
	"strconv"
	"time"
)

// IdemOutcome says what BeginIdempotent found.
type IdemOutcome int

const (
	// IdemNew: this attempt owns the key and must do the work, with ID as the
	// order id (new, or the stored one when taking over a failed attempt).
	IdemNew IdemOutcome = iota + 1
	// IdemInFlight: another attempt holds a live lease (409).
	IdemInFlight
	// IdemReplay: the answer is stored; send Status, ContentType and Body.
	IdemReplay
	// IdemMismatch: the key was used with a different body (422).
	IdemMismatch
)

// String returns the outcome's name.
func (o IdemOutcome) String() string {
	switch o {
	case IdemNew:
		return "new"
	case IdemInFlight:
		return "in_flight"
	case IdemReplay:
		return "replay"
	case IdemMismatch:
		return "mismatch"
	}
	return "IdemOutcome(" + strconv.Itoa(int(o)) + ")"
}

// IdemBegin is the result of BeginIdempotent. Status, ContentType and Body are
// set for IdemReplay only.
type IdemBegin struct {
	Outcome     IdemOutcome
	ID          string
	Status      int
	ContentType string
	Body        []byte
}

// BeginIdempotent claims the idempotency key (scope, key) for a request whose
// body hashes to bodyHash:
//   - no record: create one in flight with newID, a lease until now+lease and
//     a TTL of ttl; IdemNew with newID.
//   - a record with another body hash: IdemMismatch.
//   - a finished record: IdemReplay with the stored answer.
//   - a record in flight under newID itself (this attempt's begin, resent after its reply was
//     lost): IdemNew with newID; newID must be new for every attempt.
//   - a record in flight with a live lease: IdemInFlight.
//   - a record given back by AbortIdempotent, or whose lease expired (its
//     attempt crashed): take it over with a new lease, keeping the TTL;
//     IdemNew with the stored ID, so a retry keeps the same order id.
//
// now is passed in (instead of read from Redis) so leases are testable; api
// instances are expected to have synchronised clocks.
func (s *Store) BeginIdempotent(ctx context.Context, scope, key, bodyHash, newID string, lease, ttl time.Duration, now time.Time) (IdemBegin, error) {
	switch {
	case key == "":
		return IdemBegin{}, errors.New("begin idempotent: empty key")
	case newID == "":
		return IdemBegin{}, errors.New("begin idempotent: empty id")
	case lease <= 0 || ttl < lease:
		return IdemBegin{}, fmt.Errorf("begin idempotent: lease %s, ttl %s: want 0 < lease <= ttl", lease, ttl)
	}
	k := s.idemKey(scope, key)
	vals, err := s.idemBegin.Run(ctx, s.rdb, []string{k},
		bodyHash, newID, now.UnixMilli(), lease.Milliseconds(), ttl.Milliseconds()).StringSlice()
	if err != nil {
		return IdemBegin{}, fmt.Errorf("begin idempotent %s: %w", k, classify(err))
	}
	if len(vals) < 2 {
		return IdemBegin{}, fmt.Errorf("begin idempotent %s: script reply has %d values", k, len(vals))
	}
	b := IdemBegin{ID: vals[1]}
	switch vals[0] {
	case "new":
		b.Outcome = IdemNew
	case "inflight":
		b.Outcome = IdemInFlight
	case "mismatch":
		b.Outcome = IdemMismatch
	case "replay":
		if len(vals) != 5 {
			return IdemBegin{}, fmt.Errorf("begin idempotent %s: replay reply has %d values, want 5", k, len(vals))
		}
		status, err := strconv.Atoi(vals[2])
		if err != nil {
			return IdemBegin{}, fmt.Errorf("begin idempotent %s: stored status: %w", k, err)
		}
		b.Outcome = IdemReplay
		b.Status = status
		b.ContentType = vals[3]
		b.Body = []byte(vals[4])
	default:
		return IdemBegin{}, fmt.Errorf("begin idempotent %s: unknown outcome %q", k, vals[0])
	}
	return b, nil
}

// Snapshot is the pending view of a just-accepted order, written together with its
// idempotent answer so GET /v1/orders/{id} answers before order-worker has written Postgres.
type Snapshot struct {
	OrderID string
	Doc     []byte
	TTL     time.Duration
}

// FinishIdempotent stores the final answer of the attempt that owns (scope,
// key), so later requests replay it. The TTL set by BeginIdempotent is kept;
// a record that already expired is not recreated. Snapshots (of an accepted
// order) are written in the same round trip (one pipeline; the keys may live
// in different cluster slots).
func (s *Store) FinishIdempotent(ctx context.Context, scope, key string, status int, contentType string, body []byte, snaps ...Snapshot) error {
	k := s.idemKey(scope, key)
	calls := []scriptCall{{keys: []string{k}, args: []any{status, contentType, body}}}
	var sets []*redis.StatusCmd
	cmds := s.runPipelined(ctx, s.idemFinish, calls, func(p redis.Pipeliner) {
		for _, sn := range snaps {
			sets = append(sets, p.Set(ctx, s.orderKey(sn.OrderID), sn.Doc, sn.TTL))
		}
	})
	if err := cmds[0].Err(); err != nil {
		return fmt.Errorf("finish idempotent %s: %w", k, classify(err))
	}
	for i, c := range sets {
		if err := c.Err(); err != nil {
			return fmt.Errorf("pending snapshot of %s: %w", snaps[i].OrderID, classify(err))
		}
	}
	return nil
}

// AbortIdempotent gives (scope, key) back after a transient failure (a 5xx
// answer), so the client may retry: the record is reopened, its lease
// cleared, its ID and TTL kept. A finished record is left as it is.
func (s *Store) AbortIdempotent(ctx context.Context, scope, key string) error {
	k := s.idemKey(scope, key)
	if err := s.idemAbort.Run(ctx, s.rdb, []string{k}).Err(); err != nil {
		return fmt.Errorf("abort idempotent %s: %w", k, classify(err))
	}
	return nil
}

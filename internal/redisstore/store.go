// Package redisstore is the Redis adapter of orderpipe: the fast gate in
// front of Postgres. It owns the available-to-promise (ATP) counters and the
// holds of pending orders, idempotency records of the intake API, snapshots of
// just-accepted orders and rate limits.
//
// Every Lua script touches keys of exactly one hash slot, so the same code
// runs on a single node and on Redis Cluster. Key layout, with p the prefix
// given to New (default "op:"):
//
//	p+"inv:{SKU}"            hash  atp, held
//	p+"hold:{SKU}:"+orderID  hash  qty, deadline (unix ms)
//	p+"holds:{SKU}"          zset  member orderID, score deadline (unix ms)
//	p+"idem:"+scope+":"+key  hash  idempotency record
//	p+"ord:"+orderID         string JSON snapshot of a pending order, with a TTL
//	p+"promo:{SKU}:"+promoID hash  sold, c:<customer> (promotional units held or sold)
//	p+"prices"               hash  SKU -> JSON price timeline (promotion.Entry)
//	p+"prices-changed"       pub/sub channel of SKUs whose timeline changed
//	p+"promo-scheduler"      string lock of the promotion scheduler
//	"rate:"+p+"rl:"+scope    string GCRA state (redis_rate prepends "rate:")
//
// Errors caused by Redis being unreachable or not serving (connection
// refused, timeouts, closed client, pool timeouts, LOADING, CLUSTERDOWN...)
// satisfy errors.Is(err, ErrUnavailable).
package redisstore

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
)

// DefaultPrefix is the key prefix used when New is given an empty one.
const DefaultPrefix = "op:"

// compensateTimeout bounds the best-effort release of holds after a refused
// or failed reservation. It runs on a context detached from the caller's, so
// a caller that gave up does not leave holds behind.
const compensateTimeout = 2 * time.Second

// ErrUnavailable reports that Redis could not be reached or is not serving.
// The intake API answers 503 with Retry-After.
var ErrUnavailable = errors.New("redis unavailable")

//go:embed lua/*.lua
var luaFS embed.FS

// Store is the Redis adapter. It is safe for concurrent use.
type Store struct {
	rdb    redis.UniversalClient
	prefix string

	reserve    *redis.Script
	release    *redis.Script
	confirm    *redis.Script
	expire     *redis.Script
	idemBegin  *redis.Script
	idemFinish *redis.Script
	idemAbort  *redis.Script

	limiter  *redis_rate.Limiter
	endedTTL time.Duration
}

// DefaultEndedTTL is how long the marker of an ended hold (confirmed, released, expired) is kept:
// as long as the order topics are retained, so a replay of any record still finds it.
const DefaultEndedTTL = 7 * 24 * time.Hour

// Option configures a Store.
type Option func(*Store)

// WithEndedTTL sets how long ended-hold markers are kept (DefaultEndedTTL otherwise).
func WithEndedTTL(d time.Duration) Option { return func(s *Store) { s.endedTTL = d } }

// New returns a Store on client (a single node or a cluster client). Every
// key starts with prefix ("op:" when empty); the prefix must not contain
// braces, which would change the hash slots of the keys.
func New(client redis.UniversalClient, prefix string, opts ...Option) *Store {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	if strings.ContainsAny(prefix, "{}") {
		panic(fmt.Sprintf("redisstore: prefix %q contains a brace", prefix))
	}
	s := &Store{
		endedTTL:   DefaultEndedTTL,
		rdb:        client,
		prefix:     prefix,
		reserve:    loadScript("reserve.lua"),
		release:    loadScript("release.lua"),
		confirm:    loadScript("confirm.lua"),
		expire:     loadScript("expire.lua"),
		idemBegin:  loadScript("idem_begin.lua"),
		idemFinish: loadScript("idem_finish.lua"),
		idemAbort:  loadScript("idem_abort.lua"),
		limiter:    redis_rate.NewLimiter(client),
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

func loadScript(name string) *redis.Script {
	src, err := luaFS.ReadFile("lua/" + name)
	if err != nil {
		// The scripts are embedded at build time; a missing one is a build bug.
		panic(fmt.Sprintf("redisstore: embedded script %s: %v", name, err))
	}
	return redis.NewScript(string(src))
}

// Ping checks that Redis answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("ping redis: %w", classify(err))
	}
	return nil
}

func (s *Store) invKey(sku string) string   { return s.prefix + "inv:{" + sku + "}" }
func (s *Store) holdsKey(sku string) string { return s.prefix + "holds:{" + sku + "}" }
func (s *Store) holdKey(sku, orderID string) string {
	return s.prefix + "hold:{" + sku + "}:" + orderID
}
func (s *Store) endedKey(sku, orderID string) string {
	return s.prefix + "ended:{" + sku + "}:" + orderID
}
func (s *Store) promoPrefix(sku string) string { return s.prefix + "promo:{" + sku + "}:" }
func (s *Store) promoKey(sku, promotionID string) string {
	return s.promoPrefix(sku) + promotionID
}
func (s *Store) idemKey(scope, key string) string { return s.prefix + "idem:" + scope + ":" + key }
func (s *Store) orderKey(orderID string) string   { return s.prefix + "ord:" + orderID }
func (s *Store) rateKey(scope string) string      { return s.prefix + "rl:" + scope }

// checkSKU rejects SKUs that would break the {SKU} hash tag: an empty tag or
// a brace inside it would spread one SKU's keys over several slots.
func checkSKU(sku string) error {
	if sku == "" || strings.ContainsAny(sku, "{}") {
		return fmt.Errorf("invalid sku %q: must be non-empty and contain no braces", sku)
	}
	return nil
}

// scriptCall is one invocation of a script inside a pipeline.
type scriptCall struct {
	keys []string
	args []any
}

// runPipelined runs one script call per element of calls in one pipeline (one
// round trip per node) with EVALSHA. Calls answered NOSCRIPT did not run (the
// script cache was empty, e.g. after a restart or failover); they are sent
// again with EVAL, which also caches the script. Each returned command holds
// its own result or error.
func (s *Store) runPipelined(ctx context.Context, sc *redis.Script, calls []scriptCall, extra ...func(redis.Pipeliner)) []*redis.Cmd {
	cmds := make([]*redis.Cmd, len(calls))
	// Per-command errors are read from cmds; Exec's error is the first of them. Extra commands
	// ride in the same round trip; their callers read their own results.
	_, _ = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, c := range calls {
			cmds[i] = p.EvalSha(ctx, sc.Hash(), c.keys, c.args...)
		}
		for _, x := range extra {
			x(p)
		}
		return nil
	})
	var again []int
	for i, cmd := range cmds {
		if isNoScript(cmd.Err()) {
			again = append(again, i)
		}
	}
	if len(again) == 0 {
		return cmds
	}
	_, _ = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, i := range again {
			cmds[i] = sc.Eval(ctx, p, calls[i].keys, calls[i].args...)
		}
		return nil
	})
	return cmds
}

func isNoScript(err error) bool {
	return err != nil && (errors.Is(err, redis.ErrNoScript) || redis.HasErrorPrefix(err, "NOSCRIPT"))
}

// classify marks connectivity failures with ErrUnavailable. Error replies
// from a working server (a script error, a wrong type) are returned as they
// are, and so is the caller's own cancellation.
func classify(err error) error {
	if err == nil || errors.Is(err, ErrUnavailable) || errors.Is(err, context.Canceled) {
		return err
	}
	var rerr redis.Error
	if errors.As(err, &rerr) {
		// Replies meaning the server cannot serve right now, as opposed to a
		// bad command or a script bug.
		for _, p := range []string{
			"LOADING", "CLUSTERDOWN", "MASTERDOWN", "TRYAGAIN", "READONLY",
			"NOREPLICAS", "BUSY", "OOM", "max number of clients reached",
		} {
			if redis.HasErrorPrefix(err, p) {
				return fmt.Errorf("%w: %w", ErrUnavailable, err)
			}
		}
		return err
	}
	// Anything else is the transport: dial and network errors, timeouts
	// (including the caller's deadline), io.EOF, redis.ErrClosed and
	// redis.ErrPoolTimeout.
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}

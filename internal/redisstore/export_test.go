package redisstore

import (
	"context"

	"github.com/redis/go-redis/v9"
)

// RunPipelined exposes the pipelined EVALSHA-with-EVAL-fallback runner to the
// black-box tests, with a script of their own that Redis has never cached.
func RunPipelined(ctx context.Context, s *Store, sc *redis.Script, keys [][]string, args [][]any) []*redis.Cmd {
	calls := make([]scriptCall, len(keys))
	for i := range keys {
		calls[i] = scriptCall{keys: keys[i], args: args[i]}
	}
	return s.runPipelined(ctx, sc, calls)
}

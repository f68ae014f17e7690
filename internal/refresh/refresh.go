// Package refresh runs the reload of an in-process cache (catalog, API keys, trade accounts) on a
// period.
package refresh

import (
	"context"
	"time"
)

// Every calls load every interval until ctx ends, then returns nil. A failed load is reported to
// onErr (unless ctx ended meanwhile); the cache keeps what it had, so it serves through a
// database blip.
func Every(ctx context.Context, every time.Duration, load func(context.Context) error, onErr func(error)) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := load(ctx); err != nil && ctx.Err() == nil {
				onErr(err)
			}
		}
	}
}

package refresh

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

// Every reloads on its period, reports failures and keeps going, and returns when ctx ends.
func TestEveryReloadsReportsAndStops(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	var loads, failures atomic.Int32
	done := make(chan error, 1)
	go func() {
		done <- Every(ctx, 5*time.Millisecond, func(context.Context) error {
			if loads.Add(1)%2 == 0 {
				return errors.New("database blip")
			}
			return nil
		}, func(error) { failures.Add(1) })
	}()
	deadline := time.Now().Add(10 * time.Second)
	for failures.Load() < 2 || loads.Load() < 4 {
		if time.Now().After(deadline) {
			t.Fatalf("after 10s: %d loads, %d failures reported; want it to keep reloading after a failure", loads.Load(), failures.Load())
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Every returned %v when its context ended, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Every did not return after its context ended")
	}
}

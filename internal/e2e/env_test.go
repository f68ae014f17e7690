package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/orderpipe/orderpipe/internal/testenv"
)

var (
	binOnce sync.Once
	binDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		_ = os.RemoveAll(binDir) // the symlinks only; testenv.Binary keeps its builds
	}
	os.Exit(code)
}

// testBin builds every binary (testenv.Binary) into one directory, as make build does.
func testBin(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "orderpipe-e2e-bin-")
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"api", "order-worker", "inventory-sync", "notifier", "orderctl"} {
			if err := os.Symlink(testenv.Binary(t, name), filepath.Join(dir, name)); err != nil {
				t.Fatal(err)
			}
		}
		binDir = dir
	})
	if binDir == "" {
		t.Fatal("binaries were not built")
	}
	return binDir
}

// TestChaosActionsBringEverythingBack runs every chaos action once against an idle private
// environment and checks that each process it touched is back, running and ready, that no
// process ended on its own, and that every step recorded evidence: the faults are confirmed
// (restarts seen in the servers' identities, leaders moved, nodes gone and back, the outage seen
// in the simulator's health), while the kills are not, because nothing was in hand to lose in
// an idle environment, and the produce-error fault hits no request when nobody produces.
func TestChaosActionsBringEverythingBack(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	env, err := Start(ctx, Options{Bin: testBin(t), Partitions: 3, Progress: testWriter{t}, KillWait: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	if err := env.StartServices(ctx); err != nil {
		t.Fatal(err)
	}
	steps := []Step{
		{Action: "kill", Target: "order-worker", For: 500 * time.Millisecond},
		{Action: "kill", Target: "inventory-sync", For: 500 * time.Millisecond},
		{Action: "kill", Target: "notifier", For: 500 * time.Millisecond},
		{Action: "scale", Target: "order-worker", Replicas: 2},
		{Action: "scale", Target: "order-worker", Replicas: 1},
		{Action: "payment-outage", For: 500 * time.Millisecond},
		{Action: "broker-fault", Kind: "produce-error", For: 500 * time.Millisecond},
		{Action: "broker-fault", Kind: "latency", For: 500 * time.Millisecond, Args: map[string]string{"latency": "50ms"}},
		{Action: "broker-fault", Kind: "leader-move"},
		{Action: "broker-fault", Kind: "broker-remove", For: time.Second},
		{Action: "broker-fault", Kind: "broker-add"},
		{Action: "redis-restart-empty"},
		{Action: "postgres-restart", For: 500 * time.Millisecond},
	}
	for _, s := range steps {
		rec := env.Do(ctx, s)
		t.Logf("%s: %s (%s); evidence %q, confirmed %v", rec.Step, rec.Detail, rec.Took, rec.Evidence, rec.Confirmed)
		if rec.Error != "" {
			t.Fatalf("%s: %s", rec.Step, rec.Error)
		}
		idle := s.Action == "kill" || s.Kind == "produce-error"
		if len(rec.Evidence) == 0 || rec.Confirmed == idle {
			t.Errorf("%s: confirmed %v with evidence %q, want confirmed %v", rec.Step, rec.Confirmed, rec.Evidence, !idle)
		}
		if s.Action == "kill" && !strings.Contains(strings.Join(rec.Evidence, "\n"), "the kill hit an idle process") {
			t.Errorf("%s: evidence %q does not say the kill hit an idle process", rec.Step, rec.Evidence)
		}
	}
	if got := len(env.Sup.Group("order-worker")); got != 1 {
		t.Errorf("order-worker replicas after scaling to 1: got %d", got)
	}
	for _, name := range []string{"api", "order-worker-1", "inventory-sync", "notifier", "redis", "postgres", "broker", "paysim"} {
		p, ok := env.Sup.Get(name)
		if !ok || !p.Running() {
			t.Errorf("%s is not running after the chaos steps", name)
		}
	}
	// Every service is ready again: they reconnect to the restarted Postgres and Redis.
	for _, name := range []string{"api", "order-worker-1", "inventory-sync", "notifier"} {
		rctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		if err := waitHTTP(rctx, "http://"+env.port(name)+"/readyz"); err != nil {
			t.Errorf("%s not ready after the chaos steps: %v", name, err)
		}
		cancel()
	}
	if ex := env.Sup.UnexpectedExits(); len(ex) > 0 {
		t.Errorf("processes ended on their own: %+v", ex)
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

package orderctl

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/orderpipe/orderpipe/internal/testenv"
)

// TestDevStartsPrivateServicesWhenNothingAnswers: with nothing on the configured loopback
// addresses, dev starts a private Postgres and Redis from the installed binaries, says so, and
// both answer; a second start reuses the Postgres cluster (its data survives); addresses that
// answer are left alone.
func TestDevStartsPrivateServicesWhenNothingAnswers(t *testing.T) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatalf("redis-server not installed (Debian package redis-server): %v", err)
	}
	pgPort, redisPort := testenv.FixedPort(t), testenv.FixedPort(t)
	dataDir := t.TempDir()
	// Postgres runs as the user postgres when the test runs as root: it must reach the directory.
	for d := dataDir; d != os.TempDir(); d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	dbURL := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/orderpipe?sslmode=disable", pgPort)
	redisAddr := fmt.Sprintf("127.0.0.1:%d", redisPort)

	start := func() (*env, *bytes.Buffer, []*child) {
		t.Helper()
		var out bytes.Buffer
		e := &env{stdout: &out}
		e.cfg.DatabaseURL = dbURL
		e.cfg.RedisAddrs = []string{redisAddr}
		children, err := e.privateServices(t.Context(), dataDir, make(chan error, 4))
		t.Cleanup(func() { stopAll(children) })
		if err != nil {
			t.Fatalf("privateServices: %v\n%s", err, out.String())
		}
		return e, &out, children
	}

	_, out, children := start()
	for _, want := range []string{
		fmt.Sprintf("postgres: nothing answered on 127.0.0.1:%d", pgPort),
		fmt.Sprintf("redis: nothing answered on 127.0.0.1:%d", redisPort),
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("dev's output lacks %q:\n%s", want, out.String())
		}
	}
	if len(children) != 2 {
		t.Fatalf("started %d private servers, want 2", len(children))
	}
	if err := createDatabase(t.Context(), dbURL); err != nil {
		t.Fatalf("create database on the private Postgres: %v", err)
	}
	conn, err := pgx.Connect(t.Context(), dbURL)
	if err != nil {
		t.Fatalf("connect to the private Postgres: %v", err)
	}
	if _, err := conn.Exec(t.Context(), `CREATE TABLE kept (v int); INSERT INTO kept VALUES (42)`); err != nil {
		t.Fatalf("write to the private Postgres: %v", err)
	}
	_ = conn.Close(t.Context())
	rc := redis.NewClient(&redis.Options{Addr: redisAddr})
	defer rc.Close()
	if err := rc.Set(t.Context(), "k", "v", 0).Err(); err != nil {
		t.Fatalf("write to the private Redis: %v", err)
	}

	// While both answer, a second dev leaves them alone.
	_, out2, again := start()
	if len(again) != 0 || out2.Len() != 0 {
		t.Fatalf("with both answering, dev started %d servers and said %q; want none and nothing", len(again), out2.String())
	}

	// Stopped and started again: the Postgres cluster in the data directory is reused.
	stopAll(children)
	start()
	conn, err = pgx.Connect(t.Context(), dbURL)
	if err != nil {
		t.Fatalf("connect to the restarted private Postgres: %v", err)
	}
	defer conn.Close(t.Context())
	var v int
	if err := conn.QueryRow(t.Context(), `SELECT v FROM kept`).Scan(&v); err != nil || v != 42 {
		t.Fatalf("the restarted private Postgres lost its data: v=%d err=%v (data dir %s)", v, err, filepath.Join(dataDir, "postgres"))
	}
}

// TestDevNeverReplacesARemoteAddress: a configured address off loopback is not dev's to start.
func TestDevNeverReplacesARemoteAddress(t *testing.T) {
	if _, _, down := localDown("db.internal.example", "5432", "5432"); down {
		t.Error("a host name off loopback was taken as a local address to start")
	}
	if _, _, down := localDown("10.1.2.3", "", "6379"); down {
		t.Error("a private-range address was taken as a local address to start")
	}
}

func stopAll(children []*child) {
	for i := len(children) - 1; i >= 0; i-- {
		children[i].stop()
	}
}

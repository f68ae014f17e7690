package orderctl_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderpipe/orderpipe/internal/testenv"
)

// TestMakeRunThenReadmeCurl is the README's promise, end to end: build the binaries, run
// `orderctl dev` (what `make run` runs) against the machine's Postgres and Redis, take the key it
// prints, run the README's curl commands exactly as written (only the port and the key differ),
// stop it with Ctrl-C, start it again on the same data directory and find the accepted order's
// record still on the broker. It runs on both brokers `make run` offers: kfake (the default) and
// one real Apache Kafka node (BROKER=kafka).
func TestMakeRunThenReadmeCurl(t *testing.T) {
	t.Run("kfake", func(t *testing.T) { testMakeRunThenReadmeCurl(t, "kfake", 90*time.Second) })
	t.Run("kafka", func(t *testing.T) {
		testenv.RealKafkaTier(t)
		// A first start may resolve the server jars; a JVM on this busy 2-core machine took up to
		// 70 s to serve metadata with the whole pipeline starting beside it.
		testMakeRunThenReadmeCurl(t, "kafka", 4*time.Minute)
	})
}

func testMakeRunThenReadmeCurl(t *testing.T, broker string, startWithin time.Duration) {
	for _, tool := range []string{"curl", "bash"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed to run the README's commands: %v", tool, err)
		}
	}
	root := repoRoot(t)
	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", bin+"/", "./cmd/api", "./cmd/orderctl", "./cmd/order-worker", "./cmd/inventory-sync", "./cmd/notifier")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	_, prefix := testenv.Redis(t) // cleans the keys up afterwards
	dbName := "orderpipe_dev_" + strings.ReplaceAll(strings.Trim(prefix, ":"), ":", "_")
	dbURL := strings.Replace(testDatabaseURL(), "/test?", "/"+dbName+"?", 1)
	t.Cleanup(func() { dropDatabase(t, dbName) })
	apiAddr, brokerPort, paysimAddr, workerAddr := freeAddr(t), freePort(t), freeAddr(t), freeAddr(t)
	dataDir := t.TempDir()
	env := append(os.Environ(), "DATABASE_URL="+dbURL, "REDIS_KEY_PREFIX="+prefix, "KAFKA_PARTITIONS=2")

	run := func() (*exec.Cmd, *lines) {
		cmd := exec.Command(filepath.Join(bin, "orderctl"), "dev", "--broker", broker, "--data-dir", dataDir, "--api-addr", apiAddr, "--broker-port", fmt.Sprint(brokerPort),
			"--paysim-addr", paysimAddr, "--worker-admin-addr", workerAddr, "--smtp-addr", freeAddr(t), "--mail-http-addr", freeAddr(t),
			"--notifier-admin-addr", freeAddr(t), "--inventory-admin-addr", freeAddr(t))
		cmd.Env = env
		out := &lines{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill() })
		if !out.waitFor("Ctrl-C stops everything", startWithin) {
			_ = cmd.Process.Kill()
			t.Fatalf("orderctl dev did not come up:\n%s", out.String())
		}
		return cmd, out
	}
	stop := func(cmd *exec.Cmd, out *lines) {
		_ = cmd.Process.Signal(syscall.SIGINT)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("orderctl dev exited with %v after Ctrl-C:\n%s", err, out.String())
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("orderctl dev did not stop after Ctrl-C:\n%s", out.String())
		}
		if c, err := net.DialTimeout("tcp", apiAddr, time.Second); err == nil {
			c.Close()
			t.Fatal("the api is still listening after orderctl dev stopped")
		}
	}

	cmd, out := run()
	key := regexp.MustCompile(`checkout\s+(op_[0-9a-f]{12}_\S+)`).FindStringSubmatch(out.String())
	if key == nil {
		t.Fatalf("no checkout key in the output:\n%s", out.String())
	}
	script := readmeBlock(t, root, "curl")
	script = strings.ReplaceAll(script, "127.0.0.1:8080", apiAddr)
	sh := exec.Command("bash", "-euo", "pipefail", "-c", script)
	sh.Env = append(os.Environ(), "ORDERPIPE_KEY="+key[1])
	shOut, err := sh.CombinedOutput()
	if err != nil {
		t.Fatalf("README commands failed: %v\n%s\nscript:\n%s\norderctl dev output:\n%s", err, shOut, script, out.String())
	}
	for _, want := range []string{`"status":"pending"`, `"order_id":`, `"available":`} {
		if !strings.Contains(string(shOut), want) {
			t.Fatalf("README commands printed no %s:\n%s", want, shOut)
		}
	}
	// The demo warehouse is registered: the README's signed webhook example, with the ops key and
	// the secret orderctl dev printed, is accepted.
	ops := regexp.MustCompile(`ops\s+(op_[0-9a-f]{12}_\S+)`).FindStringSubmatch(out.String())
	whSecret := regexp.MustCompile(`webhook secret\s+(whsec_\S+)`).FindStringSubmatch(out.String())
	if ops == nil || whSecret == nil {
		t.Fatalf("no ops key or demo warehouse secret in the output:\n%s", out.String())
	}
	wh := exec.Command("sh", "-ec", readmeBlock(t, root, "webhook"))
	wh.Env = append(os.Environ(), "ORDERPIPE_URL=http://"+apiAddr, "ORDERPIPE_INVENTORY_KEY="+ops[1], "WAREHOUSE_SECRET="+whSecret[1])
	if whOut, err := wh.CombinedOutput(); err != nil || !strings.Contains(string(whOut), `"accepted":1`) {
		t.Fatalf("README webhook example against orderctl dev: %v\n%s", err, whOut)
	}
	// The order worker decided the order: the last answer shows a terminal status.
	if !regexp.MustCompile(`"status":"(confirmed|cancelled)"`).Match(shOut) {
		t.Fatalf("the order was not decided by order-worker; README commands printed:\n%s", shOut)
	}
	// The notifier e-mailed the buyer: one message in the sink's directory.
	deadline := time.Now().Add(20 * time.Second)
	for {
		mails, _ := filepath.Glob(filepath.Join(dataDir, "mail", "*order_*.eml")) // the daily ops summary may be there too
		if len(mails) == 1 {
			break
		}
		if len(mails) > 1 || time.Now().After(deadline) {
			t.Fatalf("%d order e-mails in the sink, want exactly 1 for the one order:\n%s", len(mails), out.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	stop(cmd, out)

	// Restart on the same data directory: the broker kept the accepted order's record.
	cmd, out = run()
	if n := countRecords(t, fmt.Sprintf("127.0.0.1:%d", brokerPort), "orders.placed"); n != 1 {
		t.Fatalf("%d records on orders.placed after a restart, want the 1 accepted before it", n)
	}
	stop(cmd, out)
}

// readmeBlock returns the fenced shell block between <!-- name:begin --> and <!-- name:end -->.
func readmeBlock(t *testing.T, root, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	i, j := strings.Index(s, "<!-- "+name+":begin -->"), strings.Index(s, "<!-- "+name+":end -->")
	if i < 0 || j < i {
		t.Fatalf("README.md has no %s block", name)
	}
	block := s[i:j]
	start := strings.Index(block, "```sh\n")
	end := strings.LastIndex(block, "```")
	if start < 0 || end <= start {
		t.Fatalf("README %s block has no ```sh fence", name)
	}
	return block[start+len("```sh\n") : end]
}

func countRecords(t *testing.T, broker, topic string) int64 {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(broker))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(t.Context(), topic)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
	return n
}

type lines struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (l *lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *lines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *lines) waitFor(s string, within time.Duration) bool {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if strings.Contains(l.String(), s) {
			return true
		}
		time.Sleep(100 * time.Millisecond)
	}
	return false
}

func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found")
		}
		dir = parent
	}
}

func testDatabaseURL() string {
	if u := os.Getenv("TEST_DATABASE_URL"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
}

// dropDatabase drops the test's database. The timeout only bounds a hung server: DROP DATABASE
// waits for the locks of other tests creating and dropping databases, which took more than 10 s
// on a busy 2-CPU machine.
func dropDatabase(t *testing.T, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, strings.Replace(testDatabaseURL(), "/test?", "/postgres?", 1))
	if err != nil {
		t.Errorf("drop database %s: %v", name, err)
		return
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		t.Errorf("drop database %s: %v", name, err)
	}
}

// freePort returns a port below the kernel's ephemeral range (testenv.FixedPort): orderctl dev
// binds it seconds later.
func freePort(t *testing.T) int { return testenv.FixedPort(t) }

func freeAddr(t *testing.T) string { return fmt.Sprintf("127.0.0.1:%d", freePort(t)) }

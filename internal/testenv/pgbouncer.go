package testenv

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// PgBouncer starts a real PgBouncer (Debian package pgbouncer) in transaction pooling mode in
// front of the Postgres of schemaURL (a URL from Postgres, with search_path), and returns the URL
// a service uses through it: the pooler's address, and default_query_exec_mode=cache_describe,
// the pgx mode that sends no named prepared statements (a transaction-mode pooler hands every
// transaction to any server connection, so a statement prepared on one is unknown on the next)
// and still knows every parameter's type (exec, which guesses them, cannot send a []uuid.UUID).
//
// The pooler cannot pass search_path through (it forwards few startup parameters), so its
// database entry sets it on every server connection it opens. It stops when the test ends.
func PgBouncer(t testing.TB, schemaURL string) string {
	t.Helper()
	bin, err := exec.LookPath("pgbouncer")
	if err != nil {
		t.Fatalf("pgbouncer is needed to test through a transaction pooler (apt-get install pgbouncer): %v", err)
	}
	u, err := url.Parse(schemaURL)
	if err != nil {
		t.Fatalf("database url: %v", err)
	}
	schema := u.Query().Get("search_path")
	host, port := u.Hostname(), u.Port()
	if port == "" {
		port = "5432"
	}
	dbname, dbuser := strings.TrimPrefix(u.Path, "/"), u.User.Username()
	if schema == "" || dbname == "" || dbuser == "" {
		t.Fatalf("database url %q: want a user, a database and a search_path", schemaURL)
	}

	// Not t.TempDir: its parent is private to this user, and the pooler may run as another.
	dir, err := os.MkdirTemp("", "pgbouncer-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	// PgBouncer refuses to run as root; as root, it is started as the postgres user (-u), which
	// must be able to read its configuration and write its pid file here.
	var asUser []string
	if os.Geteuid() == 0 {
		pg, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("pgbouncer does not run as root and there is no postgres user: %v", err)
		}
		uid, _ := strconv.Atoi(pg.Uid)
		gid, _ := strconv.Atoi(pg.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
		asUser = []string{"-u", "postgres"}
	}

	for attempt := 0; ; attempt++ {
		listen := FreePort(t)
		ini := fmt.Sprintf(`[databases]
pool = host=%s port=%s dbname=%s user=%s connect_query='SET search_path TO %s'

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %d
unix_socket_dir =
auth_type = any
pool_mode = transaction
default_pool_size = 2
max_client_conn = 500
ignore_startup_parameters = extra_float_digits,search_path
admin_users = %s
pidfile = %s
logfile = %s
`, host, port, dbname, dbuser, pgx.Identifier{schema}.Sanitize(), listen, dbuser, filepath.Join(dir, "pgbouncer.pid"), filepath.Join(dir, "pgbouncer.log"))
		cfg := filepath.Join(dir, "pgbouncer.ini")
		if err := os.WriteFile(cfg, []byte(ini), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, append(asUser, cfg)...)
		out := &strings.Builder{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatalf("start pgbouncer: %v", err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		stop := func() {
			_ = cmd.Process.Signal(os.Interrupt)
			select {
			case <-exited:
			case <-time.After(5 * time.Second):
				_ = cmd.Process.Kill()
				<-exited
			}
		}
		poolURL := fmt.Sprintf("postgres://%s@127.0.0.1:%d/pool?sslmode=disable&default_query_exec_mode=cache_describe", url.PathEscape(dbuser), listen)
		if err := waitPooler(poolURL, schema, exited); err != nil {
			stop()
			log, _ := os.ReadFile(filepath.Join(dir, "pgbouncer.log"))
			if attempt < 3 && strings.Contains(string(log)+out.String(), "Address already in use") {
				continue // the port was taken between choosing and binding it
			}
			t.Fatalf("pgbouncer did not come up: %v\n%s\n%s", err, out.String(), log)
		}
		t.Cleanup(stop)
		return poolURL
	}
}

// PoolerTransactions is how many transactions the pooler of poolURL (from PgBouncer) has passed
// to Postgres for its database, read from its admin console (SHOW STATS).
func PoolerTransactions(t testing.TB, poolURL string) int64 {
	t.Helper()
	u, err := url.Parse(poolURL)
	if err != nil {
		t.Fatal(err)
	}
	u.Path, u.RawQuery = "/pgbouncer", "sslmode=disable&default_query_exec_mode=simple_protocol"
	conn, err := pgx.Connect(t.Context(), u.String())
	if err != nil {
		t.Fatalf("pgbouncer admin console: %v", err)
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(t.Context(), "SHOW STATS")
	if err != nil {
		t.Fatalf("SHOW STATS: %v", err)
	}
	defer rows.Close()
	col := map[string]int{}
	for i, f := range rows.FieldDescriptions() {
		col[f.Name] = i
	}
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			t.Fatal(err)
		}
		if vals[col["database"]] != "pool" {
			continue
		}
		n, ok := vals[col["total_xact_count"]].(pgtype.Numeric)
		if !ok {
			t.Fatalf("total_xact_count is a %T, want a numeric", vals[col["total_xact_count"]])
		}
		v, err := n.Int64Value()
		if err != nil {
			t.Fatal(err)
		}
		return v.Int64
	}
	t.Fatalf("SHOW STATS has no row for the pooled database: %v", rows.Err())
	return 0
}

// waitPooler waits until a query through the pooler sees schema as its search_path.
func waitPooler(poolURL, schema string, exited <-chan error) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case err := <-exited:
			return fmt.Errorf("pgbouncer exited: %v", err)
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		conn, err := pgx.Connect(ctx, poolURL)
		if err == nil {
			var path string
			err = conn.QueryRow(ctx, "SHOW search_path").Scan(&path)
			_ = conn.Close(ctx)
			if err == nil && !strings.Contains(path, schema) {
				err = fmt.Errorf("search_path through the pooler is %q, want %s", path, schema)
			}
		}
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// FreePort is a loopback port that was free a moment ago, for a server a test starts that cannot
// listen on port 0; the caller retries when it was taken meanwhile.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
)

// PostgresBinDir is where initdb, postgres and pg_ctl are looked up (Debian's layout).
var PostgresBinDir = "/usr/lib/postgresql/15/bin"

// freePort asks the kernel for a free loopback port. Another process could take it before it is
// used; every caller fails clearly if so.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func freeAddr() (string, error) {
	p, err := freePort()
	if err != nil {
		return "", err
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(p)), nil
}

// pgCredential runs Postgres as the "postgres" user when this process is root (initdb and
// postgres refuse to run as root); otherwise as the current user.
func pgCredential() (*syscall.Credential, int, int, error) {
	if os.Geteuid() != 0 {
		return nil, os.Getuid(), os.Getgid(), nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, 0, 0, fmt.Errorf("running as root, Postgres needs the user postgres: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, uid, gid, nil
}

// initPostgres creates a private cluster in dir (trust auth, user postgres), or reuses the one
// already there, and returns the spec of its server on port. fsync stays on: the restart chaos step is a crash (immediate
// shutdown) and must recover like a real one.
func initPostgres(ctx context.Context, dir string, port int, extra ...string) (Spec, error) {
	cred, uid, gid, err := pgCredential()
	if err != nil {
		return Spec{}, err
	}
	data := filepath.Join(dir, "data")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Spec{}, err
	}
	if err := os.Chown(dir, uid, gid); err != nil {
		return Spec{}, fmt.Errorf("chown %s: %w", dir, err)
	}
	if _, err := os.Stat(filepath.Join(data, "PG_VERSION")); err != nil {
		initdb := exec.CommandContext(ctx, filepath.Join(PostgresBinDir, "initdb"), "-D", data, "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync")
		initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		initdb.Dir = dir
		if out, err := initdb.CombinedOutput(); err != nil {
			return Spec{}, fmt.Errorf("initdb %s: %w\n%s", data, err, out)
		}
	}
	url := postgresURL(port, "postgres")
	return Spec{
		Name:  "postgres",
		Group: "postgres",
		Cmd: func() *exec.Cmd {
			c := exec.Command(filepath.Join(PostgresBinDir, "postgres"), "-D", data, "-p", strconv.Itoa(port),
				"-k", dir, "-c", "listen_addresses=127.0.0.1", "-c", "max_connections=200",
				"-c", "shared_buffers=64MB", "-c", "synchronous_commit=on")
			c.Args = append(c.Args, extra...)
			c.Dir = dir
			c.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
			return c
		},
		Ready: func(ctx context.Context) error {
			return poll(ctx, func(ctx context.Context) error {
				conn, err := pgx.Connect(ctx, url)
				if err != nil {
					return err
				}
				return conn.Close(ctx)
			})
		},
	}, nil
}

func postgresURL(port int, db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", port, db)
}

// PrivatePostgres is initPostgres for other commands (orderctl dev) and tests: a private cluster
// in dir, created once and reused by later starts; extra are more server arguments ("-c",
// "ssl=on", ...). Its Ready connects without TLS: a server that requires TLS needs its own check.
func PrivatePostgres(ctx context.Context, dir string, port int, extra ...string) (Spec, error) {
	return initPostgres(ctx, dir, port, extra...)
}

// PostgresOwner is the user and group a private Postgres runs as (the user postgres when this
// process is root), who must own its key files.
func PostgresOwner() (uid, gid int, err error) {
	_, uid, gid, err = pgCredential()
	return uid, gid, err
}

// PrivateRedis is redisSpec for other commands (orderctl dev).
func PrivateRedis(dir string, port int) Spec { return redisSpec(dir, port) }

// redisSpec is a private redis-server on port that keeps nothing on disk, so a restart comes
// back empty.
func redisSpec(dir string, port int) Spec {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	return Spec{
		Name:  "redis",
		Group: "redis",
		Cmd: func() *exec.Cmd {
			c := exec.Command("redis-server", "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
				"--save", "", "--appendonly", "no", "--dir", dir, "--protected-mode", "no")
			c.Dir = dir
			return c
		},
		Ready: func(ctx context.Context) error {
			return poll(ctx, func(ctx context.Context) error {
				c := redis.NewClient(&redis.Options{Addr: addr})
				defer c.Close()
				return c.Ping(ctx).Err()
			})
		},
	}
}

// poll calls fn every 100ms until it succeeds or ctx ends.
func poll(ctx context.Context, fn func(context.Context) error) error {
	for {
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := fn(actx)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %v)", ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

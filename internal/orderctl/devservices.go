package orderctl

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/orderpipe/orderpipe/internal/e2e"
)

// privateServices starts a private Postgres and a private Redis for `orderctl dev` when nothing
// answers on the configured loopback addresses, so a newcomer needs only the installed binaries
// (Debian's postgresql and redis-server packages). Postgres keeps its cluster in
// dataDir/postgres across runs; Redis keeps nothing (dev loads the demo stock at every start).
// A configured address that is not on loopback is never replaced: dev then fails on connecting,
// naming the setting.
func (e *env) privateServices(ctx context.Context, dataDir string, exited chan<- error) ([]*child, error) {
	var started []*child
	start := func(spec e2e.Spec, what, addr, dir string) error {
		cmd := spec.Cmd()
		logf, err := os.Create(filepath.Join(dir, what+".log"))
		if err != nil {
			return err
		}
		cmd.Stdout, cmd.Stderr = logf, logf
		c, err := startChild(cmd, exited)
		if err != nil {
			return err
		}
		started = append(started, c)
		rctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		if err := spec.Ready(rctx); err != nil {
			return fmt.Errorf("private %s on %s did not come up (log: %s): %w", what, addr, logf.Name(), err)
		}
		fmt.Fprintf(e.stdout, "%s: nothing answered on %s, so dev started a private one (data in %s, log %s)\n", what, addr, dir, logf.Name())
		return nil
	}

	u, err := url.Parse(e.cfg.DatabaseURL)
	if err != nil {
		return started, fmt.Errorf("DATABASE_URL: %w", err)
	}
	if pgAddr, port, ok := localDown(u.Hostname(), u.Port(), "5432"); ok {
		dir, err := filepath.Abs(filepath.Join(dataDir, "postgres"))
		if err != nil {
			return started, err
		}
		spec, err := e2e.PrivatePostgres(ctx, dir, port)
		if err != nil {
			return started, fmt.Errorf("DATABASE_URL %s does not answer, and a private Postgres could not be made in %s "+
				"(it needs Debian's postgresql installed and, when run as root, every parent directory open to the user postgres (o+x), "+
				"or choose another --data-dir): %w", pgAddr, dir, err)
		}
		if err := start(spec, "postgres", pgAddr, dir); err != nil {
			return started, err
		}
	}
	if len(e.cfg.RedisAddrs) == 1 {
		host, portStr, err := net.SplitHostPort(e.cfg.RedisAddrs[0])
		if err != nil {
			return started, fmt.Errorf("REDIS_ADDRS: %w", err)
		}
		if redisAddr, port, ok := localDown(host, portStr, "6379"); ok {
			dir, err := filepath.Abs(filepath.Join(dataDir, "redis"))
			if err != nil {
				return started, err
			}
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return started, err
			}
			if err := start(e2e.PrivateRedis(dir, port), "redis", redisAddr, dir); err != nil {
				return started, err
			}
		}
	}
	return started, nil
}

// localDown reports whether host:port (port defaulting to def) is a loopback address on which
// nothing accepts a TCP connection.
func localDown(host, port, def string) (addr string, p int, down bool) {
	if port == "" {
		port = def
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return "", 0, false
	}
	if host == "" || host == "localhost" {
		host = "127.0.0.1"
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return "", 0, false
	}
	addr = net.JoinHostPort(host, port)
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err == nil {
		_ = c.Close()
		return addr, p, false
	}
	return addr, p, true
}

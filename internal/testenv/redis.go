package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/orderpipe/orderpipe/internal/redisstore"

	"github.com/redis/go-redis/v9"
)

// defaultRedisAddr is used when TEST_REDIS_ADDR is unset.
const defaultRedisAddr = "127.0.0.1:6379"

// Redis returns a client to the Redis at TEST_REDIS_ADDR (default
// 127.0.0.1:6379) and a key prefix unique to the test ("t:<hex>:"). Tests
// share the server with other tests running in parallel: they must use only
// keys under the prefix (and never FLUSHDB). When the test ends, every key
// under the prefix is deleted, with "rate:"+prefix keys (redis_rate prepends
// "rate:" to its keys), and the client is closed. A server that cannot be
// reached fails the test.
func Redis(t testing.TB) (*redis.Client, string) {
	t.Helper()
	addr := os.Getenv("TEST_REDIS_ADDR")
	if addr == "" {
		addr = defaultRedisAddr
	}
	b := make([]byte, 8)
	_, _ = rand.Read(b) // never fails
	prefix := "t:" + hex.EncodeToString(b) + ":"

	client := redis.NewClient(&redis.Options{Addr: addr})
	if err := client.Ping(t.Context()).Err(); err != nil {
		_ = client.Close()
		t.Fatalf("ping test redis at %s (set TEST_REDIS_ADDR): %v", addr, err)
	}
	t.Cleanup(func() {
		defer func() { _ = client.Close() }()
		// t.Context is already cancelled when cleanups run.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, pattern := range []string{prefix + "*", "rate:" + prefix + "*"} {
			if err := redisstore.DeleteKeys(ctx, client, pattern); err != nil {
				t.Errorf("delete test keys %s: %v", pattern, err)
			}
		}
	})
	return client, prefix
}

// RedisServer is a private redis-server a test started (see StartRedis).
type RedisServer struct {
	Addr  string // host:port of the TLS port when TLS is on, else of the plain port
	Certs Certs  // the certificates it serves, when TLS is on
}

// RedisServerOptions shape StartRedis's server.
type RedisServerOptions struct {
	TLS   bool     // serve TLS only (no plaintext port), with certificates made for the test
	Users []string // ACL rules, one user each, e.g. "api on >pw ~op:* +@all"; "default off" disables the default user
}

// StartRedis starts a private redis-server (Debian's build, which has TLS) on a free loopback
// port, keeping nothing on disk, and stops it when the test ends.
func StartRedis(t testing.TB, o RedisServerOptions) RedisServer {
	t.Helper()
	dir := t.TempDir()
	port := FixedPort(t)
	srv := RedisServer{Addr: fmt.Sprintf("127.0.0.1:%d", port)}
	args := []string{"--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir, "--protected-mode", "no"}
	if o.TLS {
		srv.Certs = TLSCerts(t)
		args = append(args, "--port", "0", "--tls-port", fmt.Sprint(port),
			"--tls-cert-file", srv.Certs.ServerCert, "--tls-key-file", srv.Certs.ServerKey,
			"--tls-ca-cert-file", srv.Certs.CAFile, "--tls-auth-clients", "optional")
	} else {
		args = append(args, "--port", fmt.Sprint(port))
	}
	for _, u := range o.Users {
		args = append(args, append([]string{"--user"}, strings.Fields(u)...)...)
	}
	cmd := exec.Command("redis-server", args...)
	var out Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start redis-server (Debian package redis-server): %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", srv.Addr, time.Second)
		if err == nil {
			_ = c.Close()
			return srv
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis-server on %s did not listen: %v\n%s", srv.Addr, err, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

package postgres_test

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/orderpipe/orderpipe/internal/e2e"
	"github.com/orderpipe/orderpipe/internal/postgres"
	"github.com/orderpipe/orderpipe/internal/testenv"
)

// TestVerifyFull: a private Postgres that accepts TLS connections only (hostssl) is reached with
// sslmode=verify-full and the CA file, the migrations run over it, and the session is encrypted;
// plaintext, a wrong CA and a missing CA file are refused with errors that say why.
func TestVerifyFull(t *testing.T) {
	t.Parallel()
	certs := testenv.TLSCerts(t)
	dir := filepath.Join(certs.Dir, "pg") // certs.Dir and its parents are open to the user postgres
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	uid, gid, err := e2e.PostgresOwner()
	if err != nil {
		t.Fatal(err)
	}
	// Postgres refuses a key others can read: its copy is the server user's own, mode 0600.
	key, err := os.ReadFile(certs.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	keyFile, hbaFile := filepath.Join(certs.Dir, "pg.key"), filepath.Join(certs.Dir, "pg_hba.conf")
	if err := os.WriteFile(keyFile, key, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(keyFile, uid, gid); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(hbaFile, []byte("local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostnossl all all 127.0.0.1/32 reject\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	port := testenv.FixedPort(t)
	spec, err := e2e.PrivatePostgres(t.Context(), dir, port, "-c", "ssl=on", "-c", "ssl_cert_file="+certs.ServerCert,
		"-c", "ssl_key_file="+keyFile, "-c", "hba_file="+hbaFile)
	if err != nil {
		t.Fatal(err)
	}
	cmd := spec.Cmd()
	var logs testenv.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })

	dbURL := func(q string) string {
		return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?%s", port, q)
	}
	verifyFull := dbURL("sslmode=verify-full&sslrootcert=" + url.QueryEscape(certs.CAFile))
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	var pool interface{ Close() }
	for {
		p, err := postgres.Open(ctx, verifyFull, 2)
		if err == nil {
			pool = p
			if _, err := postgres.Migrate(ctx, p); err != nil {
				t.Fatalf("migrate over verify-full: %v", err)
			}
			var ssl bool
			if err := p.QueryRow(ctx, `SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()`).Scan(&ssl); err != nil || !ssl {
				t.Fatalf("session over verify-full: ssl=%v err=%v, want an encrypted session", ssl, err)
			}
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("verify-full never connected: %v\n%s", err, logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	pool.Close()

	for _, tc := range []struct{ name, url, want string }{
		{"plaintext", dbURL("sslmode=disable"), "no encryption"},
		{"wrong CA", dbURL("sslmode=verify-full&sslrootcert=" + url.QueryEscape(certs.OtherCAFile)), "certificate signed by unknown authority"},
		{"missing CA file", dbURL("sslmode=verify-full&sslrootcert=" + url.QueryEscape(certs.Dir+"/nosuch.crt")), "nosuch.crt"},
	} {
		p, err := postgres.Open(ctx, tc.url, 1)
		if err == nil {
			p.Close()
			t.Errorf("%s: connected, want a refusal", tc.name)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error containing %q", tc.name, err, tc.want)
		}
	}
}

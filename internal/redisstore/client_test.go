package redisstore_test

import (
	"strings"
	"testing"
	"time"

	"github.com/orderpipe/orderpipe/internal/config"
	"github.com/orderpipe/orderpipe/internal/redisstore"
	"github.com/orderpipe/orderpipe/internal/testenv"
)

// TestClientTLSAndACLUser: against a real redis-server serving TLS only with ACL users, the
// client built from the settings connects over TLS as its user, the store's Lua scripts work on
// its keys, and a key outside its pattern, a wrong password, an untrusted CA, plaintext and a
// half-given client certificate each fail with an error that says why.
func TestClientTLSAndACLUser(t *testing.T) {
	t.Parallel()
	srv := testenv.StartRedis(t, testenv.RedisServerOptions{TLS: true, Users: []string{
		"default off",
		"api on >api-secret ~op:* &op:* +@all",
	}})
	load := func(env map[string]string) (config.Redis, error) {
		t.Helper()
		var c struct{ config.Redis }
		err := config.Load(&c, func(k string) string { return env[k] })
		return c.Redis, err
	}
	good := map[string]string{
		"REDIS_ADDRS": srv.Addr, "REDIS_USERNAME": "api", "REDIS_PASSWORD": "api-secret",
		"REDIS_TLS": "true", "REDIS_TLS_CA_FILE": srv.Certs.CAFile,
		"REDIS_TLS_CERT_FILE": srv.Certs.ClientCert, "REDIS_TLS_KEY_FILE": srv.Certs.ClientKey,
	}
	cfg, err := load(good)
	if err != nil {
		t.Fatal(err)
	}
	client := redisstore.NewClient(cfg)
	defer client.Close()
	ctx := t.Context()
	if err := client.Ping(ctx).Err(); err != nil {
		t.Fatalf("ping over TLS as api: %v", err)
	}
	store := redisstore.New(client, "op:")
	if _, err := store.SeedStock(ctx, map[string]int64{"BRK-1": 5}); err != nil {
		t.Fatalf("seed as api: %v", err)
	}
	res, err := store.Reserve(ctx, "order-1", []redisstore.Line{{SKU: "BRK-1", Qty: 2}}, time.Now().Add(time.Minute))
	if err != nil || !res.OK {
		t.Fatalf("reserve script as api over TLS: %+v, %v", res, err)
	}
	if got, err := store.Availability(ctx, "BRK-1"); err != nil || got.ATP != 3 || got.Held != 2 {
		t.Fatalf("availability after the reservation: %+v, %v; want atp 3 held 2", got, err)
	}
	if err := client.Set(ctx, "other:key", "x", 0).Err(); err == nil || !strings.Contains(err.Error(), "NOPERM") {
		t.Errorf("a key outside api's pattern: got %v, want NOPERM", err)
	}

	for _, tc := range []struct {
		name, want string
		change     map[string]string
	}{
		{"wrong password", "WRONGPASS", map[string]string{"REDIS_PASSWORD": "guess"}},
		{"untrusted CA", "certificate signed by unknown authority", map[string]string{"REDIS_TLS_CA_FILE": srv.Certs.OtherCAFile}},
		{"plaintext to a TLS port", "", map[string]string{"REDIS_TLS": "false", "REDIS_TLS_CA_FILE": "", "REDIS_TLS_CERT_FILE": "", "REDIS_TLS_KEY_FILE": ""}},
	} {
		env := map[string]string{}
		for k, v := range good {
			env[k] = v
		}
		for k, v := range tc.change {
			env[k] = v
		}
		cfg, err := load(env)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		c := redisstore.NewClient(cfg)
		err = c.Ping(ctx).Err()
		c.Close()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: ping got %v, want an error containing %q", tc.name, err, tc.want)
		}
	}

	for _, tc := range []struct {
		name, want string
		env        map[string]string
	}{
		{"cert without key", "REDIS_TLS_KEY_FILE: is required with REDIS_TLS_CERT_FILE", map[string]string{"REDIS_TLS": "true", "REDIS_TLS_CERT_FILE": srv.Certs.ClientCert}},
		{"CA file missing", "REDIS_TLS_CA_FILE: open", map[string]string{"REDIS_TLS": "true", "REDIS_TLS_CA_FILE": srv.Certs.Dir + "/nosuch.crt"}},
		{"CA without TLS", "REDIS_TLS_CA_FILE: is set but REDIS_TLS is off", map[string]string{"REDIS_TLS_CA_FILE": srv.Certs.CAFile}},
		{"user without password", "REDIS_PASSWORD: is required with REDIS_USERNAME", map[string]string{"REDIS_USERNAME": "api"}},
	} {
		if _, err := load(tc.env); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want a start-up error containing %q", tc.name, err, tc.want)
		}
	}

	// Settings that skipped validation never fall back to plaintext: every command fails.
	raw := config.Redis{RedisAddrs: []string{srv.Addr}, RedisTimeout: time.Second, RedisPoolSize: 1,
		RedisTLS: config.TLS{Enabled: true, CAFile: srv.Certs.Dir + "/nosuch.crt"}}
	c := redisstore.NewClient(raw)
	defer c.Close()
	if err := c.Ping(ctx).Err(); err == nil || !strings.Contains(err.Error(), "REDIS_TLS_CA_FILE") {
		t.Errorf("unvalidated bad TLS settings: ping got %v, want the settings error", err)
	}
}

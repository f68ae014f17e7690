package orderctl_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/orderpipe/orderpipe/internal/orderctl"
)

// TestEnvListsEveryServicesVariables: orderctl env lists the variables of every process, not only
// the shared ones, and --effective shows the values in force with secrets masked.
func TestEnvListsEveryServicesVariables(t *testing.T) {
	t.Parallel()
	environ := map[string]string{
		"API_ADDR":       "127.0.0.1:9999",
		"REDIS_PASSWORD": "hunter2-redis",
		"SMTP_PASSWORD":  "hunter2-smtp",
		"DATABASE_URL":   "postgres://app:pg-s3cret@db.example:5432/orderpipe?sslmode=verify-full",
	}
	getenv := func(k string) string { return environ[k] }
	run := func(args ...string) string {
		t.Helper()
		var out bytes.Buffer
		if err := orderctl.Run(t.Context(), args, getenv, &out); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out.String())
		}
		return out.String()
	}

	var rows []struct{ Service, Variable, Default, Value, Source string }
	if err := json.Unmarshal([]byte(run("env", "--effective", "--output", "json")), &rows); err != nil {
		t.Fatalf("env --output json: %v", err)
	}
	got := map[string]map[string]string{} // service -> variable -> value
	source := map[string]string{}
	for _, r := range rows {
		if got[r.Service] == nil {
			got[r.Service] = map[string]string{}
		}
		got[r.Service][r.Variable] = r.Value
		source[r.Service+" "+r.Variable] = r.Source
	}
	for service, vars := range map[string][]string{
		"api":            {"API_ADDR", "API_DRAIN_DELAY", "RATE_LIMIT_PER_SECOND", "DATABASE_URL"},
		"order-worker":   {"WORKER_ADMIN_ADDR", "WORKER_SHUTDOWN_TIMEOUT", "PAYMENT_URL"},
		"inventory-sync": {"REAPER_ENABLED", "REAPER_INTERVAL", "INVENTORY_ADMIN_ADDR"},
		"notifier":       {"NOTIFIER_ADMIN_ADDR", "SMTP_PASSWORD"},
		"orderctl":       {"KAFKA_PARTITIONS", "REDIS_PASSWORD"},
	} {
		for _, v := range vars {
			if _, ok := got[service][v]; !ok {
				t.Errorf("env lists no %s for %s", v, service)
			}
		}
	}
	// Every setting may come from NAME_FILE: no setting may be named like another's file variable.
	for service, vars := range got {
		for v := range vars {
			if _, clash := vars[v+"_FILE"]; clash {
				t.Errorf("%s reads both %s and %s_FILE: the file convention would be ambiguous", service, v, v)
			}
		}
	}
	if v, s := got["api"]["API_ADDR"], source["api API_ADDR"]; v != "127.0.0.1:9999" || s != "env" {
		t.Errorf("api API_ADDR = %q from %q, want 127.0.0.1:9999 from env", v, s)
	}
	if v, s := got["api"]["API_DRAIN_DELAY"], source["api API_DRAIN_DELAY"]; v != "5s" || s != "default" {
		t.Errorf("api API_DRAIN_DELAY = %q from %q, want 5s from default", v, s)
	}
	if v := got["api"]["REDIS_PASSWORD"]; v != "********" {
		t.Errorf("api REDIS_PASSWORD shown as %q, want ********", v)
	}
	if v := got["api"]["DATABASE_URL"]; !strings.Contains(v, "app:xxxxx@db.example") {
		t.Errorf("api DATABASE_URL shown as %q, want the password masked", v)
	}
	for _, args := range [][]string{{"env", "--effective"}, {"env", "--effective", "--output", "json"}, {"env"}} {
		out := run(args...)
		for _, secret := range []string{"hunter2", "pg-s3cret"} {
			if strings.Contains(out, secret) {
				t.Errorf("%v prints the secret %q", args, secret)
			}
		}
	}
	if out := run("env", "--service", "notifier"); strings.Contains(out, "API_ADDR") || !strings.Contains(out, "NOTIFIER_ADMIN_ADDR") {
		t.Errorf("env --service notifier lists other services' variables or lacks its own:\n%s", out)
	}
	var out bytes.Buffer
	if code := orderctl.Code(orderctl.Run(t.Context(), []string{"env", "--service", "nosuch"}, getenv, &out)); code != orderctl.ExitUsage {
		t.Errorf("env --service nosuch: exit %d, want %d", code, orderctl.ExitUsage)
	}
}

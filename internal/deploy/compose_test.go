package deploy

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	"gopkg.in/yaml.v3"

	"github.com/orderpipe/orderpipe/internal/api"
	"github.com/orderpipe/orderpipe/internal/config"
	"github.com/orderpipe/orderpipe/internal/inventorysync"
	"github.com/orderpipe/orderpipe/internal/notifier"
	"github.com/orderpipe/orderpipe/internal/orderctl"
	"github.com/orderpipe/orderpipe/internal/orderworker"
)

// app is a compose service that runs an orderpipe binary built from the repository's Dockerfile.
//
// To check a new process, add a row to apps with its Config struct (&sharedConfig{} while it has
// none of its own), and set httpAddr once it serves /metrics.
type app struct {
	service  string     // compose service name
	binary   string     // command directory under cmd/
	config   func() any // a new pointer to the Config struct the binary loads from the environment
	httpAddr string     // variable holding the HTTP listen address serving /metrics, /readyz, /livez ("" if none)
	shutdown []string   // duration variables whose sum a graceful stop may take (must fit stop_grace_period)
	oneShot  bool       // runs to completion before the long-running apps start
	// standIn marks a stand-in for a third party (the payment-provider simulator): it uses none of
	// orderpipe's Postgres, Redis or Kafka, so it needs neither their variables nor to wait for them.
	standIn bool
	noRedis bool     // opens no Redis connection: needs neither its variables nor to wait for it
	runs    []string // the exact commands the service runs, when they are part of the contract
	// args reports whether the binary accepts the arguments the service passes; nil means the
	// binary takes none (it is configured by environment variables only).
	args func(ctx context.Context, args []string) error
}

//lint:ignore U1000 kept for the next process without a Config of its own (see app)

// sharedConfig is what a process without a Config of its own reads: the shared sections of
// internal/config.
type sharedConfig struct {
	config.Postgres
	config.Redis
	config.Kafka
	config.Log
}

func apps() []app {
	orderctlArgs := func(ctx context.Context, args []string) error {
		// With --help, orderctl parses the command line (commands, flags) and runs nothing.
		return orderctl.Run(ctx, append(slices.Clone(args), "--help"), func(string) string { return "" }, io.Discard)
	}
	return []app{
		{service: "api", binary: "api", config: func() any { return &api.Config{} }, httpAddr: "API_ADDR",
			shutdown: []string{"API_DRAIN_DELAY", "API_SHUTDOWN_TIMEOUT"}},
		{service: "init", binary: "orderctl", config: func() any { return &orderctl.Config{} }, oneShot: true,
			runs: []string{"orderctl migrate", "orderctl topics --create"}, args: orderctlArgs},
		{service: "order-worker", binary: "order-worker", config: func() any { return &orderworker.Config{} }, httpAddr: "WORKER_ADMIN_ADDR",
			shutdown: []string{"WORKER_SHUTDOWN_TIMEOUT"}},
		{service: "payment-sim", binary: "orderctl", config: func() any { return &orderctl.Config{} }, args: orderctlArgs, standIn: true},
		{service: "inventory-sync", binary: "inventory-sync", config: func() any { return &inventorysync.Config{} }, httpAddr: "INVENTORY_ADMIN_ADDR",
			shutdown: []string{"INVENTORY_SHUTDOWN_TIMEOUT"}},
		{service: "notifier", binary: "notifier", config: func() any { return &notifier.Config{} }, httpAddr: "NOTIFIER_ADMIN_ADDR",
			shutdown: []string{"NOTIFIER_SHUTDOWN_TIMEOUT"}, noRedis: true},
	}
}

// The parts of the Compose Specification the checks read. Everything else is left to the real
// compose parser (TestComposeFileLoads).
type composeFile struct {
	Version  string             `yaml:"version"`
	Name     string             `yaml:"name"`
	Services map[string]service `yaml:"services"`
	Volumes  map[string]any     `yaml:"volumes"`
}

type service struct {
	Image           string            `yaml:"image"`
	Build           *build            `yaml:"build"`
	Hostname        string            `yaml:"hostname"`
	Command         []string          `yaml:"command"`
	Entrypoint      []string          `yaml:"entrypoint"`
	Environment     map[string]string `yaml:"environment"`
	DependsOn       dependsOn         `yaml:"depends_on"`
	Healthcheck     *healthcheck      `yaml:"healthcheck"`
	Restart         string            `yaml:"restart"`
	StopGracePeriod string            `yaml:"stop_grace_period"`
	Volumes         []string          `yaml:"volumes"`
}

type build struct {
	Context    string `yaml:"context"`
	Dockerfile string `yaml:"dockerfile"`
}

type healthcheck struct {
	Test    []string `yaml:"test"`
	Disable bool     `yaml:"disable"`
}

type dependency struct {
	Condition string `yaml:"condition"`
}

// dependsOn accepts only the long form of depends_on: the short list form cannot say what to
// wait for, so a service would start before its dependency is ready.
type dependsOn map[string]dependency

func (d *dependsOn) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: depends_on must use the long form (service: {condition: ...})", n.Line)
	}
	var m map[string]dependency
	if err := n.Decode(&m); err != nil {
		return err
	}
	*d = m
	return nil
}

type prometheusConfig struct {
	ScrapeConfigs []struct {
		JobName       string `yaml:"job_name"`
		MetricsPath   string `yaml:"metrics_path"`
		StaticConfigs []struct {
			Targets []string `yaml:"targets"`
		} `yaml:"static_configs"`
	} `yaml:"scrape_configs"`
}

// stack is the deployment description, parsed.
type stack struct {
	root    string
	compose composeFile
	env     map[string]map[string]string // per service, interpolated as `docker compose` would with no variables set
}

func setup(t *testing.T) stack {
	t.Helper()
	root := repoRoot(t)
	var c composeFile
	decodeYAML(t, filepath.Join(root, "docker-compose.yml"), &c)
	env := make(map[string]map[string]string, len(c.Services))
	for name, svc := range c.Services {
		env[name] = make(map[string]string, len(svc.Environment))
		for k, v := range svc.Environment {
			env[name][k] = interpolate(v)
		}
	}
	return stack{root: root, compose: c, env: env}
}

func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatalf("working directory: %v", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatalf("no go.mod above the test's directory")
		}
		dir = parent
	}
}

func decodeYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("parse %s: %v", path, err)
	}
}

// interpolate resolves ${VAR}, ${VAR:-default}, ${VAR-default} and $$ the way Compose does when
// no variable is set: the default, or empty.
func interpolate(s string) string {
	return os.Expand(s, func(v string) string {
		if v == "$" {
			return "$"
		}
		for _, sep := range []string{":-", "-", ":?", "?"} {
			if _, def, ok := strings.Cut(v, sep); ok {
				if strings.HasSuffix(sep, "?") {
					return "" // required: TestComposeFileLoads reports it missing
				}
				return def
			}
		}
		return ""
	})
}

func (s stack) service(t *testing.T, name string) service {
	t.Helper()
	svc, ok := s.compose.Services[name]
	if !ok {
		t.Fatalf("docker-compose.yml has no service %q", name)
	}
	return svc
}

// serviceByImage returns the one service whose image is repo (any tag).
func (s stack) serviceByImage(t *testing.T, repo string) (string, service) {
	t.Helper()
	var names []string
	for name, svc := range s.compose.Services {
		if image, _, _ := strings.Cut(svc.Image, ":"); image == repo {
			names = append(names, name)
		}
	}
	if len(names) != 1 {
		t.Fatalf("services with image %s: got %v, want exactly one", repo, names)
	}
	return names[0], s.compose.Services[names[0]]
}

// value is the variable's value in the service's environment, or the binary's default.
func value(env map[string]string, settings []config.Setting, name string) string {
	if v, ok := env[name]; ok {
		return v
	}
	for _, s := range settings {
		if s.Name == name {
			return s.Default
		}
	}
	return ""
}

func settingsOf(t *testing.T, a app) []config.Setting {
	t.Helper()
	settings, err := config.Settings(a.config())
	if err != nil {
		t.Fatalf("%s: settings: %v", a.binary, err)
	}
	return settings
}

// commands splits the service's command into the commands it runs: the command itself, or each
// command of a `sh -c` script joined with && or ;.
func commands(svc service) [][]string {
	cmd := append(slices.Clone(svc.Entrypoint), svc.Command...)
	if len(cmd) == 3 && (cmd[0] == "/bin/sh" || cmd[0] == "sh") && strings.HasPrefix(cmd[1], "-") && strings.Contains(cmd[1], "c") {
		var out [][]string
		for _, line := range strings.FieldsFunc(cmd[2], func(r rune) bool { return r == '\n' || r == ';' }) {
			for part := range strings.SplitSeq(line, "&&") {
				if f := strings.Fields(part); len(f) > 0 {
					out = append(out, f)
				}
			}
		}
		return out
	}
	if len(cmd) == 0 {
		return nil
	}
	return [][]string{cmd}
}

// TestComposeFileLoads validates docker-compose.yml with the parser Docker Compose itself uses:
// the Compose Specification schema, interpolation, and consistency (unknown services, volumes,
// dependency cycles). It also proves the yaml-level reading the other tests rely on (anchors,
// merges, interpolation) matches what Compose sees.
func TestComposeFileLoads(t *testing.T) {
	t.Parallel()
	s := setup(t)
	if s.compose.Version != "" {
		t.Fatalf("version: got %q, want no version key (the Compose Specification has none)", s.compose.Version)
	}
	project, err := loader.LoadWithContext(t.Context(), types.ConfigDetails{
		WorkingDir:  s.root,
		ConfigFiles: []types.ConfigFile{{Filename: filepath.Join(s.root, "docker-compose.yml")}},
		Environment: types.Mapping{},
	})
	if err != nil {
		t.Fatalf("compose loader: %v", err)
	}
	if got, want := len(project.Services), len(s.compose.Services); got != want {
		t.Fatalf("services: got %d from the compose loader, want %d", got, want)
	}
	for name, svc := range project.Services {
		want := s.env[name]
		if len(svc.Environment) != len(want) {
			t.Fatalf("%s: compose sees %d environment variables, want %d (%v)", name, len(svc.Environment), len(want), want)
		}
		for k, v := range svc.Environment {
			if v == nil || *v != want[k] {
				t.Fatalf("%s: %s: compose resolves %v, want %q", name, k, v, want[k])
			}
		}
	}
}

// TestEveryOrderpipeServiceIsChecked keeps the apps table and the compose file in step: every
// service built from the Dockerfile has a row, and every row has a service.
func TestEveryOrderpipeServiceIsChecked(t *testing.T) {
	t.Parallel()
	s := setup(t)
	rows := map[string]bool{}
	for _, a := range apps() {
		rows[a.service] = true
		svc := s.service(t, a.service)
		if svc.Build == nil || filepath.Clean(svc.Build.Context) != "." || (svc.Build.Dockerfile != "" && svc.Build.Dockerfile != "Dockerfile") {
			t.Fatalf("%s: build: got %+v, want the repository's Dockerfile (context .)", a.service, svc.Build)
		}
	}
	for name, svc := range s.compose.Services {
		if svc.Build != nil && !rows[name] {
			t.Fatalf("service %s is built from this repository but has no row in apps(): add one", name)
		}
	}
}

// TestAppEnvironment checks each service's environment against the Config struct of the binary
// it runs: no variable the binary does not read, every value valid, and the connections
// pointing at the compose services.
func TestAppEnvironment(t *testing.T) {
	t.Parallel()
	s := setup(t)
	for _, a := range apps() {
		t.Run(a.service, func(t *testing.T) {
			t.Parallel()
			env := s.env[a.service]
			settings := settingsOf(t, a)
			reads := map[string]bool{}
			for _, st := range settings {
				reads[st.Name] = true
			}
			for name := range env {
				if !reads[name] {
					t.Fatalf("%s sets %s, which %s does not read (typo or stale name?)", a.service, name, a.binary)
				}
			}
			if a.standIn {
				if len(env) != 0 {
					t.Fatalf("%s is a third-party stand-in; it sets %d variables, want none", a.service, len(env))
				}
				return
			}
			for _, name := range []string{"DATABASE_URL", "REDIS_ADDRS", "KAFKA_BROKERS"} {
				if name == "REDIS_ADDRS" && a.noRedis {
					continue
				}
				if env[name] == "" {
					t.Fatalf("%s: %s: got unset, want it set to the compose service", a.service, name)
				}
			}
			if err := config.Load(a.config(), func(k string) string { return env[k] }); err != nil {
				t.Fatalf("%s: %s rejects its configuration: %v", a.service, a.binary, err)
			}
			checkPostgres(t, s, env["DATABASE_URL"])
			if !a.noRedis {
				checkRedis(t, s, env["REDIS_ADDRS"])
			}
			checkKafkaBrokers(t, s, env["KAFKA_BROKERS"])
		})
	}
}

func checkPostgres(t *testing.T, s stack, databaseURL string) {
	t.Helper()
	name, _ := s.serviceByImage(t, "postgres")
	u, err := url.Parse(databaseURL)
	if err != nil {
		t.Fatalf("DATABASE_URL: %v", err)
	}
	pgEnv := s.env[name]
	password, _ := u.User.Password()
	got := []string{u.Hostname(), u.Port(), u.User.Username(), password, strings.TrimPrefix(u.Path, "/")}
	want := []string{name, "5432", pgEnv["POSTGRES_USER"], pgEnv["POSTGRES_PASSWORD"], pgEnv["POSTGRES_DB"]}
	if want[4] == "" {
		want[4] = want[2] // the postgres image names the database after the user by default
	}
	if !slices.Equal(got, want) {
		t.Fatalf("DATABASE_URL host, port, user, password, database: got %q, want %q (service %s)", got, want, name)
	}
}

func checkRedis(t *testing.T, s stack, addrs string) {
	t.Helper()
	name, _ := s.serviceByImage(t, "redis")
	for addr := range strings.SplitSeq(addrs, ",") {
		if want := net.JoinHostPort(name, "6379"); addr != want {
			t.Fatalf("REDIS_ADDRS: got %q, want %q", addr, want)
		}
	}
}

func checkKafkaBrokers(t *testing.T, s stack, brokers string) {
	t.Helper()
	name, _ := s.serviceByImage(t, "apache/kafka")
	advertised := listeners(s.env[name]["KAFKA_ADVERTISED_LISTENERS"])
	for addr := range strings.SplitSeq(brokers, ",") {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			t.Fatalf("KAFKA_BROKERS: %q: %v", addr, err)
		}
		if host != name {
			t.Fatalf("KAFKA_BROKERS: got host %q, want the kafka service %q", host, name)
		}
		if !slices.Contains(slices.Collect(maps.Values(advertised)), addr) {
			t.Fatalf("KAFKA_BROKERS: %s is not an advertised listener of %s (%v): the client would bootstrap and then be sent elsewhere", addr, name, advertised)
		}
	}
}

// listeners parses a Kafka listener list ("NAME://host:port,...") into name -> host:port.
func listeners(s string) map[string]string {
	out := map[string]string{}
	for l := range strings.SplitSeq(s, ",") {
		if name, addr, ok := strings.Cut(strings.TrimSpace(l), "://"); ok {
			out[name] = addr
		}
	}
	return out
}

// TestAppCommands checks what each service runs: a binary the image contains (a command under
// cmd/), with arguments it accepts.
func TestAppCommands(t *testing.T) {
	t.Parallel()
	s := setup(t)
	for _, a := range apps() {
		t.Run(a.service, func(t *testing.T) {
			t.Parallel()
			if _, err := os.Stat(filepath.Join(s.root, "cmd", a.binary, "main.go")); err != nil {
				t.Fatalf("binary %s: %v", a.binary, err)
			}
			cmds := commands(s.service(t, a.service))
			if len(cmds) == 0 {
				t.Fatalf("%s: no command: want the binary %s named explicitly", a.service, a.binary)
			}
			var got []string
			for _, c := range cmds {
				if c[0] != a.binary {
					t.Fatalf("%s runs %q, want the binary %s", a.service, c[0], a.binary)
				}
				got = append(got, strings.Join(c, " "))
				if a.args == nil {
					if len(c) > 1 {
						t.Fatalf("%s: %s takes no arguments (environment only), got %q", a.service, a.binary, c[1:])
					}
					continue
				}
				if err := a.args(t.Context(), c[1:]); err != nil {
					t.Fatalf("%s: %s rejects %q: %v", a.service, a.binary, c[1:], err)
				}
			}
			if a.runs != nil && !slices.Equal(got, a.runs) {
				t.Fatalf("%s commands: got %q, want %q", a.service, got, a.runs)
			}
		})
	}
}

// TestDependsOn checks every dependency of every service: the target exists, the condition is
// stated, a service waited on as healthy has a health check, and one waited on to complete is a
// one-shot that does not restart.
func TestDependsOn(t *testing.T) {
	t.Parallel()
	s := setup(t)
	for name, svc := range s.compose.Services {
		for target, dep := range svc.DependsOn {
			other, ok := s.compose.Services[target]
			if !ok {
				t.Fatalf("%s depends on %s, which is not a service", name, target)
			}
			switch dep.Condition {
			case "service_started":
			case "service_healthy":
				if hc := other.Healthcheck; hc == nil || hc.Disable || len(hc.Test) < 2 || (hc.Test[0] != "CMD" && hc.Test[0] != "CMD-SHELL") {
					t.Fatalf("%s waits for %s to be healthy, but %s has no health check (got %+v)", name, target, target, hc)
				}
			case "service_completed_successfully":
				if other.Restart != "" && other.Restart != "no" {
					t.Fatalf("%s waits for %s to complete, but %s restarts (%q): want restart \"no\"", name, target, target, other.Restart)
				}
			default:
				t.Fatalf("%s depends on %s with condition %q, want service_started, service_healthy or service_completed_successfully", name, target, dep.Condition)
			}
		}
	}
}

// TestAppsWaitForWhatTheyUse checks each app waits until the Postgres, Redis and Kafka it
// connects to are healthy, the long-running apps wait for the one-shots (migrations, topics) to
// complete, and the long-running apps restart.
func TestAppsWaitForWhatTheyUse(t *testing.T) {
	t.Parallel()
	s := setup(t)
	var oneShots []string
	for _, a := range apps() {
		if a.oneShot {
			oneShots = append(oneShots, a.service)
		}
	}
	for _, a := range apps() {
		t.Run(a.service, func(t *testing.T) {
			t.Parallel()
			svc := s.service(t, a.service)
			if a.standIn {
				return
			}
			for _, repo := range []string{"postgres", "redis", "apache/kafka"} {
				if repo == "redis" && a.noRedis {
					continue
				}
				target, _ := s.serviceByImage(t, repo)
				if got := svc.DependsOn[target].Condition; got != "service_healthy" {
					t.Fatalf("%s depends on %s with condition %q, want service_healthy", a.service, target, got)
				}
			}
			if a.oneShot {
				if svc.Restart != "no" {
					t.Fatalf("%s restart: got %q, want \"no\" (a one-shot)", a.service, svc.Restart)
				}
				return
			}
			for _, o := range oneShots {
				if got := svc.DependsOn[o].Condition; got != "service_completed_successfully" {
					t.Fatalf("%s depends on %s with condition %q, want service_completed_successfully", a.service, o, got)
				}
			}
			if !slices.Contains([]string{"always", "unless-stopped", "on-failure"}, strings.Split(svc.Restart, ":")[0]) {
				t.Fatalf("%s restart: got %q, want always, unless-stopped or on-failure", a.service, svc.Restart)
			}
		})
	}
}

// TestGracefulStopFits checks Docker waits long enough after SIGTERM for the drain and shutdown
// the app is configured for, instead of killing it mid-flush.
func TestGracefulStopFits(t *testing.T) {
	t.Parallel()
	s := setup(t)
	for _, a := range apps() {
		if len(a.shutdown) == 0 {
			continue
		}
		settings := settingsOf(t, a)
		var need time.Duration
		for _, name := range a.shutdown {
			d, err := time.ParseDuration(value(s.env[a.service], settings, name))
			if err != nil {
				t.Fatalf("%s: %s: %v", a.service, name, err)
			}
			need += d
		}
		grace := 10 * time.Second // Docker's default
		if g := s.service(t, a.service).StopGracePeriod; g != "" {
			var err error
			if grace, err = time.ParseDuration(g); err != nil {
				t.Fatalf("%s: stop_grace_period: %v", a.service, err)
			}
		}
		if grace <= need {
			t.Fatalf("%s stop_grace_period: got %s, want more than %s (%s)", a.service, grace, need, strings.Join(a.shutdown, " + "))
		}
	}
}

// TestHTTPAppsAreCheckedAndScraped checks every app that serves HTTP has a health check on its
// listen port and is scraped by Prometheus there, and that Prometheus scrapes nothing else.
func TestHTTPAppsAreCheckedAndScraped(t *testing.T) {
	t.Parallel()
	s := setup(t)
	promName, prom := s.serviceByImage(t, "prom/prometheus")
	const promPath = "deploy/prometheus/prometheus.yml"
	if !slices.ContainsFunc(prom.Volumes, func(v string) bool { return strings.HasPrefix(v, "./"+promPath+":") }) {
		t.Fatalf("%s volumes: got %q, want %s mounted", promName, prom.Volumes, promPath)
	}
	var pc prometheusConfig
	decodeYAML(t, filepath.Join(s.root, promPath), &pc)
	scraped := map[string]bool{}
	for _, sc := range pc.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			for _, target := range st.Targets {
				host, _, err := net.SplitHostPort(target)
				if err != nil {
					t.Fatalf("%s: job %s: target %q: %v", promPath, sc.JobName, target, err)
				}
				if _, ok := s.compose.Services[host]; !ok && host != "localhost" {
					t.Fatalf("%s: job %s scrapes %s, which is not a compose service", promPath, sc.JobName, target)
				}
				if sc.MetricsPath == "" || sc.MetricsPath == "/metrics" {
					scraped[target] = true
				}
			}
		}
	}
	for _, a := range apps() {
		if a.httpAddr == "" {
			continue
		}
		_, port, err := net.SplitHostPort(value(s.env[a.service], settingsOf(t, a), a.httpAddr))
		if err != nil {
			t.Fatalf("%s: %s: %v", a.service, a.httpAddr, err)
		}
		if target := net.JoinHostPort(a.service, port); !scraped[target] {
			t.Fatalf("%s: Prometheus does not scrape %s/metrics (scraped: %v)", promPath, target, scraped)
		}
		hc := s.service(t, a.service).Healthcheck
		if hc == nil || !slices.ContainsFunc(hc.Test, func(arg string) bool {
			return strings.Contains(arg, ":"+port+"/readyz") || strings.Contains(arg, ":"+port+"/livez")
		}) {
			t.Fatalf("%s healthcheck: got %+v, want a request to :%s/readyz or /livez", a.service, hc, port)
		}
	}
}

// TestKafkaKRaft checks the broker is a consistent single-node KRaft cluster that never creates
// topics by itself, and that topics orderctl creates fit on it.
func TestKafkaKRaft(t *testing.T) {
	t.Parallel()
	s := setup(t)
	name, kafka := s.serviceByImage(t, "apache/kafka")
	env := s.env[name]

	roles := strings.Split(env["KAFKA_PROCESS_ROLES"], ",")
	slices.Sort(roles)
	if !slices.Equal(roles, []string{"broker", "controller"}) {
		t.Fatalf("KAFKA_PROCESS_ROLES: got %v, want broker,controller", roles)
	}
	if raw, err := base64.RawURLEncoding.DecodeString(env["CLUSTER_ID"]); err != nil || len(raw) != 16 {
		t.Fatalf("CLUSTER_ID %q: want 16 bytes in unpadded base64url (kafka-storage.sh random-uuid), got %d bytes, %v", env["CLUSTER_ID"], len(raw), err)
	}

	listen := listeners(env["KAFKA_LISTENERS"])
	advertised := listeners(env["KAFKA_ADVERTISED_LISTENERS"])
	protocols := map[string]string{}
	for p := range strings.SplitSeq(env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"], ",") {
		if k, v, ok := strings.Cut(p, ":"); ok {
			protocols[k] = v
		}
	}
	for l := range listen {
		if protocols[l] == "" {
			t.Fatalf("listener %s has no entry in KAFKA_LISTENER_SECURITY_PROTOCOL_MAP (%v)", l, protocols)
		}
	}
	controller := env["KAFKA_CONTROLLER_LISTENER_NAMES"]
	interBroker := env["KAFKA_INTER_BROKER_LISTENER_NAME"]
	if listen[controller] == "" || listen[interBroker] == "" || controller == interBroker {
		t.Fatalf("controller listener %q and inter-broker listener %q: want two distinct names from KAFKA_LISTENERS (%v)", controller, interBroker, listen)
	}
	for l, addr := range advertised {
		if l == controller {
			t.Fatalf("KAFKA_ADVERTISED_LISTENERS advertises the controller listener %s", l)
		}
		if _, port, _ := net.SplitHostPort(addr); !strings.HasSuffix(listen[l], ":"+port) {
			t.Fatalf("advertised listener %s=%s: want the port of KAFKA_LISTENERS %s=%q", l, addr, l, listen[l])
		}
	}
	hostnames := []string{name, kafka.Hostname}
	if h, _, _ := net.SplitHostPort(advertised[interBroker]); !slices.Contains(hostnames, h) {
		t.Fatalf("inter-broker listener advertises host %q, want one of %q", h, hostnames)
	}

	_, controllerPort, _ := net.SplitHostPort(listen[controller])
	wantVoter := env["KAFKA_NODE_ID"] + "@" + net.JoinHostPort(name, controllerPort)
	if _, err := strconv.Atoi(env["KAFKA_NODE_ID"]); err != nil || env["KAFKA_CONTROLLER_QUORUM_VOTERS"] != wantVoter {
		t.Fatalf("KAFKA_CONTROLLER_QUORUM_VOTERS: got %q (KAFKA_NODE_ID %q), want %q", env["KAFKA_CONTROLLER_QUORUM_VOTERS"], env["KAFKA_NODE_ID"], wantVoter)
	}

	if got := env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"]; got != "false" {
		t.Fatalf("KAFKA_AUTO_CREATE_TOPICS_ENABLE: got %q, want \"false\" (topics are provisioned by orderctl)", got)
	}
	const brokers = 1
	for _, k := range []string{
		"KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
		"KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
		"KAFKA_TRANSACTION_STATE_LOG_MIN_ISR",
	} {
		if n, err := strconv.Atoi(env[k]); err != nil || n < 1 || n > brokers {
			t.Fatalf("%s: got %q, want 1..%d (one broker)", k, env[k], brokers)
		}
	}
	for _, a := range apps() {
		if v, ok := s.env[a.service]["KAFKA_REPLICATION"]; ok {
			if n, err := strconv.Atoi(v); err != nil || n > brokers {
				t.Fatalf("%s KAFKA_REPLICATION: got %q, want at most %d (brokers in the stack)", a.service, v, brokers)
			}
		}
	}

	if !slices.ContainsFunc(kafka.Volumes, func(v string) bool {
		parts := strings.Split(v, ":")
		_, declared := s.compose.Volumes[parts[0]]
		return len(parts) >= 2 && declared && parts[1] == env["KAFKA_LOG_DIRS"]
	}) {
		t.Fatalf("KAFKA_LOG_DIRS %q: want a named volume mounted there (volumes %q)", env["KAFKA_LOG_DIRS"], kafka.Volumes)
	}
	hc := kafka.Healthcheck
	_, plainPort, _ := net.SplitHostPort(listen[interBroker])
	if hc == nil || !slices.ContainsFunc(hc.Test, func(a string) bool { return strings.HasSuffix(a, "kafka-broker-api-versions.sh") }) ||
		!slices.Contains(hc.Test, "localhost:"+plainPort) {
		t.Fatalf("%s healthcheck: got %+v, want kafka-broker-api-versions.sh against localhost:%s", name, hc, plainPort)
	}
}

// TestBindMountsExist checks every file or directory the compose file mounts from the repository
// exists, and Grafana's datasource points at the Prometheus service.
func TestBindMountsExist(t *testing.T) {
	t.Parallel()
	s := setup(t)
	for name, svc := range s.compose.Services {
		for _, v := range svc.Volumes {
			src, _, _ := strings.Cut(v, ":")
			if !strings.HasPrefix(src, "./") {
				continue
			}
			if _, err := os.Stat(filepath.Join(s.root, src)); err != nil {
				t.Fatalf("%s mounts %s: %v", name, src, err)
			}
		}
	}
	promName, _ := s.serviceByImage(t, "prom/prometheus")
	var ds struct {
		Datasources []struct {
			Type string `yaml:"type"`
			URL  string `yaml:"url"`
		} `yaml:"datasources"`
	}
	decodeYAML(t, filepath.Join(s.root, "deploy/grafana/provisioning/datasources/prometheus.yml"), &ds)
	if len(ds.Datasources) != 1 || ds.Datasources[0].Type != "prometheus" || ds.Datasources[0].URL != "http://"+promName+":9090" {
		t.Fatalf("grafana datasources: got %+v, want one prometheus datasource at http://%s:9090", ds.Datasources, promName)
	}
}

// TestDockerfileBuildsEveryBinary checks the image builds every command under cmd/ statically
// with golang:1.26, runs as a non-root user, and that .dockerignore keeps what the build needs.
func TestDockerfileBuildsEveryBinary(t *testing.T) {
	t.Parallel()
	root := repoRoot(t)
	stages := dockerfileStages(t, filepath.Join(root, "Dockerfile"))
	if len(stages) < 2 || !strings.HasPrefix(stages[0][0], "FROM golang:1.26 ") {
		t.Fatalf("Dockerfile: want a golang:1.26 build stage and a runtime stage, got %d stages starting %q", len(stages), stages[0][0])
	}
	var buildLine string
	for _, in := range stages[0] {
		if strings.HasPrefix(in, "RUN ") && strings.Contains(in, "go build") {
			buildLine = in
		}
	}
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath"} {
		if !strings.Contains(buildLine, want) {
			t.Fatalf("Dockerfile go build: got %q, want %s", buildLine, want)
		}
	}
	entries, err := os.ReadDir(filepath.Join(root, "cmd"))
	if err != nil {
		t.Fatalf("read cmd/: %v", err)
	}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		if !strings.Contains(buildLine, " ./cmd/... ") && !strings.Contains(buildLine+" ", " ./cmd/"+e.Name()+" ") {
			t.Fatalf("Dockerfile go build does not build cmd/%s: %q", e.Name(), buildLine+" ")
		}
	}
	runtime := stages[len(stages)-1]
	user := ""
	for _, in := range runtime {
		if u, ok := strings.CutPrefix(in, "USER "); ok {
			user = strings.TrimSpace(u)
		}
	}
	if user == "" || user == "root" || strings.HasPrefix(user, "0") {
		t.Fatalf("Dockerfile runtime stage USER: got %q, want a non-root user", user)
	}

	ignored := dockerignore(t, filepath.Join(root, ".dockerignore"))
	needed := []string{"go.mod", "go.sum", "cmd", "internal"}
	err = filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path != root && (strings.HasPrefix(d.Name(), ".") || d.Name() == "bin" || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if strings.Contains(string(b), "//go:embed") {
			rel, _ := filepath.Rel(root, path)
			needed = append(needed, strings.Split(filepath.ToSlash(rel), "/")[0])
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walk the repository: %v", err)
	}
	for _, n := range needed {
		if ignored[n] {
			t.Fatalf(".dockerignore excludes %s, which the build needs", n)
		}
	}
}

// dockerfileStages returns each stage's instructions, continuation lines joined, comments dropped.
func dockerfileStages(t *testing.T, path string) [][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("open Dockerfile: %v", err)
	}
	defer f.Close()
	var stages [][]string
	var cur strings.Builder
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if l, ok := strings.CutSuffix(line, `\`); ok {
			cur.WriteString(l + " ")
			continue
		}
		cur.WriteString(line)
		in := cur.String()
		cur.Reset()
		if strings.HasPrefix(in, "FROM ") {
			stages = append(stages, nil)
		}
		if len(stages) == 0 {
			t.Fatalf("Dockerfile: %q before the first FROM", in)
		}
		stages[len(stages)-1] = append(stages[len(stages)-1], in+" ")
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("read Dockerfile: %v", err)
	}
	if len(stages) == 0 {
		t.Fatalf("Dockerfile: no FROM")
	}
	return stages
}

// dockerignore returns the top-level names .dockerignore excludes (plain names only).
func dockerignore(t *testing.T, path string) map[string]bool {
	t.Helper()
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatalf("read .dockerignore: %v", err)
	}
	out := map[string]bool{}
	for line := range strings.SplitSeq(string(b), "\n") {
		line = strings.Trim(strings.TrimSpace(line), "/")
		if line != "" && !strings.HasPrefix(line, "#") && !strings.HasPrefix(line, "!") {
			out[line] = true
		}
	}
	return out
}

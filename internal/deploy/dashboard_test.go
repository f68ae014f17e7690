package deploy

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/orderpipe/orderpipe/internal/paysim"
	"github.com/orderpipe/orderpipe/internal/postgres"
	"github.com/orderpipe/orderpipe/internal/testenv"
)

type dashboard struct {
	UID    string `json:"uid"`
	Title  string `json:"title"`
	Panels []struct {
		Type        string `json:"type"`
		Title       string `json:"title"`
		Description string `json:"description"`
		Datasource  struct {
			UID string `json:"uid"`
		} `json:"datasource"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
}

// TestDashboard checks the Grafana dashboard the compose stack provisions: it is mounted where
// its provider reads, uses the provisioned Prometheus datasource, every panel says what it shows,
// and every query names metrics the code exports and runs on a real Prometheus (the Debian
// package's server) that scrapes a real api and order-worker after a few orders; the panels of
// the intake, the decisions and the HTTP answers show data.
func TestDashboard(t *testing.T) {
	t.Parallel()
	s := setup(t)
	_, graf := s.serviceByImage(t, "grafana/grafana")
	for _, want := range []string{
		"./deploy/grafana/provisioning/dashboards:/etc/grafana/provisioning/dashboards:ro",
		"./deploy/grafana/dashboards:/var/lib/grafana/dashboards:ro",
	} {
		if !slices.Contains(graf.Volumes, want) {
			t.Errorf("grafana volumes %q lack %s", graf.Volumes, want)
		}
	}
	var prov struct {
		Providers []struct {
			Options struct {
				Path string `yaml:"path"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	decodeYAML(t, filepath.Join(s.root, "deploy/grafana/provisioning/dashboards/orderpipe.yml"), &prov)
	if len(prov.Providers) != 1 || prov.Providers[0].Options.Path != "/var/lib/grafana/dashboards" {
		t.Errorf("dashboard provider: %+v, want one reading /var/lib/grafana/dashboards", prov.Providers)
	}
	b, err := os.ReadFile(filepath.Join(s.root, "deploy/grafana/dashboards/orderpipe.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("orderpipe.json: %v", err)
	}
	exported := exportedMetrics(t, s.root)
	var exprs []string
	for _, p := range d.Panels {
		if p.Type == "row" {
			continue
		}
		if p.Title == "" || p.Description == "" || p.Datasource.UID != "prometheus" || len(p.Targets) == 0 {
			t.Errorf("panel %q: want a title, a description, the prometheus datasource and a query", p.Title)
		}
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
			for _, name := range unknownMetrics(tg.Expr, exported) {
				t.Errorf("panel %q: %s is not a metric the code exports", p.Title, name)
			}
		}
	}
	if len(exprs) < 20 {
		t.Fatalf("found %d queries in the dashboard, want every one (at least 20)", len(exprs))
	}

	// A real api and order-worker, a few orders, and a real Prometheus scraping both every 200ms.
	skus := []string{"BRK-PAD-1001", "FLT-OIL-2001"}
	p := testenv.NewPipeline(t, testenv.PipelineOptions{
		Products: []postgres.Product{
			{SKU: skus[0], Name: "Brake pads", Category: "brakes", Brand: "Brembo", PriceMinor: 4990, Currency: "EUR", Active: true},
			{SKU: skus[1], Name: "Oil filter", Category: "filters", Brand: "Mann", PriceMinor: 899, Currency: "EUR", Active: true},
		},
		Stock:   map[string]int64{skus[0]: 10, skus[1]: 10},
		Payment: paysim.Config{Latency: time.Millisecond},
	})
	w := p.Worker(t, nil)
	prom := startPrometheus(t, p.API.URL, w.URL)
	accepted := p.PlaceMany(t, 12, 4, func(i int) []byte { return testenv.OrderJSON(fmt.Sprint("tok_visa_", i), "standard", skus[i%2], 1) })
	p.WaitDecided(t, len(accepted), 60*time.Second)

	mustShow := map[string]bool{ // panels that have data after orders were placed and decided
		`sum by (outcome) (rate(orderpipe_intake_orders_total[1m]))`:        true,
		`sum by (code) (rate(orderpipe_http_requests_total[1m]))`:           true,
		`sum by (status, reason) (rate(orderpipe_worker_orders_total[1m]))`: true,
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, e := range exprs {
		for {
			n, err := prom.query(e)
			if err != nil {
				t.Errorf("query %q: %v", e, err)
				break
			}
			if n > 0 || !mustShow[e] {
				delete(mustShow, e)
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("query %q: no series 30s after the orders were decided", e)
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	if len(mustShow) > 0 {
		t.Errorf("queries expected to show data are not in the dashboard: %v", mustShow)
	}
}

type promServer struct{ url string }

// startPrometheus runs the Debian package's Prometheus server, scraping targets (http://host:port)
// every 200ms, until the test ends.
func startPrometheus(t *testing.T, targets ...string) promServer {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Fatalf("the Prometheus server is needed to run the dashboard's queries (apt-get install prometheus): %v", err)
	}
	dir := t.TempDir()
	hosts := make([]string, len(targets))
	for i, tg := range targets {
		hosts[i] = `"` + strings.TrimPrefix(tg, "http://") + `"`
	}
	cfg := fmt.Sprintf("global: {scrape_interval: 200ms, evaluation_interval: 1s}\nscrape_configs:\n  - job_name: orderpipe\n    static_configs:\n      - targets: [%s]\n", strings.Join(hosts, ", "))
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	for attempt := 0; ; attempt++ {
		addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
		ctx, cancel := context.WithCancel(context.Background())
		cmd := exec.CommandContext(ctx, bin, "--config.file="+filepath.Join(dir, "prometheus.yml"), "--storage.tsdb.path="+filepath.Join(dir, "data"),
			"--web.listen-address="+addr, "--log.level=warn")
		out := &strings.Builder{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			cancel()
			t.Fatalf("start prometheus: %v", err)
		}
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		p := promServer{url: "http://" + addr}
		ready := false
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			select {
			case <-exited:
			default:
				if resp, err := http.Get(p.url + "/-/ready"); err == nil {
					resp.Body.Close()
					ready = resp.StatusCode == http.StatusOK
				}
				if !ready {
					continue
				}
			}
			break
		}
		if !ready {
			cancel()
			<-exited
			if attempt < 3 && strings.Contains(out.String(), "address already in use") {
				continue
			}
			t.Fatalf("prometheus did not become ready:\n%s", out.String())
		}
		t.Cleanup(func() { cancel(); <-exited })
		return p
	}
}

// query runs an instant query and returns how many series it returned.
func (p promServer) query(expr string) (int, error) {
	resp, err := http.Get(p.url + "/api/v1/query?query=" + url.QueryEscape(expr))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return 0, fmt.Errorf("%d %s", resp.StatusCode, body)
	}
	if r.Status != "success" {
		return 0, fmt.Errorf("%s", r.Error)
	}
	return len(r.Data.Result), nil
}

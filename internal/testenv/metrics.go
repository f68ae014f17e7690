package testenv

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// Metric is the sum of the samples of name that the process at url serves on /metrics: every
// series of a bare name (any labels), or the one series written out, like
// orderpipe_notifier_send_failures_total{class="connect"}.
func Metric(t testing.TB, url, name string) float64 {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, name+" ") && !(strings.HasPrefix(line, name+"{") && !strings.Contains(name, "{")) {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			t.Fatalf("metric %s: %q", name, line)
		}
		sum += v
	}
	return sum
}

package bench

import (
	"bytes"
	"runtime/pprof"
	"testing"
	"time"
)

func TestClassify(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		stack []string // leaf first
		want  string
	}{
		{"kfake goroutine", []string{"runtime.memmove", "github.com/twmb/franz-go/pkg/kfake.(*Cluster).run"}, "kfake broker (stands in for Kafka; not in production)"},
		{"vegeta worker", []string{"syscall.write", "net/http.(*Client).Do", "github.com/tsenart/vegeta/v12/lib.(*Attacker).hit"}, "load generator (vegeta and its HTTP client; not in production)"},
		{"client read loop", []string{"syscall.read", "net/http.(*persistConn).readLoop"}, "load generator (vegeta and its HTTP client; not in production)"},
		{"gc worker", []string{"runtime.scanobject", "runtime.gcBgMarkWorker"}, "Go GC (background mark and sweep)"},
		{
			"json inside schema validation counts as validation",
			[]string{"encoding/json.(*decodeState).object", "github.com/santhosh-tekuri/jsonschema/v6.(*Schema).Validate", "github.com/orderpipe/orderpipe/internal/intake.(*Service).Place", "net/http.(*conn).serve"},
			"api: OrderPlaced JSON Schema validation",
		},
		{
			"redis call in a request",
			[]string{"syscall.write", "github.com/redis/go-redis/v9.(*baseClient).process", "github.com/orderpipe/orderpipe/internal/redisstore.(*Store).Reserve", "net/http.(*conn).serve"},
			"api: Redis (go-redis client, redisstore)",
		},
		{"plain handler work", []string{"github.com/labstack/echo/v4.(*Echo).ServeHTTP", "net/http.(*conn).serve"}, requestRest},
		{"producer goroutine", []string{"syscall.write", "github.com/twmb/franz-go/pkg/kgo.(*sink).produce"}, kafkaClient},
		{"auto-pipeliner goroutine", []string{"syscall.write", "github.com/redis/go-redis/v9.(*fdEngine).writeBatch"}, redisClient},
		{"scheduler", []string{"runtime.findRunnable", "runtime.schedule", "runtime.mcall"}, schedulerOrOther},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := classify(tt.stack); got != tt.want {
				t.Fatalf("classify = %q, want %q", got, tt.want)
			}
		})
	}
}

// spin burns CPU until the deadline, so the profile has samples.
func spin(until time.Time) int {
	n := 0
	for time.Now().Before(until) {
		for i := range 10000 {
			n += i % 7
		}
	}
	return n
}

func TestSummarizeProfile(t *testing.T) {
	// Not parallel: the CPU profiler is process-wide.
	var buf bytes.Buffer
	if err := pprof.StartCPUProfile(&buf); err != nil {
		t.Fatalf("start profile: %v", err)
	}
	_ = spin(time.Now().Add(300 * time.Millisecond))
	pprof.StopCPUProfile()

	sum, err := summarizeProfile(buf.Bytes())
	if err != nil {
		t.Fatalf("summarizeProfile: %v", err)
	}
	// On a busy machine the spinning goroutine gets only part of a CPU, but some of it.
	if sum.total < 20*time.Millisecond || sum.total > 2*time.Second {
		t.Fatalf("total CPU sampled = %v, want up to the 300ms of spinning", sum.total)
	}
	if sum.duration < 250*time.Millisecond {
		t.Fatalf("duration = %v, want at least the 300ms profiled", sum.duration)
	}
	var sum2 time.Duration
	for i, c := range sum.components {
		sum2 += c.cpu
		if i > 0 && c.cpu > sum.components[i-1].cpu {
			t.Fatalf("components not sorted by CPU: %v", sum.components)
		}
	}
	if sum2 != sum.total {
		t.Fatalf("components add up to %v, want the total %v", sum2, sum.total)
	}
	// The spinning test goroutine is none of the named components.
	if got := sum.share(schedulerOrOther); got < 0.5 {
		t.Fatalf("share of %q = %.2f, want most of the profile", schedulerOrOther, got)
	}
}

func TestParseProfileRejectsGarbage(t *testing.T) {
	t.Parallel()
	if _, err := parseProfile([]byte{0x1f, 0x8b, 0, 1, 2}); err == nil {
		t.Fatalf("got no error for a broken gzip stream")
	}
	if _, err := parseProfile([]byte{0xff, 0xff, 0xff}); err == nil {
		t.Fatalf("got no error for a broken protobuf")
	}
}

func TestParseProcFiles(t *testing.T) {
	t.Parallel()
	busy, irq, total, ok := parseProcStat([]byte("cpu  100 10 50 800 40 5 15 0 0 0\ncpu0 1 2 3\n"))
	if !ok || busy != 180 || irq != 20 || total != 1020 {
		t.Fatalf("parseProcStat = %d, %d, %d, %v; want 180, 20, 1020, true", busy, irq, total, ok)
	}
	if _, _, _, ok := parseProcStat([]byte("intr 1 2 3\n")); ok {
		t.Fatalf("parseProcStat accepted a file without a cpu line")
	}
	comm, ticks, ok := parsePidStat([]byte("4242 (redis-server (x)) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 5 0"))
	if !ok || comm != "redis-server (x)" || ticks != 325 {
		t.Fatalf("parsePidStat = %q, %d, %v; want \"redis-server (x)\", 325, true", comm, ticks, ok)
	}
	if _, _, ok := parsePidStat([]byte("garbage")); ok {
		t.Fatalf("parsePidStat accepted garbage")
	}
}

func TestCPUSampleUntil(t *testing.T) {
	t.Parallel()
	t0 := time.Unix(1000, 0)
	a := cpuSample{at: t0, busy: 0, irq: 0, total: 0, self: 0, postgres: 0, redis: 0, ok: true}
	// 2 CPUs for 1 s = 200 ticks, 150 of them busy: 1.5 cores.
	b := cpuSample{at: t0.Add(time.Second), busy: 150, irq: 10, total: 200, self: 80, postgres: 20, redis: 10, ok: true}
	u := a.until(b)
	if !u.known || u.machine != 1.5 || u.self != 0.8 || u.postgres != 0.2 || u.redis != 0.1 || u.irq != 0.1 {
		t.Fatalf("usage = %+v, want machine 1.5, self 0.8, postgres 0.2, redis 0.1, irq 0.1", u)
	}
	if other := u.other; other < 0.299 || other > 0.301 {
		t.Fatalf("other = %v, want 0.3", other)
	}
	if u := a.until(cpuSample{at: t0.Add(time.Second)}); u.known {
		t.Fatalf("usage from a failed sample is known: %+v", u)
	}
}

func TestParseCommandStats(t *testing.T) {
	t.Parallel()
	info := "# Commandstats\r\ncmdstat_evalsha:calls=300,usec=900,usec_per_call=3.00,rejected_calls=0,failed_calls=0\r\n" +
		"cmdstat_set:calls=100,usec=50,usec_per_call=0.50\r\n"
	got := parseCommandStats(info)
	if got["evalsha"] != 300 || got["set"] != 100 || len(got) != 2 {
		t.Fatalf("parseCommandStats = %v, want evalsha 300, set 100", got)
	}
	before := map[string]int64{"evalsha": 100, "set": 50, "ping": 10}
	after := map[string]int64{"evalsha": 400, "set": 150, "ping": 11, "hmget": 2}
	if got, want := callsPerOrder(before, after, 100), "EVALSHA 3.00, SET 1.00"; got != want {
		t.Fatalf("callsPerOrder = %q, want %q", got, want)
	}
}

func TestParseAPITimes(t *testing.T) {
	t.Parallel()
	text := `# HELP orderpipe_http_request_duration_seconds HTTP request latency.
# TYPE orderpipe_http_request_duration_seconds histogram
orderpipe_http_request_duration_seconds_bucket{method="POST",route="/v1/orders",le="0.001"} 3
orderpipe_http_request_duration_seconds_sum{method="POST",route="/v1/orders"} 2.5
orderpipe_http_request_duration_seconds_count{method="POST",route="/v1/orders"} 1000
orderpipe_http_request_duration_seconds_sum{method="GET",route="/readyz"} 9
orderpipe_http_request_duration_seconds_count{method="GET",route="/readyz"} 9
orderpipe_intake_reserve_seconds_sum 0.5
orderpipe_intake_reserve_seconds_count 1000
orderpipe_intake_produce_seconds_sum 1.5e+00
orderpipe_intake_produce_seconds_count 1000
`
	got := parseAPITimes(text)
	want := apiTimes{metricRequest: {2.5, 1000}, metricReserve: {0.5, 1000}, metricProduce: {1.5, 1000}}
	if len(got) != len(want) {
		t.Fatalf("parseAPITimes = %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("%s = %v, want %v", k, got[k], v)
		}
	}
	earlier := apiTimes{metricRequest: {0.5, 500}}
	if m, ok := got.meanSince(earlier, metricRequest); !ok || m != 4*time.Millisecond {
		t.Fatalf("meanSince = %v, %v; want 4ms, true", m, ok)
	}
	if _, ok := got.meanSince(got, metricReserve); ok {
		t.Fatalf("meanSince over no observations: got ok, want not ok")
	}
}

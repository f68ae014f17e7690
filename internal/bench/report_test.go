package bench

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestQuantile(t *testing.T) {
	t.Parallel()
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = time.Duration(i+1) * time.Millisecond
	}
	tests := []struct {
		name   string
		sorted []time.Duration
		q      float64
		want   time.Duration
	}{
		{"empty", nil, 0.5, 0},
		{"one", []time.Duration{7}, 0.999, 7},
		{"p50 of 100", hundred, 0.5, 50 * time.Millisecond},
		{"p99 of 100", hundred, 0.99, 99 * time.Millisecond},
		{"p99.9 of 100 is the max", hundred, 0.999, 100 * time.Millisecond},
		{"max", hundred, 1, 100 * time.Millisecond},
		{"tiny q is the min", hundred, 0.0001, time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := quantile(tt.sorted, tt.q); got != tt.want {
				t.Fatalf("quantile(%v) = %v, want %v", tt.q, got, tt.want)
			}
		})
	}
}

func TestRunResultRates(t *testing.T) {
	t.Parallel()
	r := runResult{elapsed: 2 * time.Second, requests: 1000, codes: map[int]int{202: 900, 409: 60, 0: 40}}
	if got, want := r.accepted(), 900; got != want {
		t.Fatalf("accepted = %d, want %d", got, want)
	}
	if got, want := r.failed(), 100; got != want {
		t.Fatalf("failed = %d, want %d", got, want)
	}
	if got, want := r.throughput(), 450.0; got != want {
		t.Fatalf("throughput = %v, want %v", got, want)
	}
	if got, want := r.offered(), 500.0; got != want {
		t.Fatalf("offered = %v, want %v", got, want)
	}
	if got, want := statusSummary(r.codes), "transport error: 40, 202: 900, 409: 60"; got != want {
		t.Fatalf("statusSummary = %q, want %q", got, want)
	}
}

const (
	BeginMarker = "<!-- intake:begin -->"
	EndMarker   = "<!-- intake:end -->"
)

func TestReplaceNamedSection(t *testing.T) {
	t.Parallel()
	section := BeginMarker + "\nnew\n" + EndMarker + "\n"
	tests := []struct {
		name    string
		doc     string
		want    string
		wantErr bool
	}{
		{
			name: "replaces between markers and keeps the rest",
			doc:  "# Benchmarks\n\nintro\n\n" + BeginMarker + "\nold\nlines\n" + EndMarker + "\n\n" + "<!-- other:begin -->\nkeep me\n<!-- other:end -->\n",
			want: "# Benchmarks\n\nintro\n\n" + BeginMarker + "\nnew\n" + EndMarker + "\n\n" + "<!-- other:begin -->\nkeep me\n<!-- other:end -->\n",
		},
		{
			name: "appends to a document without markers",
			doc:  "# Benchmarks\n\n<!-- other:begin -->\nkeep me\n<!-- other:end -->\n\n\n",
			want: "# Benchmarks\n\n<!-- other:begin -->\nkeep me\n<!-- other:end -->\n\n" + BeginMarker + "\nnew\n" + EndMarker + "\n",
		},
		{
			name: "an empty document becomes a page",
			doc:  "",
			want: "# Benchmarks\n\nEach section is written by a benchmark command; edit outside the markers only.\n\n" + BeginMarker + "\nnew\n" + EndMarker + "\n",
		},
		{name: "only a begin marker", doc: "x\n" + BeginMarker + "\nold\n", wantErr: true},
		{name: "markers out of order", doc: EndMarker + "\n" + BeginMarker + "\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ReplaceNamedSection(tt.doc, SectionName, section)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Fatalf("got\n%q\nwant\n%q", got, tt.want)
			}
		})
	}
	if _, err := ReplaceNamedSection("", SectionName, "no markers"); err == nil {
		t.Fatalf("a section without markers: got no error, want one")
	}
	if _, err := ReplaceNamedSection("", "worker", section); err == nil {
		t.Fatalf("a section with another section's markers: got no error, want one")
	}
	if _, err := ReplaceNamedSection("", "Bad Name", section); err == nil {
		t.Fatalf("a bad section name: got no error, want one")
	}
}

func TestWriteNamedSection(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "docs", "benchmarks.md")
	first := BeginMarker + "\nrun 1\n" + EndMarker + "\n"
	if err := WriteNamedSection(path, SectionName, first); err != nil {
		t.Fatalf("WriteNamedSection (new file): %v", err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// Someone adds another benchmark's section; the next intake run must keep it.
	other := "\n<!-- event:begin -->\nevent numbers\n<!-- event:end -->\n"
	if err := os.WriteFile(path, append(b, other...), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteNamedSection(path, SectionName, BeginMarker+"\nrun 2\n"+EndMarker+"\n"); err != nil {
		t.Fatalf("WriteNamedSection (update): %v", err)
	}
	b, err = os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	got := string(b)
	for _, want := range []string{"run 2", "event numbers", "# Benchmarks"} {
		if !strings.Contains(got, want) {
			t.Fatalf("file lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "run 1") {
		t.Fatalf("file still has the old section:\n%s", got)
	}
	if n := strings.Count(got, BeginMarker); n != 1 {
		t.Fatalf("begin marker appears %d times, want 1", n)
	}
}

// fakeRun makes a run with n answers of code at the given rate of answers per second and a fixed
// latency.
func fakeRun(label string, rate, n, code int, lat time.Duration, perSec float64) runResult {
	r := runResult{label: label, rate: rate, workers: 64, requests: n, codes: map[int]int{code: n},
		elapsed: time.Duration(float64(n) / perSec * float64(time.Second))}
	for range n {
		r.latencies = append(r.latencies, lat)
	}
	return r
}

func fakeReport(intakeCheck, naiveCheck *stockCheck) *Report {
	return &Report{
		cfg:     Config{Command: "orderctl bench intake", Duration: 10 * time.Second, Workers: 64, Stock: 1000},
		started: time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC), finished: time.Date(2026, 1, 2, 3, 6, 0, 0, time.UTC),
		machine: machine{cpus: 2, model: "Test CPU", goVer: "go1.26.8", os: "linux/amd64"},
		arms: []armResult{
			{name: "bare Echo", key: "bare", design: "bare", satFound: true,
				closed: fakeRun("closed loop", 0, 1000, 202, time.Millisecond, 12000),
				sat:    fakeRun("search step", 10000, 1000, 202, time.Millisecond, 10000),
				open:   fakeRun("open model", 8000, 800, 202, time.Millisecond, 8000)},
			{name: "naive Postgres", key: "naive", design: "naive", check: naiveCheck, satFound: true,
				closed: fakeRun("closed loop", 0, 100, 202, 100*time.Millisecond, 250),
				sat:    fakeRun("search step", 200, 100, 202, 100*time.Millisecond, 200),
				open:   fakeRun("open model", 160, 100, 202, 5*time.Millisecond, 160)},
			{name: "full intake", key: "intake", design: "intake", check: intakeCheck, satFound: true,
				closed: fakeRun("closed loop", 0, 1000, 202, 20*time.Millisecond, 5000),
				sat:    fakeRun("search step", 4000, 1000, 202, 20*time.Millisecond, 4000),
				open:   fakeRun("open model", 3200, 1000, 202, 30*time.Millisecond, 3200)},
		},
		profile: &profileSummary{duration: 10 * time.Second, total: 15 * time.Second, top: "flat flat% sum% cum cum%",
			components: []component{{name: "api: Redis (go-redis client, redisstore)", cpu: 5 * time.Second}, {name: schedulerOrOther, cpu: 10 * time.Second}}},
		openProfile: &profileSummary{duration: 10 * time.Second, total: 4 * time.Second,
			components: []component{{name: "api: Redis (go-redis client, redisstore)", cpu: 2 * time.Second}, {name: kafkaClient, cpu: 2 * time.Second}}},
	}
}

func TestMarkdown(t *testing.T) {
	t.Parallel()
	ok := func(arm string) *stockCheck { return &stockCheck{arm: arm, state: "books balance"} }
	bad := &stockCheck{arm: "full intake", state: "ATP -3", problems: []string{"oversold 3 units: ATP is -3"}}
	tests := []struct {
		name       string
		rep        *Report
		want       []string
		notWant    []string
		wantVerdic map[string]bool // target prefix -> met
	}{
		{
			name: "checks pass",
			rep:  fakeReport(ok("full intake"), ok("naive Postgres")),
			want: []string{
				"| full intake / bare Echo ceiling, at saturation | >= 0.30x (stretch 0.5x) | 0.40x (4000 vs 10000 orders/s) | met |",
				"| full intake / naive design on one hot SKU, at saturation | >= 20x | 20.0x (4000 vs 200 orders/s) | met |",
				"full intake p99 at 80% of saturation (open model) | < 50.0 ms | 30.0 ms at 3200 orders/s offered, 0 of 1000 not 202 | met |",
				"- full intake: oversell: 0. books balance.",
				"- naive Postgres: oversell: 0. books balance.",
				"**Machine:** 2 CPUs (`nproc`), Test CPU, linux/amd64, Go 1.26.8",
				"| api: Redis (go-redis client, redisstore) | 5000 µs | 33.3% | 2000 µs | 50.0% |",
				"| " + kafkaClient + " | 0 µs | 0.0% | 2000 µs | 50.0% |",
				"| **this process, total** | **15000 µs** | 100% | **4000 µs** | 100% |",
			},
			notWant: []string{"CHECK FAILED", "missed", "Warning"},
		},
		{
			name:    "a failed check is never reported as 0 oversell",
			rep:     fakeReport(bad, ok("naive Postgres")),
			want:    []string{"- full intake: **CHECK FAILED**: oversold 3 units: ATP is -3. State: ATP -3.", "| oversell, full intake | 0 | CHECK FAILED, see below | **missed** |"},
			notWant: []string{"- full intake: oversell: 0"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			md := tt.rep.Markdown()
			if !strings.HasPrefix(md, BeginMarker) || !strings.HasSuffix(md, EndMarker+"\n") {
				t.Fatalf("section is not wrapped in its markers:\n%s", md)
			}
			for _, w := range tt.want {
				if !strings.Contains(md, w) {
					t.Errorf("markdown lacks %q", w)
				}
			}
			for _, w := range tt.notWant {
				if strings.Contains(md, w) {
					t.Errorf("markdown has %q", w)
				}
			}
			if t.Failed() {
				t.Logf("markdown:\n%s", md)
			}
		})
	}
}

func TestMarkdownWarnsWhenContended(t *testing.T) {
	t.Parallel()
	rep := fakeReport(nil, nil)
	rep.arms[1].steps = []runResult{{cpu: cpuUse{known: true, machine: 2, self: 0.5, other: 1.5}}}
	if md := rep.Markdown(); !strings.Contains(md, "Other processes used up to 1.50 cores") {
		t.Fatalf("no contention warning in:\n%s", md)
	}
}

func TestTargetsMissed(t *testing.T) {
	t.Parallel()
	rep := fakeReport(nil, nil)
	rep.arms[2].sat = fakeRun("search step", 1000, 100, http.StatusAccepted, time.Millisecond, 1000) // 0.1x bare, 5x naive
	rep.arms[2].open = fakeRun("open model", 800, 100, http.StatusAccepted, 80*time.Millisecond, 800)
	got := map[string]bool{}
	for _, v := range rep.verdicts() {
		got[v.what] = v.met
	}
	for what, met := range map[string]bool{
		"full intake / bare Echo ceiling, at saturation":           false,
		"full intake / naive design on one hot SKU, at saturation": false,
		"full intake p99 at 80% of saturation (open model)":        false,
	} {
		if m, ok := got[what]; !ok || m != met {
			t.Fatalf("verdict %q: got met=%v (present %v), want met=%v", what, m, ok, met)
		}
	}
}

func TestNoSustainedRate(t *testing.T) {
	t.Parallel()
	rep := fakeReport(nil, nil)
	rep.arms[2].satFound = false
	for _, v := range rep.verdicts() {
		if strings.HasPrefix(v.what, "full intake") {
			t.Fatalf("verdict %q reported although the intake sustained no rate", v.what)
		}
	}
	if md := rep.Markdown(); !strings.Contains(md, "no rate sustained") {
		t.Fatalf("markdown does not say no rate was sustained:\n%s", md)
	}
}

func TestSustained(t *testing.T) {
	t.Parallel()
	const d = 2 * time.Second
	tests := []struct {
		name string
		run  runResult
		want bool
	}{
		{"kept up", fakeRun("s", 100, 200, 202, 5*time.Millisecond, 100), true},
		{"fell behind the schedule", fakeRun("s", 100, 150, 202, 5*time.Millisecond, 75), false},
		{"p99 over the bound", fakeRun("s", 100, 200, 202, sustainP99+time.Millisecond, 100), false},
		{"errors", fakeRun("s", 100, 200, 500, 5*time.Millisecond, 100), false},
		{"nothing sent", runResult{rate: 100, codes: map[int]int{}}, false},
		{"steady medians", withThirds(fakeRun("s", 100, 200, 202, 5*time.Millisecond, 100), 2*time.Millisecond, 4*time.Millisecond), true},
		{"queue grew", withThirds(fakeRun("s", 100, 200, 202, 5*time.Millisecond, 100), 2*time.Millisecond, 30*time.Millisecond), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := tt.run.sustained(d); got != tt.want {
				t.Fatalf("sustained = %v, want %v", got, tt.want)
			}
		})
	}
}

func withThirds(r runResult, early, late time.Duration) runResult {
	r.early, r.late, r.thirds = early, late, true
	return r
}

func TestThirdMedians(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 11, 27, 4, 0, 0, 0, time.UTC)
	ms := time.Millisecond
	// A 3 s run: two requests in the first second, one in the middle, three in the last.
	samples := []sentSample{
		{start, 1 * ms}, {start.Add(900 * ms), 3 * ms}, {start.Add(1500 * ms), 500 * ms},
		{start.Add(2000 * ms), 40 * ms}, {start.Add(2500 * ms), 10 * ms}, {start.Add(2999 * ms), 20 * ms},
	}
	early, late, ok := thirdMedians(start, 3*time.Second, samples)
	if !ok || early != 1*ms || late != 20*ms {
		t.Fatalf("thirds = %s, %s, %v; want 1ms, 20ms (nearest-rank medians), true", early, late, ok)
	}
	if _, _, ok := thirdMedians(start, 3*time.Second, samples[:2]); ok {
		t.Fatal("no request in the last third, but ok")
	}
}

func TestMarkdownShowsRepeatedRuns(t *testing.T) {
	t.Parallel()
	rep := fakeReport(nil, nil)
	d := fakeRun("closed loop, 64 in flight", 0, 100, 202, 50*time.Millisecond, 1000)
	d.cpu = cpuUse{known: true, machine: 2, self: 1, other: 1}
	rep.arms[2].discarded = []runResult{d}
	want := "- repeated: closed loop, 64 in flight, which other processes disturbed (they used 1.00 cores; it achieved 1000 orders/s, p99 50.0 ms)"
	if md := rep.Markdown(); !strings.Contains(md, want) {
		t.Fatalf("markdown lacks %q:\n%s", want, md)
	}
}

func TestRatioBounds(t *testing.T) {
	t.Parallel()
	rep := fakeReport(nil, nil)
	rep.arms[1].satAtTop = true // the naive search never failed: its saturation is a lower bound
	md := rep.Markdown()
	for _, want := range []string{"at most 20.0x (4000 vs 200 orders/s)", "(the search's top step; the arm may sustain more)"} {
		if !strings.Contains(md, want) {
			t.Fatalf("markdown lacks %q", want)
		}
	}
}

// When the HTTP ceiling itself is below the naive-design target, the report says the target is out
// of reach on this machine; when it is not, it says nothing of the kind.
func TestMarkdownSaysWhenTheCeilingCapsTheNaiveRatio(t *testing.T) {
	t.Parallel()
	const note = "no intake served over the same HTTP stack could reach"
	rep := fakeReport(nil, nil) // bare 10000/s, naive 200/s: 50x
	if md := rep.Markdown(); strings.Contains(md, note) {
		t.Fatalf("ceiling note although bare Echo is 50x the naive design:\n%s", md)
	}
	rep.arms[0].sat = fakeRun("search step", 3000, 1000, 202, time.Millisecond, 3000) // 15x
	if md := rep.Markdown(); !strings.Contains(md, "reaches only 15.0x the naive design (3000 vs 200 orders/s): "+note+" 20x here") {
		t.Fatalf("no ceiling note although bare Echo is 15x the naive design:\n%s", md)
	}
}

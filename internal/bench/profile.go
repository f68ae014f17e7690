package bench

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"sort"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
)

// component is where a share of the profiled CPU went.
type component struct {
	name string
	cpu  time.Duration
}

// profileSummary is the CPU profile of the process during the intake saturation run.
type profileSummary struct {
	duration   time.Duration // wall time profiled
	total      time.Duration // CPU time sampled
	components []component   // by CPU, largest first
	top        string        // `go tool pprof -top -cum` output, or why it is missing
}

// The rules that attribute a sample to a component, tried in order. Each matches a substring
// of any function on the sample's stack; for the api's request goroutines the first rule is
// found walking from the root, so the library a handler called into first claims the time (JSON
// work inside schema validation counts as schema validation).
var (
	goroutineRules = []struct{ name, match string }{
		{"Go GC (background mark and sweep)", "runtime.gcBgMarkWorker"},
		{"Go GC (background mark and sweep)", "runtime.bgsweep"},
		{"Go GC (background mark and sweep)", "runtime.bgscavenge"},
		{"kfake broker (stands in for Kafka; not in production)", "franz-go/pkg/kfake"},
		{"load generator (vegeta and its HTTP client; not in production)", "tsenart/vegeta"},
		{"load generator (vegeta and its HTTP client; not in production)", "net/http.(*persistConn)"},
		{"load generator (vegeta and its HTTP client; not in production)", "net/http.(*Transport)"},
	}
	requestRules = []struct{ name, match string }{
		{"api: Redis (go-redis client, redisstore)", "orderpipe/internal/redisstore"},
		{"api: Redis (go-redis client, redisstore)", "redis/go-redis"},
		{"api: Kafka produce (franz-go client)", "franz-go/pkg/kgo"},
		{"api: OrderPlaced JSON Schema validation", "santhosh-tekuri/jsonschema"},
		{"api: Prometheus metrics", "prometheus/client_golang"},
		{"api: logging", "log/slog"},
		{"api: JSON encode/decode", "encoding/json"},
	}
)

const (
	requestRoot      = "net/http.(*conn).serve"
	requestRest      = "api: HTTP serving, Echo, handlers, validation (the rest of the request)"
	kafkaClient      = "api: Kafka produce (franz-go client)"
	redisClient      = "api: Redis (go-redis client, redisstore)"
	schedulerOrOther = "Go runtime: scheduler, netpoll, syscalls outside a goroutine"
)

// classify names the component of one stack, given leaf first.
func classify(stack []string) string {
	for _, r := range goroutineRules {
		for _, f := range stack {
			if strings.Contains(f, r.match) {
				return r.name
			}
		}
	}
	inRequest := false
	for _, f := range stack {
		if strings.Contains(f, requestRoot) {
			inRequest = true
			break
		}
	}
	if inRequest {
		for i := len(stack) - 1; i >= 0; i-- {
			for _, r := range requestRules {
				if strings.Contains(stack[i], r.match) {
					return r.name
				}
			}
		}
		return requestRest
	}
	for _, f := range stack {
		switch {
		case strings.Contains(f, "franz-go/pkg/kgo"):
			return kafkaClient // the producer's own goroutines (sinks, metadata)
		case strings.Contains(f, "redis/go-redis"):
			return redisClient // the auto-pipeliner's writer and reader goroutines
		}
	}
	return schedulerOrOther
}

// summarizeProfile reads a pprof CPU profile and attributes its samples to components.
func summarizeProfile(raw []byte) (profileSummary, error) {
	p, err := parseProfile(raw)
	if err != nil {
		return profileSummary{}, err
	}
	by := map[string]time.Duration{}
	var total time.Duration
	for _, s := range p.samples {
		stack := make([]string, 0, len(s.locations)*2)
		for _, id := range s.locations {
			for _, fn := range p.locations[id] {
				stack = append(stack, p.functions[fn])
			}
		}
		d := time.Duration(s.value)
		by[classify(stack)] += d
		total += d
	}
	sum := profileSummary{duration: time.Duration(p.durationNanos), total: total}
	for name, d := range by {
		sum.components = append(sum.components, component{name: name, cpu: d})
	}
	sort.Slice(sum.components, func(i, j int) bool {
		if sum.components[i].cpu != sum.components[j].cpu {
			return sum.components[i].cpu > sum.components[j].cpu
		}
		return sum.components[i].name < sum.components[j].name
	})
	return sum, nil
}

// pprofTop runs `go tool pprof -top -cum` on the profile at path.
func pprofTop(ctx context.Context, path string) string {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", "tool", "pprof", "-top", "-cum", "-nodecount=25", path).CombinedOutput()
	if err != nil {
		return fmt.Sprintf("go tool pprof failed: %v\n%s", err, out)
	}
	// Drop the File/Build ID lines: they name a temporary binary and change every run.
	var keep []string
	for line := range strings.SplitSeq(strings.TrimRight(string(out), "\n"), "\n") {
		if strings.HasPrefix(line, "File:") || strings.HasPrefix(line, "Build ID:") || strings.HasPrefix(line, "Time:") {
			continue
		}
		keep = append(keep, line)
	}
	return strings.Join(keep, "\n")
}

// profile is the part of a pprof profile (profile.proto) the summary needs.
type profile struct {
	samples       []sample
	locations     map[uint64][]uint64 // location id -> function ids, innermost first
	functions     map[uint64]string   // function id -> name
	durationNanos int64
}

type sample struct {
	locations []uint64 // leaf first
	value     int64    // CPU nanoseconds
}

// parseProfile decodes a gzipped profile.proto with protowire (the pprof module is not a
// dependency of orderpipe), keeping the CPU nanoseconds of each sample.
func parseProfile(raw []byte) (*profile, error) {
	if len(raw) > 2 && raw[0] == 0x1f && raw[1] == 0x8b {
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			return nil, fmt.Errorf("profile: %w", err)
		}
		if raw, err = io.ReadAll(zr); err != nil {
			return nil, fmt.Errorf("profile: %w", err)
		}
	}
	p := &profile{locations: map[uint64][]uint64{}, functions: map[uint64]string{}}
	var (
		strs       []string
		types      []int64 // string index of each sample type's "type"
		rawSamples []struct {
			locs   []uint64
			values []int64
		}
		funcNames = map[uint64]int64{}
	)
	err := eachField(raw, func(num protowire.Number, typ protowire.Type, v uint64, b []byte) error {
		switch num {
		case 1: // sample_type
			var t int64
			err := eachField(b, func(n protowire.Number, _ protowire.Type, v uint64, _ []byte) error {
				if n == 1 {
					t = int64(v)
				}
				return nil
			})
			types = append(types, t)
			return err
		case 2: // sample
			var s struct {
				locs   []uint64
				values []int64
			}
			err := eachField(b, func(n protowire.Number, t protowire.Type, v uint64, b []byte) error {
				switch n {
				case 1:
					return appendVarints(&s.locs, t, v, b, func(x uint64) uint64 { return x })
				case 2:
					return appendVarints(&s.values, t, v, b, func(x uint64) int64 { return int64(x) })
				}
				return nil
			})
			rawSamples = append(rawSamples, s)
			return err
		case 4: // location
			var id uint64
			var fns []uint64
			err := eachField(b, func(n protowire.Number, _ protowire.Type, v uint64, b []byte) error {
				switch n {
				case 1:
					id = v
				case 4: // line
					return eachField(b, func(n protowire.Number, _ protowire.Type, v uint64, _ []byte) error {
						if n == 1 {
							fns = append(fns, v)
						}
						return nil
					})
				}
				return nil
			})
			p.locations[id] = fns
			return err
		case 5: // function
			var id uint64
			var name int64
			err := eachField(b, func(n protowire.Number, _ protowire.Type, v uint64, _ []byte) error {
				switch n {
				case 1:
					id = v
				case 2:
					name = int64(v)
				}
				return nil
			})
			funcNames[id] = name
			return err
		case 6: // string_table
			strs = append(strs, string(b))
		case 10: // duration_nanos
			p.durationNanos = int64(v)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("profile: %w", err)
	}
	str := func(i int64) string {
		if i < 0 || int(i) >= len(strs) {
			return ""
		}
		return strs[i]
	}
	for id, n := range funcNames {
		p.functions[id] = str(n)
	}
	// CPU profiles carry (samples count, cpu nanoseconds); use the "cpu" value.
	vi := len(types) - 1
	for i, t := range types {
		if str(t) == "cpu" {
			vi = i
		}
	}
	if vi < 0 {
		return nil, errors.New("profile: no sample types")
	}
	for _, s := range rawSamples {
		if vi < len(s.values) {
			p.samples = append(p.samples, sample{locations: s.locs, value: s.values[vi]})
		}
	}
	return p, nil
}

// eachField calls fn for every field of a protobuf message: v holds varint and fixed values, b
// the bytes of length-delimited ones.
func eachField(b []byte, fn func(num protowire.Number, typ protowire.Type, v uint64, b []byte) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		var (
			v   uint64
			val []byte
		)
		switch typ {
		case protowire.VarintType:
			v, n = protowire.ConsumeVarint(b)
		case protowire.Fixed64Type:
			v, n = protowire.ConsumeFixed64(b)
		case protowire.Fixed32Type:
			var v32 uint32
			v32, n = protowire.ConsumeFixed32(b)
			v = uint64(v32)
		case protowire.BytesType:
			val, n = protowire.ConsumeBytes(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		if err := fn(num, typ, v, val); err != nil {
			return err
		}
	}
	return nil
}

// appendVarints appends a repeated varint field, packed or not.
func appendVarints[T any](dst *[]T, typ protowire.Type, v uint64, b []byte, conv func(uint64) T) error {
	if typ != protowire.BytesType {
		*dst = append(*dst, conv(v))
		return nil
	}
	for len(b) > 0 {
		x, n := protowire.ConsumeVarint(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		*dst = append(*dst, conv(x))
		b = b[n:]
	}
	return nil
}

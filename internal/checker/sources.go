package checker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderpipe/orderpipe/internal/mailsink"
	"github.com/orderpipe/orderpipe/internal/paysim"
)

// httpTimeout bounds one request to the payment simulator or the mail sink.
const httpTimeout = 30 * time.Second

// getJSON reads a JSON document from url into v.
func getJSON(ctx context.Context, url string, v any) error {
	ctx, cancel := context.WithTimeout(ctx, httpTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("GET %s: %s: %s", url, resp.Status, strings.TrimSpace(string(b)))
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("GET %s: decode: %w", url, err)
	}
	return nil
}

// payments reads the simulator's charges and counters.
func payments(ctx context.Context, base string) ([]paysim.Charge, paysim.Stats, error) {
	base = strings.TrimRight(base, "/")
	var list struct {
		Charges []paysim.Charge `json:"charges"`
	}
	var st paysim.Stats
	if err := getJSON(ctx, base+"/v1/charges", &list); err != nil {
		return nil, st, fmt.Errorf("payment simulator: %w", err)
	}
	if err := getJSON(ctx, base+"/v1/stats", &st); err != nil {
		return nil, st, fmt.Errorf("payment simulator: %w", err)
	}
	return list.Charges, st, nil
}

// mails reads every message of the sink.
func mails(ctx context.Context, base string) ([]mailsink.APIMessage, error) {
	var out []mailsink.APIMessage
	if err := getJSON(ctx, strings.TrimRight(base, "/")+"/api/messages", &out); err != nil {
		return nil, fmt.Errorf("mail sink: %w", err)
	}
	return out, nil
}

// readTopics reads every record of topics, up to their end offsets when called. A topic that
// does not exist reads as empty.
func readTopics(ctx context.Context, brokers []string, topics ...string) (map[string][]*kgo.Record, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.FetchMaxWait(200*time.Millisecond))
	if err != nil {
		return nil, fmt.Errorf("kafka client: %w", err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ends, err := adm.ListEndOffsets(ctx, topics...)
	if err != nil {
		return nil, fmt.Errorf("end offsets of %v: %w", topics, err)
	}
	starts, err := adm.ListStartOffsets(ctx, topics...)
	if err != nil {
		return nil, fmt.Errorf("start offsets of %v: %w", topics, err)
	}
	want := map[string]map[int32]kgo.Offset{}
	last := map[string]map[int32]int64{}
	var errs []error
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			if !errors.Is(o.Err, kerr.UnknownTopicOrPartition) {
				errs = append(errs, fmt.Errorf("end offset of %s/%d: %w", o.Topic, o.Partition, o.Err))
			}
			return
		}
		start := int64(0)
		if s, ok := starts.Lookup(o.Topic, o.Partition); ok && s.Err == nil {
			start = s.Offset
		}
		if o.Offset <= start {
			return
		}
		if want[o.Topic] == nil {
			want[o.Topic], last[o.Topic] = map[int32]kgo.Offset{}, map[int32]int64{}
		}
		want[o.Topic][o.Partition] = kgo.NewOffset().At(start)
		last[o.Topic][o.Partition] = o.Offset - 1
	})
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	out := map[string][]*kgo.Record{}
	if len(want) == 0 {
		return out, nil
	}
	cl.AddConsumePartitions(want)
	remaining := 0
	for _, ps := range last {
		remaining += len(ps)
	}
	for remaining > 0 {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("read %v: %w", topics, err)
		}
		for _, fe := range fs.Errors() {
			if !errors.Is(fe.Err, context.Canceled) {
				return nil, fmt.Errorf("read %s/%d: %w", fe.Topic, fe.Partition, fe.Err)
			}
		}
		fs.EachRecord(func(r *kgo.Record) {
			end, ok := last[r.Topic][r.Partition]
			if !ok || r.Offset > end {
				return
			}
			out[r.Topic] = append(out[r.Topic], r)
			if r.Offset == end {
				delete(last[r.Topic], r.Partition)
				remaining--
			}
		})
	}
	return out, nil
}

// header returns the value of a record header.
func header(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

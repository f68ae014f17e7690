package kafka

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

// TopicSpec is one topic orderpipe expects: its name, partitions, replication and configs.
type TopicSpec struct {
	Name        string
	Partitions  int32
	Replication int16
	RetentionMs int64 // -1 keeps records forever; 0 leaves the broker default
}

// TopicState is what provisioning found or did for one topic.
type TopicState struct {
	Spec       TopicSpec
	Exists     bool
	Partitions int32  // found on the broker (after creation, the created count)
	Created    bool   // created by this call
	Problem    string // a difference provisioning does not fix by itself (say, fewer partitions)
}

// EnsureTopics creates every missing topic with its explicit partition count and replication
// (no reliance on broker auto-creation) and reports differences it leaves alone. When create is
// false it only reports.
func EnsureTopics(ctx context.Context, adm *kadm.Client, specs []TopicSpec, create bool) ([]TopicState, error) {
	names := make([]string, len(specs))
	for i, s := range specs {
		names[i] = s.Name
	}
	details, err := adm.ListTopics(ctx, names...)
	if err != nil {
		return nil, fmt.Errorf("list topics: %w", err)
	}
	states := make([]TopicState, 0, len(specs))
	for _, s := range specs {
		st := TopicState{Spec: s}
		if d, ok := details[s.Name]; ok && d.Err == nil {
			st.Exists = true
			st.Partitions = int32(len(d.Partitions))
			if st.Partitions < s.Partitions {
				st.Problem = fmt.Sprintf("has %d partitions, want %d (add them with kadm/CreatePartitions; keyed order is per partition, so plan it)", st.Partitions, s.Partitions)
			}
			states = append(states, st)
			continue
		}
		if create {
			configs := map[string]*string{}
			if s.RetentionMs != 0 {
				v := strconv.FormatInt(s.RetentionMs, 10)
				configs["retention.ms"] = &v
			}
			resp, err := adm.CreateTopic(ctx, s.Partitions, s.Replication, configs, s.Name)
			if err != nil && !isTopicExists(err) {
				return states, fmt.Errorf("create topic %s: %w", s.Name, err)
			}
			if resp.Err != nil && !isTopicExists(resp.Err) {
				return states, fmt.Errorf("create topic %s: %w", s.Name, resp.Err)
			}
			st.Exists, st.Created, st.Partitions = true, resp.Err == nil, s.Partitions
		}
		states = append(states, st)
	}
	sort.SliceStable(states, func(i, j int) bool { return states[i].Spec.Name < states[j].Spec.Name })
	var created []string
	for _, st := range states {
		if st.Created {
			created = append(created, st.Spec.Name)
		}
	}
	if err := WaitTopicsServed(ctx, adm, created...); err != nil {
		return states, err
	}
	return states, nil
}

// WaitTopicsServed waits until the broker's metadata lists every topic with a leader for each
// partition. A real Kafka cluster answers CreateTopics once the controller has committed the
// topic; brokers learn of it from the metadata log afterwards (seconds later on a busy machine),
// and until then a consumer that checks its topics finds them missing. kfake serves a topic at
// once.
func WaitTopicsServed(ctx context.Context, adm *kadm.Client, topics ...string) error {
	if len(topics) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		md, err := adm.Metadata(ctx, topics...)
		var waiting []string
		for _, t := range topics {
			d, ok := md.Topics[t]
			if err != nil || !ok || d.Err != nil || len(d.Partitions) == 0 {
				waiting = append(waiting, t)
				continue
			}
			for _, p := range d.Partitions {
				if p.Err != nil || p.Leader < 0 {
					waiting = append(waiting, t)
					break
				}
			}
		}
		if len(waiting) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("topics created but not served by the brokers: %v: %w", waiting, errors.Join(err, ctx.Err()))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func isTopicExists(err error) bool { return errors.Is(err, kerr.TopicAlreadyExists) }

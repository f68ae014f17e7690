package kafka

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"

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
	return states, nil
}

func isTopicExists(err error) bool { return errors.Is(err, kerr.TopicAlreadyExists) }

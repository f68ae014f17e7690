package orderctl

import (
	"context"
	"fmt"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/orderpipe/orderpipe/internal/kafka"
	"github.com/orderpipe/orderpipe/internal/topology"
)

// TopicsReport is what `orderctl topics --output json` prints: every topic orderpipe needs, as
// found on the broker (and what --create and --fix-retention changed).
type TopicsReport struct {
	Topics []TopicRow `json:"topics"`
	// Differences counts the topics that still differ from the expected layout (exit code 3).
	Differences int `json:"differences"`
}

// TopicRow is one topic: partitions and retention found and wanted, and its state: ok, missing,
// created, retention fixed, or a difference left alone (Problem says what and how to fix it).
type TopicRow struct {
	Topic           string `json:"topic"`
	Partitions      int32  `json:"partitions"` // found (0 when missing)
	WantPartitions  int32  `json:"want_partitions"`
	RetentionMs     int64  `json:"retention_ms"` // found; 0 when missing or not reported
	WantRetentionMs int64  `json:"want_retention_ms"`
	State           string `json:"state"`
	Problem         string `json:"problem,omitempty"`
}

func (e *env) topicsCmd() *cobra.Command {
	var create, fixRetention bool
	var output string
	cmd := &cobra.Command{
		Use:   "topics [--create] [--fix-retention] [--output table|json]",
		Short: "Verify every orderpipe topic's partitions and retention; --create and --fix-retention change what differs",
		Long: "Compares the broker's topics with the ones orderpipe needs (sources, and each group's retry\n" +
			"and dead-letter topics) and prints each with its partitions and retention (retention.ms),\n" +
			"found and wanted, and its state. Without flags nothing changes and the exit code is 3 when\n" +
			"something differs. --create creates the missing topics (with their partitions, replication\n" +
			"and retention); --fix-retention sets retention.ms where it differs. A topic with fewer\n" +
			"partitions than wanted is reported, never changed: adding partitions moves keys between\n" +
			"partitions, so it is a planned operation (kafka-topics.sh --alter --partitions).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			rep, err := e.topics(cmd.Context(), create, fixRetention)
			if err != nil {
				return err
			}
			if output == "json" {
				err = writeJSON(e.stdout, rep)
			} else {
				err = writeTopicsTable(e, rep)
			}
			if err != nil {
				return fmt.Errorf("write topics: %w", err)
			}
			if rep.Differences > 0 {
				return &exitError{code: ExitDiff, err: fmt.Errorf("%d topics differ from the expected layout (--create creates missing ones, --fix-retention fixes retention; partitions are never changed)", rep.Differences)}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&create, "create", false, "create missing topics")
	cmd.Flags().BoolVar(&fixRetention, "fix-retention", false, "set retention.ms of existing topics whose retention differs")
	cmd.Flags().StringVar(&output, "output", "table", "table or json")
	return cmd
}

func (e *env) ensureTopics(ctx context.Context, create bool) ([]kafka.TopicState, error) {
	cl, err := kafka.NewClient(kafka.ClientConfig{Brokers: e.cfg.KafkaBrokers, ClientID: e.cfg.KafkaClientID + "-orderctl"})
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	return kafka.EnsureTopics(ctx, kadm.NewClient(cl), e.topicSpecs(), create)
}

func (e *env) topicSpecs() []kafka.TopicSpec {
	return topology.Topics(topology.Settings{Partitions: e.cfg.Partitions, Replication: e.cfg.Replication})
}

// topics verifies (and with create or fix, changes) every topic and reports each.
func (e *env) topics(ctx context.Context, create, fix bool) (TopicsReport, error) {
	rep := TopicsReport{Topics: []TopicRow{}}
	cl, err := kafka.NewClient(kafka.ClientConfig{Brokers: e.cfg.KafkaBrokers, ClientID: e.cfg.KafkaClientID + "-orderctl"})
	if err != nil {
		return rep, err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	states, err := kafka.EnsureTopics(ctx, adm, e.topicSpecs(), create)
	if err != nil {
		return rep, err
	}
	var existing []string
	for _, s := range states {
		if s.Exists && !s.Created {
			existing = append(existing, s.Spec.Name)
		}
	}
	retention := map[string]int64{}
	if len(existing) > 0 {
		cfgs, err := adm.DescribeTopicConfigs(ctx, existing...)
		if err != nil {
			return rep, fmt.Errorf("describe topic configs: %w", err)
		}
		for _, rc := range cfgs {
			if rc.Err != nil {
				return rep, fmt.Errorf("describe topic %s: %w", rc.Name, rc.Err)
			}
			for _, c := range rc.Configs {
				if c.Key == "retention.ms" && c.Value != nil {
					if ms, err := strconv.ParseInt(*c.Value, 10, 64); err == nil {
						retention[rc.Name] = ms
					}
				}
			}
		}
	}
	for _, s := range states {
		row := TopicRow{Topic: s.Spec.Name, Partitions: s.Partitions, WantPartitions: s.Spec.Partitions,
			WantRetentionMs: s.Spec.RetentionMs, State: "ok"}
		switch {
		case s.Created:
			row.State, row.RetentionMs = "created", s.Spec.RetentionMs
		case !s.Exists:
			row.State, row.Problem = "missing", "the topic does not exist (--create creates it)"
		default:
			row.RetentionMs = retention[s.Spec.Name]
			if s.Spec.RetentionMs != 0 && row.RetentionMs != s.Spec.RetentionMs {
				if fix {
					v := strconv.FormatInt(s.Spec.RetentionMs, 10)
					resp, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "retention.ms", Value: &v}}, s.Spec.Name)
					if err == nil {
						_, err = resp.On(s.Spec.Name, nil)
					}
					if err != nil {
						return rep, fmt.Errorf("set retention.ms of %s: %w", s.Spec.Name, err)
					}
					row.State, row.RetentionMs = "retention fixed", s.Spec.RetentionMs
				} else {
					row.State = "retention differs"
					row.Problem = fmt.Sprintf("retention %s, want %s (--fix-retention sets it)", retentionText(row.RetentionMs), retentionText(s.Spec.RetentionMs))
				}
			}
			if s.Problem != "" {
				row.State, row.Problem = "partitions differ", s.Problem
			}
		}
		if row.Problem != "" {
			rep.Differences++
		}
		rep.Topics = append(rep.Topics, row)
	}
	return rep, nil
}

// retentionText shows a retention in days or hours when it is a whole number of them.
func retentionText(ms int64) string {
	d := time.Duration(ms) * time.Millisecond
	switch {
	case ms < 0:
		return "forever"
	case ms == 0:
		return "-"
	case d%(24*time.Hour) == 0:
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	}
	return d.String()
}

func writeTopicsTable(e *env, rep TopicsReport) error {
	tw := tabwriter.NewWriter(e.stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TOPIC\tPARTITIONS\tWANT\tRETENTION\tWANT\tSTATE")
	for _, r := range rep.Topics {
		parts := "-"
		if r.State != "missing" {
			parts = strconv.Itoa(int(r.Partitions))
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\n", r.Topic, parts, r.WantPartitions, retentionText(r.RetentionMs), retentionText(r.WantRetentionMs), r.State)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, r := range rep.Topics {
		if r.Problem != "" {
			fmt.Fprintf(e.stdout, "%s: %s\n", r.Topic, r.Problem)
		}
	}
	if rep.Differences == 0 {
		_, err := fmt.Fprintln(e.stdout, "every topic matches the expected layout")
		return err
	}
	_, err := fmt.Fprintf(e.stdout, "%d topics differ\n", rep.Differences)
	return err
}

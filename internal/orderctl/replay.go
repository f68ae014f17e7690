package orderctl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/orderpipe/orderpipe/internal/event"
	"github.com/orderpipe/orderpipe/internal/kafka"
	"github.com/orderpipe/orderpipe/internal/topology"
)

// ReplayReport is what `orderctl replay --output json` prints: the plan (dry run) or what was
// committed (--execute). Partitions are sorted by topic then partition.
type ReplayReport struct {
	Group      string             `json:"group"`
	Target     string             `json:"target"`   // what the offsets move to, for people: "the log start", "offsets at or after <time>", "explicit offsets"
	Executed   bool               `json:"executed"` // false for a dry run: nothing was changed
	Partitions []ReplayPartition  `json:"partitions"`
	Reprocess  int64              `json:"reprocess"` // records the group will consume again, summed over partitions
	Skip       int64              `json:"skip"`      // records the group will skip (offsets moved forward), summed
	Totals     ReplayPartitionSum `json:"totals"`
}

// ReplayPartitionSum counts the partitions of a replay by what happens to them.
type ReplayPartitionSum struct {
	Back      int `json:"back"`      // partitions moved back (records re-processed)
	Forward   int `json:"forward"`   // partitions moved forward (records skipped)
	Unchanged int `json:"unchanged"` // partitions already at the new offset
}

// ReplayPartition is the move of one partition.
type ReplayPartition struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Current   int64  `json:"current"`   // committed offset before; -1 when the group never committed here
	New       int64  `json:"new"`       // committed offset after
	Reprocess int64  `json:"reprocess"` // current - new when moving back (current is the log start when never committed)
	Skip      int64  `json:"skip"`      // new - current when moving forward
}

// sourceTopics are the topics each orderpipe consumer group consumes (its retry topics are
// excluded: their records are scheduled copies and replaying the source re-creates them).
func sourceTopics(group string) []string {
	switch group {
	case topology.GroupOrderWorker:
		return []string{event.TopicOrdersPlaced, event.TopicOrdersPlacedPriority}
	case topology.GroupInventorySync:
		return []string{event.TopicInventoryStock}
	case topology.GroupNotifier, topology.GroupReports:
		return []string{event.TopicOrderEvents}
	}
	return nil
}

// replayPollInterval is how often --wait asks whether the group has emptied.
const replayPollInterval = 250 * time.Millisecond

// replayTarget is where the offsets go: exactly one of its fields is set.
type replayTarget struct {
	at      time.Time // --to-time or --ago
	start   bool      // --to-start
	offsets map[string]map[int32]int64
	// offsetsAny holds --to-offset P:O entries without a topic: they apply to the only chosen topic.
	offsetsAny map[int32]int64
}

type replayArgs struct {
	group      string
	topics     []string
	partitions []int32
	toTime     string
	ago        time.Duration
	toOffset   []string
	toStart    bool
	execute    bool
	wait       time.Duration
	output     string
}

func (e *env) replayCmd() *cobra.Command {
	var a replayArgs
	cmd := &cobra.Command{
		Use:   "replay --group G [--topic T ...] [--partition N ...] (--to-time RFC3339 | --ago DURATION | --to-offset [T:]P:O ... | --to-start) [--execute] [--wait DURATION] [--output table|json]",
		Short: "Move a consumer group's committed offsets back (or forward) so it re-processes records; dry run by default",
		Long: "Moves the committed offsets of a consumer group to a time (--to-time, --ago), to the log start\n" +
			"(--to-start) or to explicit offsets (--to-offset PARTITION:OFFSET, or TOPIC:PARTITION:OFFSET),\n" +
			"for the group's source topics (or the ones given with --topic) and all their partitions (or the\n" +
			"ones given with --partition). A time moves each partition to its first record at or after it;\n" +
			"a partition with no such record moves to its end.\n" +
			"\n" +
			"Without --execute nothing changes: it prints, per partition, the committed offset now, the new\n" +
			"offset and how many records will be re-processed (or skipped, when moving forward), with totals.\n" +
			"\n" +
			"Kafka only accepts offsets from outside a group while the group has no members, so replay\n" +
			"refuses (exit 1) while the group has active members, dry run included: stop the group's\n" +
			"processes (or scale them to 0) first, or pass --wait to wait until the group empties.\n" +
			"\n" +
			"Replaying is safe by construction: every consumer is idempotent. The order worker records each\n" +
			"event id in processed_events and skips one seen before, and ended markers keep a finished\n" +
			"order from being held, charged or confirmed again; inventory-sync applies a stock event only\n" +
			"if its seq is above the last one applied; the notifier claims each (order, kind) e-mail in\n" +
			"Postgres and finds it sent; and the events a replayed record produces get the same\n" +
			"deterministic ids, so downstream groups skip them too. A replay re-checks, it does not redo:\n" +
			"no second e-mail, no second capture.\n" +
			"\n" +
			"Source topics: order-worker: orders.placed, orders.placed.priority; inventory-sync:\n" +
			"inventory.stock; notifier and reports: orders.events.\n" +
			"\n" +
			"When the live group must keep running, `orderctl replay range` re-processes a time range\n" +
			"through a separate replay group instead, without moving the live group's offsets.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			target, err := a.validate(time.Now())
			if err != nil {
				return err
			}
			return e.runReplay(cmd.Context(), a, target)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&a.group, "group", "", "consumer group whose offsets move (required)")
	fs.StringSliceVar(&a.topics, "topic", nil, "topic to move (repeatable; default: the group's source topics)")
	fs.Int32SliceVar(&a.partitions, "partition", nil, "partition to move (repeatable; default: every partition)")
	fs.StringVar(&a.toTime, "to-time", "", "move to the first record at or after this time: RFC 3339, a local date-time (2026-12-07T10:30:00.000) or epoch ms")
	fs.StringVar(&a.toTime, "to-datetime", "", "the same as --to-time (kafka-consumer-groups' name)")
	fs.Var(agoValue{&a.ago}, "ago", "move to the first record at or after this long before now (40m, 2d, PT5M)")
	fs.Var(agoValue{&a.ago}, "by-duration", "the same as --ago (kafka-consumer-groups' name)")
	fs.StringSliceVar(&a.toOffset, "to-offset", nil, "move a partition to an offset: PARTITION:OFFSET or TOPIC:PARTITION:OFFSET (repeatable)")
	fs.BoolVar(&a.toStart, "to-start", false, "move to the log start (re-process everything retained)")
	fs.BoolVar(&a.toStart, "to-earliest", false, "the same as --to-start (kafka-consumer-groups' name)")
	fs.BoolVar(&a.execute, "execute", false, "commit the new offsets (default: dry run, nothing changes)")
	fs.DurationVar(&a.wait, "wait", 0, "wait up to this long for the group to have no active members (0: refuse at once)")
	fs.StringVar(&a.output, "output", "table", "table or json")
	cmd.AddCommand(e.replayRangeCmd())
	return cmd
}

// validate checks the arguments and resolves the target; every error is a usage error.
func (a *replayArgs) validate(now time.Time) (replayTarget, error) {
	var t replayTarget
	if a.group == "" {
		return t, usageErr("--group is required")
	}
	if err := checkOutput(a.output); err != nil {
		return t, err
	}
	if a.wait < 0 {
		return t, usageErr("--wait: want a positive duration, got %s", a.wait)
	}
	n := 0
	for _, set := range []bool{a.toTime != "", a.ago != 0, len(a.toOffset) > 0, a.toStart} {
		if set {
			n++
		}
	}
	if n != 1 {
		return t, usageErr("want exactly one target: --to-time (--to-datetime), --ago (--by-duration), --to-offset or --to-start (--to-earliest) (got %d)", n)
	}
	if len(a.topics) == 0 {
		a.topics = sourceTopics(a.group)
		if a.topics == nil {
			return t, usageErr("--group %q is not an orderpipe group, so it has no default topics: pass --topic", a.group)
		}
	}
	slices.Sort(a.topics)
	a.topics = slices.Compact(a.topics)
	for _, p := range a.partitions {
		if p < 0 {
			return t, usageErr("--partition: want a partition number, got %d", p)
		}
	}
	switch {
	case a.toTime != "":
		at, err := parseWhen(a.toTime, nil)
		if err != nil {
			return t, usageErr("--to-time: %v", err)
		}
		t.at = at
	case a.ago < 0:
		return t, usageErr("--ago: want a positive duration, got %s", a.ago)
	case a.ago > 0:
		t.at = now.Add(-a.ago)
	case a.toStart:
		t.start = true
	default:
		return t, a.parseOffsets(&t)
	}
	return t, nil
}

// parseOffsets reads --to-offset [TOPIC:]PARTITION:OFFSET entries.
func (a *replayArgs) parseOffsets(t *replayTarget) error {
	if len(a.partitions) > 0 {
		return usageErr("--partition and --to-offset exclude each other: --to-offset names its partitions")
	}
	t.offsets = map[string]map[int32]int64{}
	t.offsetsAny = map[int32]int64{}
	for _, s := range a.toOffset {
		parts := strings.Split(s, ":")
		topic := ""
		switch len(parts) {
		case 2:
		case 3:
			topic, parts = parts[0], parts[1:]
		default:
			return usageErr("--to-offset: want PARTITION:OFFSET or TOPIC:PARTITION:OFFSET, got %q", s)
		}
		p, err1 := strconv.ParseInt(parts[0], 10, 32)
		o, err2 := strconv.ParseInt(parts[1], 10, 64)
		if err1 != nil || err2 != nil || p < 0 || o < 0 {
			return usageErr("--to-offset: want PARTITION:OFFSET with non-negative numbers, got %q", s)
		}
		if topic == "" {
			if len(a.topics) != 1 {
				return usageErr("--to-offset %q: %d topics are chosen (%s), so name the topic: TOPIC:PARTITION:OFFSET", s, len(a.topics), strings.Join(a.topics, ", "))
			}
			topic = a.topics[0]
		} else if !slices.Contains(a.topics, topic) {
			return usageErr("--to-offset %q: topic %s is not among the chosen topics (%s)", s, topic, strings.Join(a.topics, ", "))
		}
		if t.offsets[topic] == nil {
			t.offsets[topic] = map[int32]int64{}
		}
		if _, dup := t.offsets[topic][int32(p)]; dup {
			return usageErr("--to-offset: %s partition %d given twice", topic, p)
		}
		t.offsets[topic][int32(p)] = o
	}
	return nil
}

func (t replayTarget) String() string {
	switch {
	case t.start:
		return "the log start"
	case !t.at.IsZero():
		return "offsets at or after " + t.at.UTC().Format(time.RFC3339Nano)
	default:
		return "explicit offsets"
	}
}

func (e *env) runReplay(ctx context.Context, a replayArgs, target replayTarget) error {
	cl, err := kafka.NewClient(kafka.ClientConfig{Brokers: e.cfg.KafkaBrokers, ClientID: e.cfg.KafkaClientID + "-orderctl"})
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	// While --wait waits, table output says so (and each change of the group); JSON stays silent.
	say := func(string) {}
	if a.output != "json" {
		say = func(line string) { fmt.Fprintln(e.stdout, line) }
	}
	if err := waitGroupEmpty(ctx, adm, a.group, a.wait, say); err != nil {
		return err
	}
	rep, err := replayPlan(ctx, adm, a, target)
	if err != nil {
		return err
	}
	if a.execute {
		// Check again right before committing: a member may have joined while the plan was made.
		// (Kafka itself also rejects a commit from outside the generation of a non-empty group.)
		if err := waitGroupEmpty(ctx, adm, a.group, 0, say); err != nil {
			return err
		}
		var offs kadm.Offsets
		for _, p := range rep.Partitions {
			offs.AddOffset(p.Topic, p.Partition, p.New, -1)
		}
		resp, err := adm.CommitOffsets(ctx, a.group, offs)
		if err == nil {
			err = resp.Error()
		}
		if err != nil {
			return fmt.Errorf("commit offsets of group %s: %w", a.group, err)
		}
		rep.Executed = true
	}
	if a.output == "json" {
		err = json.NewEncoder(e.stdout).Encode(rep)
	} else {
		err = writeReplayTable(e.stdout, rep)
	}
	if err != nil {
		return fmt.Errorf("write replay: %w", err)
	}
	return nil
}

// waitGroupEmpty returns nil once group has no active members, polling until wait passes; then
// (or at once when wait is 0) it refuses with exit code 1 and says what to do. While it waits it
// tells say when it starts waiting, when the group changes, and when it emptied.
func waitGroupEmpty(ctx context.Context, adm *kadm.Client, group string, wait time.Duration, say func(string)) error {
	start := time.Now()
	deadline := start.Add(wait)
	last := ""
	for {
		state, members, err := groupActivity(ctx, adm, group)
		if err != nil {
			return err
		}
		if members == 0 && (state == "Empty" || state == "Dead") {
			if last != "" {
				say(fmt.Sprintf("group %s has no members after %s (state %s)", group, time.Since(start).Round(time.Second), state))
			}
			return nil
		}
		if time.Now().Add(replayPollInterval).After(deadline) {
			waited := ""
			if wait > 0 {
				waited = fmt.Sprintf(" after waiting %s", wait)
			}
			return &exitError{code: ExitError, err: fmt.Errorf(
				"group %s is active (state %s, %d members)%s: offsets can only move while it has no members; "+
					"stop the %s processes (or scale them to 0), or pass --wait 5m to wait for the group to empty",
				group, state, members, waited, group)}
		}
		if now := fmt.Sprintf("state %s, %d members", state, members); now != last {
			verb := "waiting up to " + time.Until(deadline).Round(time.Second).String()
			if last != "" {
				verb = "still waiting (" + time.Until(deadline).Round(time.Second).String() + " left)"
			}
			say(fmt.Sprintf("%s for group %s to have no members: %s", verb, group, now))
			last = now
		}
		if !sleepCtx(ctx, replayPollInterval) {
			return ctx.Err()
		}
	}
}

// groupActivity returns a group's state and member count; a group the coordinator does not know
// is Dead with no members.
func groupActivity(ctx context.Context, adm *kadm.Client, group string) (string, int, error) {
	described, err := adm.DescribeGroups(ctx, group)
	if err != nil {
		return "", 0, fmt.Errorf("describe group %s: %w", group, err)
	}
	g, ok := described[group]
	if !ok || errors.Is(g.Err, kerr.GroupIDNotFound) {
		return "Dead", 0, nil
	}
	if g.Err != nil {
		return "", 0, fmt.Errorf("describe group %s: %w", group, g.Err)
	}
	return g.State, len(g.Members), nil
}

// replayPlan reads the committed, start and end offsets of the chosen partitions and works out
// where each moves.
func replayPlan(ctx context.Context, adm *kadm.Client, a replayArgs, target replayTarget) (ReplayReport, error) {
	rep := ReplayReport{Group: a.group, Target: target.String(), Partitions: []ReplayPartition{}}
	ends, err := listed(adm.ListEndOffsets(ctx, a.topics...))
	if err != nil {
		return rep, fmt.Errorf("end offsets of %s: %w", strings.Join(a.topics, ","), err)
	}
	starts, err := listed(adm.ListStartOffsets(ctx, a.topics...))
	if err != nil {
		return rep, fmt.Errorf("start offsets of %s: %w", strings.Join(a.topics, ","), err)
	}
	var news kadm.ListedOffsets
	if !target.at.IsZero() {
		news, err = listed(adm.ListOffsetsAfterMilli(ctx, target.at.UnixMilli(), a.topics...))
		if err != nil {
			return rep, fmt.Errorf("offsets of %s at %s: %w", strings.Join(a.topics, ","), target.at.Format(time.RFC3339), err)
		}
	}
	committed, err := kafka.FetchOffsets(ctx, adm, a.group)
	if err != nil && !errors.Is(err, kerr.GroupIDNotFound) {
		return rep, fmt.Errorf("committed offsets of group %s: %w", a.group, err)
	}
	for _, topic := range a.topics {
		if _, ok := ends[topic]; !ok {
			return rep, fmt.Errorf("topic %s: %w", topic, kerr.UnknownTopicOrPartition)
		}
	}
	chosen := func(topic string, p int32) bool {
		if target.offsets != nil {
			_, ok := target.offsets[topic][p]
			return ok
		}
		return len(a.partitions) == 0 || slices.Contains(a.partitions, p)
	}
	var sorted []kadm.ListedOffset
	ends.Each(func(o kadm.ListedOffset) { sorted = append(sorted, o) })
	slices.SortFunc(sorted, func(x, y kadm.ListedOffset) int {
		if c := strings.Compare(x.Topic, y.Topic); c != 0 {
			return c
		}
		return int(x.Partition - y.Partition)
	})
	seen := map[string]map[int32]bool{}
	for _, end := range sorted {
		if !chosen(end.Topic, end.Partition) {
			continue
		}
		if seen[end.Topic] == nil {
			seen[end.Topic] = map[int32]bool{}
		}
		seen[end.Topic][end.Partition] = true
		start, _ := starts.Lookup(end.Topic, end.Partition)
		p := ReplayPartition{Topic: end.Topic, Partition: end.Partition, Current: -1}
		if c, ok := committed.Lookup(end.Topic, end.Partition); ok && c.Err == nil && c.At >= 0 {
			p.Current = c.At
		}
		switch {
		case target.start:
			p.New = start.Offset
		case !target.at.IsZero():
			n, ok := news.Lookup(end.Topic, end.Partition)
			if !ok || n.Offset < 0 {
				n.Offset = end.Offset // no record at or after the time
			}
			p.New = n.Offset
		default:
			p.New = target.offsets[end.Topic][end.Partition]
			if p.New < start.Offset || p.New > end.Offset {
				return rep, usageErr("--to-offset: %s partition %d holds offsets %d..%d, got %d",
					end.Topic, end.Partition, start.Offset, end.Offset, p.New)
			}
		}
		from := p.Current
		if from < 0 {
			// never committed: the consumer (internal/consumer) starts such a group at the log
			// start, so moving it anywhere else skips records rather than re-processing any
			from = start.Offset
		}
		switch {
		case p.New < from:
			p.Reprocess = from - p.New
			rep.Totals.Back++
		case p.New > from:
			p.Skip = p.New - from
			rep.Totals.Forward++
		default:
			rep.Totals.Unchanged++
		}
		rep.Reprocess += p.Reprocess
		rep.Skip += p.Skip
		rep.Partitions = append(rep.Partitions, p)
	}
	for _, p := range a.partitions {
		for _, topic := range a.topics {
			if !seen[topic][p] {
				return rep, usageErr("--partition %d: topic %s has no such partition", p, topic)
			}
		}
	}
	for topic, ps := range target.offsets {
		for p := range ps {
			if !seen[topic][p] {
				return rep, usageErr("--to-offset: topic %s has no partition %d", topic, p)
			}
		}
	}
	return rep, nil
}

// listed turns the per-partition errors of a ListedOffsets into one error.
func listed(l kadm.ListedOffsets, err error) (kadm.ListedOffsets, error) {
	if err != nil {
		return nil, err
	}
	return l, l.Error()
}

// writeReplayTable prints one row per partition, then the totals and whether anything changed.
func writeReplayTable(w io.Writer, rep ReplayReport) error {
	fmt.Fprintf(w, "group %s: move to %s\n", rep.Group, rep.Target)
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TOPIC\tPARTITION\tCURRENT\tNEW\tRE-PROCESS")
	for _, p := range rep.Partitions {
		current := "-"
		if p.Current >= 0 {
			current = fmt.Sprint(p.Current)
		}
		effect := fmt.Sprint(p.Reprocess)
		if p.Skip > 0 {
			effect = fmt.Sprintf("skip %d", p.Skip)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%s\n", p.Topic, p.Partition, current, p.New, effect)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "total: %d records to re-process, skip %d; %d partitions move back, %d forward, %d unchanged\n",
		rep.Reprocess, rep.Skip, rep.Totals.Back, rep.Totals.Forward, rep.Totals.Unchanged)
	if rep.Executed {
		_, err := fmt.Fprintf(w, "committed: group %s resumes from the new offsets when it starts\n", rep.Group)
		return err
	}
	_, err := fmt.Fprintln(w, "dry run: nothing changed; pass --execute to commit the new offsets")
	return err
}

package orderctl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/term"

	"github.com/orderpipe/orderpipe/internal/config"
	"github.com/orderpipe/orderpipe/internal/consumer"
	"github.com/orderpipe/orderpipe/internal/inventorysync"
	"github.com/orderpipe/orderpipe/internal/kafka"
	"github.com/orderpipe/orderpipe/internal/notifier"
	"github.com/orderpipe/orderpipe/internal/orderworker"
	"github.com/orderpipe/orderpipe/internal/topology"
)

// RangeReport is what `orderctl replay range --output json` prints: the range per partition
// (dry run), or what the replay group re-processed (--execute).
type RangeReport struct {
	Group string `json:"group"` // the live group: its logical name, under which the replay deduplicates
	// ReplayGroup is the Kafka consumer group id the replay ran under (--execute only).
	ReplayGroup string    `json:"replay_group,omitempty"`
	From        time.Time `json:"from"`
	// Until bounds the range; nil means the end offsets when the replay started.
	Until    *time.Time `json:"until,omitempty"`
	Executed bool       `json:"executed"`
	// Completed: every partition reached its range end (false for a dry run or an interrupted replay).
	Completed bool `json:"completed"`
	// ReplayGroupDeleted: the replay group's offsets were deleted at the end (not with --keep-group).
	ReplayGroupDeleted bool             `json:"replay_group_deleted"`
	KeptGroup          bool             `json:"kept_group,omitempty"` // --keep-group
	Partitions         []RangePartition `json:"partitions"`
	Records            int64            `json:"records"`       // in the range, summed over partitions
	Processed          int64            `json:"processed"`     // records the handler finished (effect applied or found done)
	DeadLettered       int64            `json:"dead_lettered"` // records given up to the live group's dead-letter topic
	// Reapplied counts the effects the replay made that were missing (Effect says which): the
	// rest of the processed records were found done by the live group and skipped.
	Reapplied int64   `json:"reapplied"`
	Effect    string  `json:"effect"`
	Seconds   float64 `json:"seconds,omitempty"` // how long the replay ran
}

// RangePartition is the range of one partition: offsets [Start, End).
type RangePartition struct {
	Topic        string `json:"topic"`
	Partition    int32  `json:"partition"`
	Start        int64  `json:"start"`
	End          int64  `json:"end"`
	Records      int64  `json:"records"`
	Processed    int64  `json:"processed"`
	DeadLettered int64  `json:"dead_lettered"`
}

type rangeArgs struct {
	group      string
	topics     []string
	partitions []int32
	from       string
	since      time.Duration
	until      string
	execute    bool
	keepGroup  bool
	output     string

	fromT, untilT time.Time
}

// replayGroupID names the Kafka group of a replay of group started at now.
func replayGroupID(group string, now time.Time) string {
	return group + ".replay." + now.UTC().Format("20060102150405")
}

func (e *env) replayRangeCmd() *cobra.Command {
	var a rangeArgs
	cmd := &cobra.Command{
		Use:   "range --group G (--from RFC3339 | --since DURATION) [--until RFC3339] [--topic T ...] [--partition N ...] [--execute] [--keep-group] [--output table|json]",
		Short: "Re-process a time range through a separate replay group while the live group keeps running; dry run by default",
		Long: "Re-processes the records of the group's source topics written from --from (or --since ago) up to\n" +
			"--until (default: the end offsets when the command starts) through a separate consumer group,\n" +
			"without touching the live group: its members keep running and its committed offsets do not\n" +
			"move. Use it after a bad deploy that produced wrong outcomes for a time window while the live\n" +
			"group must keep serving; `orderctl replay` (which moves the live group's offsets) needs the\n" +
			"group stopped.\n" +
			"\n" +
			"Without --execute nothing changes: it prints, per partition, the start and end offsets of the\n" +
			"range and its record count.\n" +
			"\n" +
			"With --execute it creates the replay group <group>.replay.<yyyymmddhhmmss> (UTC), commits its\n" +
			"start offsets, and runs the live group's own handler in this process, built from the same\n" +
			"environment as the live process (order-worker, inventory-sync or notifier settings), until every\n" +
			"partition reached the end of the range; records past the end are not processed. A progress bar\n" +
			"shows on a terminal (stderr). It prints what was processed per partition, how many records were\n" +
			"dead-lettered and how many effects were missing and applied again (the rest were found done).\n" +
			"The replay group is deleted at the end, complete or interrupted, unless --keep-group.\n" +
			"\n" +
			"Safety: the replay deduplicates exactly like the live group. Handlers claim events under the\n" +
			"live group's name (processed_events of order-worker and reports), or by natural keys (stock\n" +
			"sequence numbers, one e-mail per order and kind), never under the replay group's id, so an\n" +
			"event the live group processed is skipped: nothing is charged, mailed, allocated or counted\n" +
			"twice. Only effects that are missing (a bad window whose rows were removed) are applied again.\n" +
			"\n" +
			"Failures: the replay group has no retry topics (they belong to the live group). A failing record\n" +
			"is retried in place with backoff (the live group's in-place retry setting), then written to the\n" +
			"live group's dead-letter topic with the header dlq-replay-group=<replay group>, where\n" +
			"`orderctl dlq` lists and re-drives it. inventory-sync retries stock events in place until they\n" +
			"succeed, as the live group does (their order matters).\n" +
			"\n" +
			"An interrupted replay (Ctrl-C) stops after the batch in hand, exits 1 and says how far it got;\n" +
			"run the same command again: what was re-processed is skipped by the deduplication.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := a.validate(time.Now()); err != nil {
				return err
			}
			return e.runReplayRange(cmd.Context(), a)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&a.group, "group", "", "live consumer group whose records to re-process: order-worker, inventory-sync, notifier or reports (required)")
	fs.StringSliceVar(&a.topics, "topic", nil, "source topic to re-process (repeatable; default: the group's source topics)")
	fs.Int32SliceVar(&a.partitions, "partition", nil, "partition to re-process (repeatable; default: every partition)")
	fs.StringVar(&a.from, "from", "", "start of the range: records written at or after this time (RFC 3339, a local date-time or epoch ms)")
	fs.Var(agoValue{&a.since}, "since", "start of the range as a duration before now (40m, 2d, PT5M)")
	fs.StringVar(&a.until, "until", "", "end of the range: records written before this time (RFC 3339, a local date-time or epoch ms; default: everything written when the command starts)")
	fs.BoolVar(&a.execute, "execute", false, "re-process the range through a replay group (default: dry run, nothing changes)")
	fs.BoolVar(&a.keepGroup, "keep-group", false, "keep the replay group's committed offsets afterwards (default: delete them)")
	fs.StringVar(&a.output, "output", "table", "table or json")
	return cmd
}

// validate checks the arguments; every error is a usage error.
func (a *rangeArgs) validate(now time.Time) error {
	if a.group == "" {
		return usageErr("--group is required")
	}
	src := sourceTopics(a.group)
	if src == nil {
		return usageErr("--group %q: want order-worker, inventory-sync, notifier or reports (a live orderpipe group)", a.group)
	}
	if err := checkOutput(a.output); err != nil {
		return err
	}
	switch {
	case a.from != "" && a.since != 0:
		return usageErr("--from and --since exclude each other: give one start of the range")
	case a.from == "" && a.since == 0:
		return usageErr("a start of the range is required: --from TIME or --since DURATION")
	case a.since < 0:
		return usageErr("--since: want a positive duration, got %s", a.since)
	case a.since > 0:
		a.fromT = now.Add(-a.since)
	default:
		t, err := parseWhen(a.from, nil)
		if err != nil {
			return usageErr("--from: %v", err)
		}
		a.fromT = t
	}
	if a.until != "" {
		t, err := parseWhen(a.until, nil)
		if err != nil {
			return usageErr("--until: %v", err)
		}
		if !t.After(a.fromT) {
			return usageErr("--until %s is not after the start of the range %s", t.UTC().Format(time.RFC3339Nano), a.fromT.UTC().Format(time.RFC3339Nano))
		}
		a.untilT = t
	}
	if len(a.topics) == 0 {
		a.topics = slices.Clone(src)
	}
	for _, t := range a.topics {
		if !slices.Contains(src, t) {
			return usageErr("--topic %s: not a source topic of %s (want one of %s)", t, a.group, strings.Join(src, ", "))
		}
	}
	slices.Sort(a.topics)
	a.topics = slices.Compact(a.topics)
	for _, p := range a.partitions {
		if p < 0 {
			return usageErr("--partition: want a partition number, got %d", p)
		}
	}
	return nil
}

func (e *env) runReplayRange(ctx context.Context, a rangeArgs) error {
	cl, err := kafka.NewClient(kafka.ClientConfig{Brokers: e.cfg.KafkaBrokers, ClientID: e.cfg.KafkaClientID + "-orderctl"})
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	rep, all, err := rangePlan(ctx, adm, a)
	if err != nil {
		return err
	}
	var runErr error
	if a.execute {
		runErr = e.executeRange(ctx, adm, a, &rep, all)
	}
	if a.output == "json" {
		err = json.NewEncoder(e.stdout).Encode(rep)
	} else {
		err = writeRangeTable(e.stdout, rep)
	}
	if runErr != nil {
		return runErr
	}
	if err != nil {
		return fmt.Errorf("write replay range: %w", err)
	}
	return nil
}

// rangePlan finds, for every chosen partition, the first offset at or after the start of the
// range and the first at or after its end (the end offset when there is none, or without
// --until). all holds every partition of the topics, chosen or not, with its end offset now.
func rangePlan(ctx context.Context, adm *kadm.Client, a rangeArgs) (RangeReport, kadm.ListedOffsets, error) {
	rep := RangeReport{Group: a.group, From: a.fromT.UTC(), Partitions: []RangePartition{}}
	if !a.untilT.IsZero() {
		u := a.untilT.UTC()
		rep.Until = &u
	}
	ends, err := listed(adm.ListEndOffsets(ctx, a.topics...))
	if err != nil {
		return rep, nil, fmt.Errorf("end offsets of %s: %w", strings.Join(a.topics, ","), err)
	}
	for _, topic := range a.topics {
		if _, ok := ends[topic]; !ok {
			return rep, nil, fmt.Errorf("topic %s: %w", topic, kerr.UnknownTopicOrPartition)
		}
	}
	starts, err := listed(adm.ListOffsetsAfterMilli(ctx, a.fromT.UnixMilli(), a.topics...))
	if err != nil {
		return rep, nil, fmt.Errorf("offsets of %s at %s: %w", strings.Join(a.topics, ","), a.fromT.UTC().Format(time.RFC3339), err)
	}
	var untils kadm.ListedOffsets
	if !a.untilT.IsZero() {
		untils, err = listed(adm.ListOffsetsAfterMilli(ctx, a.untilT.UnixMilli(), a.topics...))
		if err != nil {
			return rep, nil, fmt.Errorf("offsets of %s at %s: %w", strings.Join(a.topics, ","), a.untilT.UTC().Format(time.RFC3339), err)
		}
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
		if len(a.partitions) > 0 && !slices.Contains(a.partitions, end.Partition) {
			continue
		}
		if seen[end.Topic] == nil {
			seen[end.Topic] = map[int32]bool{}
		}
		seen[end.Topic][end.Partition] = true
		p := RangePartition{Topic: end.Topic, Partition: end.Partition, Start: end.Offset, End: end.Offset}
		// A partition with no record at or after the time answers -1 (or the end offset).
		if s, ok := starts.Lookup(end.Topic, end.Partition); ok && s.Offset >= 0 && s.Offset < end.Offset {
			p.Start = s.Offset
		}
		if untils != nil {
			if u, ok := untils.Lookup(end.Topic, end.Partition); ok && u.Offset >= 0 && u.Offset < end.Offset {
				p.End = u.Offset
			}
		}
		p.End = max(p.End, p.Start)
		p.Records = p.End - p.Start
		rep.Records += p.Records
		rep.Partitions = append(rep.Partitions, p)
	}
	for _, p := range a.partitions {
		for _, topic := range a.topics {
			if !seen[topic][p] {
				return rep, nil, usageErr("--partition %d: topic %s has no such partition", p, topic)
			}
		}
	}
	return rep, ends, nil
}

// replayWiring is the live group's processing, built from the live process's environment.
type replayWiring struct {
	handler  consumer.Handler
	consumer consumer.Config
	close    func()
	// effect names the metric that counts effects applied (not found done) and what it counts.
	metric, label, effect string
}

// wireReplay builds the live group's handler exactly as its process does, for the logical group.
func (e *env) wireReplay(ctx context.Context, group string, log *slog.Logger, reg prometheus.Registerer) (*replayWiring, error) {
	switch group {
	case topology.GroupOrderWorker:
		var cfg orderworker.Config
		if err := config.Load(&cfg, e.getenv); err != nil {
			return nil, fmt.Errorf("order-worker configuration: %w", err)
		}
		cfg.Group = group
		w, err := orderworker.Wire(ctx, cfg, log, reg)
		if err != nil {
			return nil, err
		}
		return &replayWiring{handler: w.Handler, consumer: w.Consumer, close: w.Close,
			metric: "orderpipe_worker_orders_total", effect: "orders decided"}, nil
	case topology.GroupInventorySync:
		var cfg inventorysync.Config
		if err := config.Load(&cfg, e.getenv); err != nil {
			return nil, fmt.Errorf("inventory-sync configuration: %w", err)
		}
		cfg.Group = group
		w, err := inventorysync.Wire(ctx, cfg, log, reg)
		if err != nil {
			return nil, err
		}
		return &replayWiring{handler: w.Handler, consumer: w.Consumer, close: w.Close,
			metric: "orderpipe_inventory_events_applied_total", effect: "stock events applied"}, nil
	case topology.GroupNotifier, topology.GroupReports:
		var cfg notifier.Config
		if err := config.Load(&cfg, e.getenv); err != nil {
			return nil, fmt.Errorf("notifier configuration: %w", err)
		}
		w, err := notifier.Wire(ctx, cfg, group, log, reg)
		if err != nil {
			return nil, err
		}
		rw := &replayWiring{handler: w.Handler, consumer: w.Consumer, close: w.Close,
			metric: "orderpipe_notifier_emails_sent_total", effect: "e-mails sent"}
		if group == topology.GroupReports {
			rw.metric, rw.label, rw.effect = "orderpipe_reports_events_total", "applied", "sales events counted"
		}
		return rw, nil
	}
	return nil, usageErr("--group %q: not a live orderpipe group", group)
}

// rangeProgressInterval is how often the replay reads its group's committed offsets.
const rangeProgressInterval = 200 * time.Millisecond

// executeRange runs the replay group over the range and fills in what it did.
func (e *env) executeRange(ctx context.Context, adm *kadm.Client, a rangeArgs, rep *RangeReport, all kadm.ListedOffsets) error {
	start := time.Now()
	id := replayGroupID(a.group, start)
	if state, _, err := groupActivity(ctx, adm, id); err != nil {
		return err
	} else if state != "Dead" {
		return fmt.Errorf("replay group %s exists already (state %s): wait a second and run again", id, state)
	}
	rep.ReplayGroup = id
	rep.Executed = true
	rep.KeptGroup = a.keepGroup

	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})).With("replay_group", id)
	reg := prometheus.NewRegistry()
	w, err := e.wireReplay(ctx, a.group, log, reg)
	if err != nil {
		return err
	}
	defer w.close()
	rep.Effect = w.effect

	// Bounds of every partition of the topics: the chosen ones their range, the others an empty
	// range at their end (they are assigned with the topic, and must not be processed).
	h := &rangeHandler{next: w.handler, parts: map[tp32]*rangeState{}}
	var offs kadm.Offsets
	all.Each(func(o kadm.ListedOffset) {
		h.parts[tp32{o.Topic, o.Partition}] = &rangeState{start: o.Offset, end: o.Offset}
	})
	for i, p := range rep.Partitions {
		h.parts[tp32{p.Topic, p.Partition}] = &rangeState{start: p.Start, end: p.End, idx: i, chosen: true,
			done: make([]uint64, (p.Records+63)/64)}
	}
	for k, s := range h.parts {
		offs.AddOffset(k.topic, k.partition, s.start, -1)
	}

	cc := w.consumer
	cc.GroupID = id
	cc.Topics = a.topics
	cc.RetryTiers = nil // the live group's retry topics are not ours: retry in place, then dead-letter
	cc.PriorityTopic, cc.MaxStarve = "", 0
	cc.StartAt = consumer.StartEarliest // every partition has a committed offset: this never applies
	cc.LagInterval = -1
	cc.ClientID += "-replay"
	onDead := cc.OnDeadLetter
	cc.OnDeadLetter = func(ctx context.Context, rec *kgo.Record, class string, err error) error {
		if onDead != nil {
			if err := onDead(ctx, rec, class, err); err != nil {
				return err
			}
		}
		h.deadLettered(rec)
		return nil
	}
	// The start offsets are committed before the consumer exists: its client joins the group
	// at once, and Kafka takes commits from outside a group only while it has no members.
	resp, err := adm.CommitOffsets(ctx, id, offs)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		return fmt.Errorf("commit start offsets of replay group %s: %w", id, err)
	}
	cleanup := func() {
		if a.keepGroup {
			return
		}
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
		defer cancel()
		if err := deleteGroup(dctx, adm, id); err != nil {
			log.Warn("replay group not deleted", "err", err)
			return
		}
		rep.ReplayGroupDeleted = true
	}
	c, err := consumer.New(cc, h)
	if err != nil {
		cleanup()
		return err
	}
	h.pause = func(topic string, p int32) { c.Client().PauseFetchPartitions(map[string][]int32{topic: {p}}) }

	runCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	defer stop()
	runDone := make(chan error, 1)
	go func() { runDone <- c.Run(runCtx) }()

	bar := newRangeBar(rep.Records)
	var committed int64
	complete, runErr := false, error(nil)
	tick := time.NewTicker(rangeProgressInterval)
	defer tick.Stop()
	for !complete && runErr == nil && ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case err := <-runDone:
			runErr = fmt.Errorf("replay group %s stopped: %w", id, err)
			if err == nil {
				runErr = fmt.Errorf("replay group %s stopped before the end of the range", id)
			}
			runDone <- nil
		case <-tick.C:
			n, done, err := rangeCommitted(ctx, adm, id, rep.Partitions)
			if err != nil {
				if ctx.Err() == nil {
					log.Warn("progress not read", "err", err)
				}
				continue
			}
			bar.add(n - committed)
			committed, complete = n, done
		}
	}
	stop()
	<-runDone // the batch in hand is finished and committed, the member left the group
	bar.finish()
	rep.Seconds = time.Since(start).Seconds()
	h.fill(rep)
	rep.Reapplied = sumCounter(reg, w.metric, w.label)
	rep.Completed = complete
	cleanup()
	switch {
	case runErr != nil:
		return runErr
	case !complete:
		return &exitError{code: ExitError, err: fmt.Errorf(
			"replay interrupted after %d of %d records: run the same command again to finish (records already re-processed are found done and skipped)",
			rep.Processed, rep.Records)}
	}
	return nil
}

// rangeCommitted reads the replay group's committed offsets: records of the range behind them,
// and whether every partition reached its end.
func rangeCommitted(ctx context.Context, adm *kadm.Client, group string, parts []RangePartition) (int64, bool, error) {
	resp, err := kafka.FetchOffsets(ctx, adm, group)
	if err != nil {
		return 0, false, err
	}
	var n int64
	done := true
	for _, p := range parts {
		at := p.Start
		if o, ok := resp.Lookup(p.Topic, p.Partition); ok && o.Err == nil && o.At >= 0 {
			at = o.At
		}
		n += min(max(at, p.Start), p.End) - p.Start
		if at < p.End {
			done = false
		}
	}
	return n, done, nil
}

// deleteGroup deletes a group that has just been left, retrying while the coordinator still
// sees it non-empty.
func deleteGroup(ctx context.Context, adm *kadm.Client, group string) error {
	for {
		resp, err := adm.DeleteGroup(ctx, group)
		if err == nil {
			err = resp.Err
		}
		if err == nil || errors.Is(err, kerr.GroupIDNotFound) {
			return nil
		}
		if !errors.Is(err, kerr.NonEmptyGroup) || !sleepCtx(ctx, rangeProgressInterval) {
			return fmt.Errorf("delete replay group %s: %w", group, err)
		}
	}
}

// sumCounter sums the counter samples of metric in reg (only those with a label valued label,
// when label is set).
func sumCounter(reg *prometheus.Registry, metric, label string) int64 {
	mfs, err := reg.Gather()
	if err != nil {
		return 0
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != metric {
			continue
		}
		for _, m := range mf.GetMetric() {
			match := label == ""
			for _, l := range m.GetLabel() {
				match = match || l.GetValue() == label
			}
			if match {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return int64(sum)
}

type tp32 struct {
	topic     string
	partition int32
}

// rangeState is a partition's range and which of its records the handler finished.
type rangeState struct {
	start, end int64
	idx        int  // in RangeReport.Partitions
	chosen     bool // in the range (the others are only assigned with their topic)
	done       []uint64
	processed  int64
	dead       int64
}

// rangeHandler passes the records inside the range to the live group's handler and settles the
// others without processing them; it pauses a partition once its range end is fetched.
type rangeHandler struct {
	next  consumer.Handler
	pause func(topic string, p int32)

	mu    sync.Mutex
	parts map[tp32]*rangeState
}

// Handle implements consumer.Handler.
func (h *rangeHandler) Handle(ctx context.Context, recs []*kgo.Record) []error {
	errs := make([]error, len(recs))
	var in []*kgo.Record
	var idx []int
	h.mu.Lock()
	for i, r := range recs {
		s := h.parts[tp32{r.Topic, r.Partition}]
		if s == nil || r.Offset < s.start || r.Offset >= s.end {
			if s != nil && r.Offset >= s.end {
				// Pausing again is cheap, and needed: the consumer resumes a partition it
				// rewound to a failing record (InPlaceOnly).
				h.pause(r.Topic, r.Partition)
			}
			continue // outside the range: settled without processing
		}
		in = append(in, r)
		idx = append(idx, i)
	}
	h.mu.Unlock()
	if len(in) == 0 {
		return errs
	}
	sub := h.next.Handle(ctx, in)
	if len(sub) != 0 && len(sub) != len(in) {
		err := fmt.Errorf("handler returned %d errors for %d records", len(sub), len(in))
		for _, i := range idx {
			errs[i] = consumer.Transient(err)
		}
		return errs
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for j, i := range idx {
		if len(sub) > 0 && sub[j] != nil {
			errs[i] = sub[j]
			continue
		}
		r := in[j]
		s := h.parts[tp32{r.Topic, r.Partition}]
		bit := r.Offset - s.start
		if s.done[bit/64]&(1<<(bit%64)) == 0 {
			s.done[bit/64] |= 1 << (bit % 64)
			s.processed++
		}
	}
	return errs
}

func (h *rangeHandler) deadLettered(r *kgo.Record) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if s := h.parts[tp32{r.Topic, r.Partition}]; s != nil && s.chosen {
		s.dead++
	}
}

// fill copies the per-partition counts into rep.
func (h *rangeHandler) fill(rep *RangeReport) {
	h.mu.Lock()
	defer h.mu.Unlock()
	rep.Processed, rep.DeadLettered = 0, 0
	for _, s := range h.parts {
		if !s.chosen {
			continue
		}
		p := &rep.Partitions[s.idx]
		p.Processed, p.DeadLettered = s.processed, s.dead
		rep.Processed += s.processed
		rep.DeadLettered += s.dead
	}
}

// rangeBar is a progress bar on stderr when stderr is a terminal; nothing otherwise (stdout
// carries the report).
type rangeBar struct{ bar *progressbar.ProgressBar }

func newRangeBar(total int64) *rangeBar {
	if total == 0 || !term.IsTerminal(int(os.Stderr.Fd())) {
		return &rangeBar{}
	}
	return &rangeBar{bar: progressbar.NewOptions64(total, progressbar.OptionSetWriter(os.Stderr),
		progressbar.OptionSetDescription("re-processing"), progressbar.OptionShowCount(), progressbar.OptionShowIts(),
		progressbar.OptionSetItsString("records"), progressbar.OptionThrottle(100*time.Millisecond))}
}

func (b *rangeBar) add(n int64) {
	if b.bar != nil && n > 0 {
		_ = b.bar.Add64(n)
	}
}

func (b *rangeBar) finish() {
	if b.bar != nil {
		_ = b.bar.Finish()
		fmt.Fprintln(os.Stderr)
	}
}

// writeRangeTable prints the range per partition and, after --execute, what the replay did.
func writeRangeTable(w io.Writer, rep RangeReport) error {
	until := "the end offsets when the replay started"
	if rep.Until != nil {
		until = rep.Until.Format(time.RFC3339Nano)
	}
	fmt.Fprintf(w, "group %s: re-process records from %s until %s\n", rep.Group, rep.From.Format(time.RFC3339Nano), until)
	if rep.Executed {
		fmt.Fprintf(w, "replay group %s (events are claimed as %s; the live group is not touched)\n", rep.ReplayGroup, rep.Group)
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	if rep.Executed {
		fmt.Fprintln(tw, "TOPIC\tPARTITION\tSTART\tEND\tRECORDS\tPROCESSED\tDEAD-LETTERED")
	} else {
		fmt.Fprintln(tw, "TOPIC\tPARTITION\tSTART\tEND\tRECORDS")
	}
	for _, p := range rep.Partitions {
		if rep.Executed {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\n", p.Topic, p.Partition, p.Start, p.End, p.Records, p.Processed, p.DeadLettered)
		} else {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\n", p.Topic, p.Partition, p.Start, p.End, p.Records)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if !rep.Executed {
		fmt.Fprintf(w, "total: %d records in %d partitions\n", rep.Records, len(rep.Partitions))
		_, err := fmt.Fprintln(w, "dry run: nothing changed; pass --execute to re-process the range through a replay group (the live group keeps running)")
		return err
	}
	fmt.Fprintf(w, "total: %d of %d records processed, %d dead-lettered; %d %s again (missing effects), the rest found done and skipped\n",
		rep.Processed, rep.Records, rep.DeadLettered, rep.Reapplied, rep.Effect)
	state := "complete"
	if !rep.Completed {
		state = "interrupted"
	}
	kept := "not deleted (see the warning above; delete it with kafka-consumer-groups.sh --delete)"
	switch {
	case rep.ReplayGroupDeleted:
		kept = "deleted"
	case rep.KeptGroup:
		kept = "kept (--keep-group)"
	}
	_, err := fmt.Fprintf(w, "replay %s in %.1fs; replay group %s %s\n", state, rep.Seconds, rep.ReplayGroup, kept)
	return err
}

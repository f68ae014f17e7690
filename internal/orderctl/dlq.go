package orderctl

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/term"

	"github.com/orderpipe/orderpipe/internal/consumer"
	"github.com/orderpipe/orderpipe/internal/event"
	"github.com/orderpipe/orderpipe/internal/kafka"
	"github.com/orderpipe/orderpipe/internal/postgres"
	"github.com/orderpipe/orderpipe/internal/topology"
)

// HeaderRedriveCount counts how often `orderctl dlq redrive` put a record back on its source
// topic. The consumer keeps it when it dead-letters the record again, so the loop guard sees it.
const HeaderRedriveCount = consumer.HeaderRedriveCount

// redriveGroup is the consumer group whose committed offsets on a DLQ topic record how far the
// re-drive of that group's dead letters got.
func redriveGroup(group string) string { return "orderctl-redrive." + group }

// dlqFilter selects dead letters by class, time, key and source partition.
type dlqFilter struct {
	class     string
	since     time.Duration
	from      string
	key       string
	sourcePar int32
	limit     int

	fromT time.Time // resolved from --since or --from
}

func (f *dlqFilter) flags(cmd *cobra.Command, limit bool) {
	fs := cmd.Flags()
	fs.StringVar(&f.class, "class", "", "only records of this error class: transient or permanent")
	fs.DurationVar(&f.since, "since", 0, "only records dead-lettered within this duration before now (e.g. 2h)")
	fs.StringVar(&f.from, "from", "", "only records dead-lettered at or after this RFC 3339 time")
	fs.StringVar(&f.key, "key", "", "only records with this key")
	fs.Int32Var(&f.sourcePar, "source-partition", -1, "only records whose original was on this partition of its source topic")
	if limit {
		fs.IntVar(&f.limit, "limit", 0, "stop after this many matching records (0: no limit)")
	}
}

func (f *dlqFilter) validate(now time.Time) error {
	switch f.class {
	case "", "transient", "permanent":
	default:
		return usageErr("--class: want transient or permanent, got %q", f.class)
	}
	if f.since != 0 && f.from != "" {
		return usageErr("--since and --from exclude each other")
	}
	if f.since < 0 {
		return usageErr("--since: want a positive duration, got %s", f.since)
	}
	if f.since > 0 {
		f.fromT = now.Add(-f.since)
	}
	if f.from != "" {
		t, err := time.Parse(time.RFC3339Nano, f.from)
		if err != nil {
			return usageErr("--from: want an RFC 3339 time like 2026-11-26T21:00:00Z, got %q", f.from)
		}
		f.fromT = t
	}
	if f.sourcePar < -1 {
		return usageErr("--source-partition: want a partition number, got %d", f.sourcePar)
	}
	if f.limit < 0 {
		return usageErr("--limit: want 0 or more, got %d", f.limit)
	}
	return nil
}

func (f *dlqFilter) match(d consumer.DeadLetter) bool {
	switch {
	case f.class != "" && d.Class != f.class:
		return false
	case !f.fromT.IsZero() && d.Time.Before(f.fromT):
		return false
	case f.key != "" && string(d.Key) != f.key:
		return false
	case f.sourcePar >= 0 && d.Partition != f.sourcePar:
		return false
	}
	return true
}

// dlqEntry is one record of a DLQ topic, parsed when it is a dead letter.
type dlqEntry struct {
	rec *kgo.Record
	dl  consumer.DeadLetter
	err error // wraps consumer.ErrNotDeadLetter

	// Set by annotate:
	state       string // parked, redriven, superseded, or the decided order's status
	outstanding bool   // still waits on ops (dlq list and count show it by default)
	guard       int    // re-drives so far, for the loop guard: per event id
}

// States of a dead letter, the STATE column of dlq list. An order-worker dead letter whose order
// has a row in Postgres shows the order's status instead (confirmed, cancelled, shipped).
const (
	// stateParked: not re-driven and not decided. Outstanding; dlq redrive sends it.
	stateParked = "parked"
	// stateRedriven: re-driven. For order-worker it stays outstanding until its order is decided;
	// for the other groups a re-driven record that fails again comes back as a new dead letter.
	stateRedriven = "redriven"
	// stateSuperseded: a later dead letter of the same event id exists (it came back after a
	// re-drive, or a replay wrote it again): that one carries the state.
	stateSuperseded = "superseded"
)

// headerRedrives is the record's redrive-count header.
func (x dlqEntry) headerRedrives() int {
	n := 0
	for _, h := range x.dl.Headers {
		if h.Key == HeaderRedriveCount {
			n, _ = strconv.Atoi(string(h.Value))
		}
	}
	return n
}

// redrives is how often the record's event was re-driven: its redrive-count header, or the
// re-drives recorded for its event id when more (a copy written again by a replay starts its
// header at 0).
func (x dlqEntry) redrives() int { return max(x.headerRedrives(), x.guard) }

// eventID is the record's ce_id header; empty when it has none.
func (x dlqEntry) eventID() string {
	for _, h := range x.dl.Headers {
		if h.Key == event.HeaderID {
			return string(h.Value)
		}
	}
	return ""
}

// dlqRow is a dead letter as list prints it in JSON.
type dlqRow struct {
	Partition       int32     `json:"partition"`
	Offset          int64     `json:"offset"`
	Time            time.Time `json:"dlq_time"`
	SourceTopic     string    `json:"source_topic"`
	SourcePartition int32     `json:"source_partition"`
	SourceOffset    int64     `json:"source_offset"`
	Attempts        int       `json:"attempts"`
	Class           string    `json:"class"`
	Redrives        int       `json:"redrive_count"`
	State           string    `json:"state"`
	Outstanding     bool      `json:"outstanding"`
	Key             string    `json:"key"`
	Error           string    `json:"error"`
	// ReplayGroup is the replay group (orderctl replay range) that gave the record up; empty for
	// the live group's own dead letters.
	ReplayGroup string `json:"replay_group,omitempty"`
}

func rowOf(x dlqEntry) dlqRow {
	return dlqRow{Partition: x.rec.Partition, Offset: x.rec.Offset, Time: x.dl.Time.UTC(), SourceTopic: x.dl.Topic,
		SourcePartition: x.dl.Partition, SourceOffset: x.dl.Offset, Attempts: x.dl.Attempts, Class: x.dl.Class,
		Redrives: x.redrives(), State: x.state, Outstanding: x.outstanding, Key: string(x.dl.Key), Error: x.dl.Error, ReplayGroup: x.dl.ReplayGroup}
}

// dlqGroup checks --group names a consumer group with a dead-letter topic.
func dlqGroup(group string) (string, error) {
	var names []string
	for _, g := range topology.Groups() {
		if g.Name == group {
			return event.DeadLetterTopic(group), nil
		}
		names = append(names, g.Name)
	}
	if group == "" {
		return "", usageErr("--group is required: one of %s", strings.Join(names, ", "))
	}
	return "", usageErr("--group: unknown consumer group %q, want one of %s", group, strings.Join(names, ", "))
}

func (e *env) dlqCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dlq",
		Short: "List, count, inspect and re-drive the dead-letter records of a consumer group",
		Long: "Every consumer group parks the records it gave up on in its dead-letter topic <group>.dlq,\n" +
			"with headers saying where the record came from and why. These commands read that topic\n" +
			"(without joining any group, so they never disturb the pipeline) and put chosen records back\n" +
			"on their source topic once the cause is fixed.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usageErr("dlq: want a subcommand: list, count, inspect or redrive")
		},
	}
	cmd.AddCommand(e.dlqListCmd(), e.dlqCountCmd(), e.dlqInspectCmd(), e.dlqRedriveCmd())
	return cmd
}

func (e *env) dlqListCmd() *cobra.Command {
	var group, output string
	var f dlqFilter
	var all bool
	cmd := &cobra.Command{
		Use:   "list --group G [filters] [--all] [--limit N] [--output table|json]",
		Short: "Print the outstanding dead letters of a group (--all: every one), with their state, oldest first per partition",
		Long: "Prints the dead letters that still wait on ops, one row each with its STATE:\n" +
			"  parked      not re-driven and not decided: dlq redrive sends it\n" +
			"  redriven    re-driven; an order-worker dead letter stays listed until its order is decided\n" +
			"With --all it prints every record of the dead-letter topic, also those handled:\n" +
			"  confirmed, cancelled, shipped   order-worker: the order was decided (its row in Postgres)\n" +
			"  superseded  a later dead letter of the same event id exists (it came back after a re-drive)\n" +
			"  redriven    (other groups) re-driven; if it failed again it came back as a new dead letter\n" +
			"Re-drives are read from Postgres (DATABASE_URL), where dlq redrive records them.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			topic, entries, err := e.dlqRead(cmd.Context(), group, output, &f)
			if err != nil {
				return err
			}
			rows := []dlqRow{}
			invalid, handled := 0, 0
			for _, x := range entries {
				switch {
				case x.err != nil:
					invalid++
				case !all && !x.outstanding:
					handled++
				case f.limit > 0 && len(rows) == f.limit:
				case f.match(x.dl):
					rows = append(rows, rowOf(x))
				}
			}
			if output == "json" {
				return writeJSON(e.stdout, rows)
			}
			tw := tabwriter.NewWriter(e.stdout, 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "PARTITION:OFFSET\tDLQ_TIME\tSOURCE\tATTEMPTS\tCLASS\tREDRIVES\tSTATE\tKEY\tERROR")
			for _, r := range rows {
				fmt.Fprintf(tw, "%d:%d\t%s\t%s/%d@%d\t%d\t%s\t%d\t%s\t%s\t%s\n", r.Partition, r.Offset, r.Time.Format(time.RFC3339),
					r.SourceTopic, r.SourcePartition, r.SourceOffset, r.Attempts, r.Class, r.Redrives, r.State, r.Key, dlqTruncate(r.Error, 60))
			}
			if all {
				fmt.Fprintf(tw, "%d dead letters on %s\n", len(rows), topic)
			} else {
				fmt.Fprintf(tw, "%d outstanding dead letters on %s (%d handled; --all lists every one with its state)\n", len(rows), topic, handled)
			}
			if invalid > 0 {
				fmt.Fprintf(tw, "%d record(s) of %s are not dead letters (no dlq-* headers); dlq inspect shows them\n", invalid, topic)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&group, "group", "", "consumer group whose dead-letter topic to read (required)")
	cmd.Flags().StringVar(&output, "output", "table", "table or json")
	cmd.Flags().BoolVar(&all, "all", false, "every dead letter (history), not only the outstanding ones")
	f.flags(cmd, true)
	return cmd
}

func (e *env) dlqCountCmd() *cobra.Command {
	var group, output string
	var f dlqFilter
	var all bool
	cmd := &cobra.Command{
		Use:   "count --group G [filters] [--all] [--output table|json]",
		Short: "Count the outstanding dead letters of a group (--all: every one) by error class, source topic and state",
		Long: "Counts what dlq list prints (see its help for the states): by default the dead letters that\n" +
			"still wait on ops (parked, or re-driven and not decided yet), with --all every one.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			topic, entries, err := e.dlqRead(cmd.Context(), group, output, &f)
			if err != nil {
				return err
			}
			type count struct {
				Class       string `json:"class"`
				SourceTopic string `json:"source_topic"`
				State       string `json:"state"`
				Count       int    `json:"count"`
			}
			by := map[[3]string]int{}
			total, invalid, handled := 0, 0, 0
			for _, x := range entries {
				switch {
				case x.err != nil:
					invalid++
				case !all && !x.outstanding:
					handled++
				case f.match(x.dl):
					by[[3]string{x.dl.Class, x.dl.Topic, x.state}]++
					total++
				}
			}
			counts := []count{}
			for k, n := range by {
				counts = append(counts, count{Class: k[0], SourceTopic: k[1], State: k[2], Count: n})
			}
			sort.Slice(counts, func(i, j int) bool {
				a, b := counts[i], counts[j]
				if a.Class != b.Class {
					return a.Class < b.Class
				}
				if a.SourceTopic != b.SourceTopic {
					return a.SourceTopic < b.SourceTopic
				}
				return a.State < b.State
			})
			if output == "json" {
				return writeJSON(e.stdout, map[string]any{"topic": topic, "outstanding_only": !all, "total": total, "handled": handled,
					"not_dead_letters": invalid, "counts": counts})
			}
			tw := tabwriter.NewWriter(e.stdout, 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "CLASS\tSOURCE_TOPIC\tSTATE\tCOUNT")
			for _, c := range counts {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\n", c.Class, c.SourceTopic, c.State, c.Count)
			}
			fmt.Fprintf(tw, "total\t\t\t%d\n", total)
			if !all {
				fmt.Fprintf(tw, "(outstanding only: %d handled dead letters not counted; --all counts them)\n", handled)
			}
			if invalid > 0 {
				fmt.Fprintf(tw, "%d record(s) of %s are not dead letters\n", invalid, topic)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&group, "group", "", "consumer group whose dead-letter topic to read (required)")
	cmd.Flags().StringVar(&output, "output", "table", "table or json")
	cmd.Flags().BoolVar(&all, "all", false, "every dead letter (history), not only the outstanding ones")
	f.flags(cmd, false)
	return cmd
}

func (e *env) dlqInspectCmd() *cobra.Command {
	var group, at string
	cmd := &cobra.Command{
		Use:   "inspect --group G --offset PARTITION:OFFSET",
		Short: "Print one dead-letter record in full: headers, key, and the value (pretty-printed when JSON)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			topic, err := dlqGroup(group)
			if err != nil {
				return err
			}
			p, o, err := dlqParsePartOffset(at)
			if err != nil {
				return err
			}
			entries, err := e.readDLQ(cmd.Context(), topic, map[int32]int64{p: o}, p)
			if err != nil {
				return err
			}
			i := slices.IndexFunc(entries, func(x dlqEntry) bool { return x.rec.Offset == o })
			if i < 0 {
				return fmt.Errorf("inspect %s: no record at partition %d offset %d (dlq list shows the offsets)", topic, p, o)
			}
			x := entries[i]
			var b strings.Builder
			fmt.Fprintf(&b, "record %s %d:%d (produced %s)\n", topic, x.rec.Partition, x.rec.Offset, x.rec.Timestamp.UTC().Format(time.RFC3339Nano))
			if x.err != nil {
				fmt.Fprintf(&b, "not a dead letter: %v\n", x.err)
			} else {
				fmt.Fprintf(&b, "source: %s partition %d offset %d\n", x.dl.Topic, x.dl.Partition, x.dl.Offset)
				fmt.Fprintf(&b, "class: %s after %d attempts, dead-lettered %s, re-driven %d times\n", x.dl.Class, x.dl.Attempts, x.dl.Time.UTC().Format(time.RFC3339Nano), x.redrives())
				fmt.Fprintf(&b, "error: %s\n", x.dl.Error)
				if x.dl.ReplayGroup != "" {
					fmt.Fprintf(&b, "dead-lettered by the replay group %s (a re-drive sends it to the live group)\n", x.dl.ReplayGroup)
				}
			}
			fmt.Fprintf(&b, "key: %s\nheaders:\n", dlqPrintable(x.rec.Key))
			for _, h := range x.rec.Headers {
				fmt.Fprintf(&b, "  %s: %s\n", h.Key, dlqPrintable(h.Value))
			}
			b.WriteString("value:\n")
			var pretty bytes.Buffer
			if json.Indent(&pretty, x.rec.Value, "", "  ") == nil {
				b.Write(pretty.Bytes())
				b.WriteString("\n")
			} else {
				b.WriteString(dlqPrintable(x.rec.Value) + "\n")
			}
			_, err = io.WriteString(e.stdout, b.String())
			return err
		},
	}
	cmd.Flags().StringVar(&group, "group", "", "consumer group whose dead-letter topic to read (required)")
	cmd.Flags().StringVar(&at, "offset", "", "the record's PARTITION:OFFSET in the dead-letter topic, as dlq list prints it (required)")
	return cmd
}

func (e *env) dlqRedriveCmd() *cobra.Command {
	var group string
	var f dlqFilter
	var execute, fromStart bool
	var maxRedrives, batch int
	cmd := &cobra.Command{
		Use:   "redrive --group G [filters] [--execute] [--max-redrives N]",
		Short: "Publish chosen dead letters back to their source topic (dry run unless --execute)",
		Long: "Puts each chosen dead letter back on its source topic with its original key, value and\n" +
			"headers (its event id included), plus a redrive-count header incremented at every re-drive.\n" +
			"A record whose redrive-count reached --max-redrives is refused (loop guard): it keeps\n" +
			"failing, so fix the cause, or raise --max-redrives on purpose. Refused records are named\n" +
			"one per line, counted in the summary, and make the command exit 4 (everything else chosen\n" +
			"was re-driven).\n\n" +
			"Without --execute nothing is sent: it prints what would be re-driven and a summary.\n\n" +
			"Only parked records are chosen (dlq list shows the states): a record re-driven before, one whose\n" +
			"order is decided, or one superseded by a later dead letter of the same event id is not sent\n" +
			"again. The loop guard counts re-drives per event id (a copy a replay wrote again does not\n" +
			"start at 0).\n\n" +
			"Resumable: records are published with the idempotent producer (acks=all) in batches of\n" +
			"--batch, and after every acknowledged batch each re-driven record is recorded in Postgres\n" +
			"(DATABASE_URL; progress is per record), then the offsets of the group orderctl-redrive.<G> on\n" +
			"the dead-letter topic move over the records handled without a gap, and never past one that\n" +
			"was not re-driven: records skipped by the filters or --limit, or refused, stay for a later\n" +
			"run, and the summary says how many are still parked. Interrupted (Ctrl-C), it lets the batch\n" +
			"in flight be acknowledged, records it, and stops before sending more, so running it again\n" +
			"sends nothing twice. Only a crash (or a broker failure in the middle of a batch) between the\n" +
			"broker's acknowledgement and that record can publish up to one batch again; those records\n" +
			"keep their event ids and the consumers skip an event id they processed, so the effect is\n" +
			"still once.\n" +
			"--from-start reads the dead-letter topic from its first record instead of from those offsets\n" +
			"(what was re-driven is still not sent again).\n\n" +
			"Exit codes: 0 done, 1 failed or interrupted (run it again to continue), 2 bad usage,\n" +
			"4 some records were refused by the loop guard.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			topic, err := dlqGroup(group)
			if err != nil {
				return err
			}
			if err := f.validate(time.Now()); err != nil {
				return err
			}
			if maxRedrives < 1 {
				return usageErr("--max-redrives: want 1 or more, got %d", maxRedrives)
			}
			if batch < 1 {
				return usageErr("--batch: want 1 or more, got %d", batch)
			}
			return e.redrive(cmd.Context(), redriveRun{group: group, topic: topic, filter: f, execute: execute,
				fromStart: fromStart, max: maxRedrives, batch: batch})
		},
	}
	cmd.Flags().StringVar(&group, "group", "", "consumer group whose dead letters to re-drive (required)")
	cmd.Flags().BoolVar(&execute, "execute", false, "publish the records (default: dry run)")
	cmd.Flags().IntVar(&maxRedrives, "max-redrives", 3, "refuse records already re-driven this many times (loop guard)")
	cmd.Flags().IntVar(&batch, "batch", 500, "records published before progress is committed")
	cmd.Flags().BoolVar(&fromStart, "from-start", false, "ignore the committed progress and scan the dead-letter topic from its first record")
	f.flags(cmd, true)
	return cmd
}

// redriveBatchTimeout bounds how long one batch may take to be acknowledged, interrupted or not.
const redriveBatchTimeout = 2 * time.Minute

type redriveRun struct {
	group, topic string
	filter       dlqFilter
	execute      bool
	fromStart    bool
	max, batch   int
}

type redriveSummary struct {
	redriven, refused, skipped, beyond, handled, invalid int
}

func (e *env) redrive(ctx context.Context, r redriveRun) error {
	cl, err := e.dlqClient()
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	pool, err := e.pool(ctx)
	if err != nil {
		return err
	}
	defer pool.Close()
	led := postgres.NewDeadLetterLedger(pool)
	progressGroup := redriveGroup(r.group)
	var from map[int32]int64
	if !r.fromStart {
		committed, err := kafka.FetchOffsets(ctx, adm, progressGroup)
		if errors.Is(err, kerr.GroupIDNotFound) {
			err = nil // no re-drive yet
		}
		if err != nil {
			return fmt.Errorf("read re-drive progress of %s: %w", progressGroup, err)
		}
		from = map[int32]int64{}
		committed.Each(func(o kadm.OffsetResponse) {
			if o.Topic == r.topic && o.Err == nil && o.At >= 0 {
				from[o.Partition] = o.At
			}
		})
	}
	entries, err := e.readDLQ(ctx, r.topic, from)
	if err != nil {
		return err
	}
	if _, err := annotate(ctx, led, r.group, entries); err != nil {
		return err
	}

	// Decide every record first, so the dry run prints exactly what --execute sends.
	var s redriveSummary
	var chosen []int
	parked := 0
	for i, x := range entries {
		switch {
		case x.err != nil:
			s.invalid++
		case x.state != stateParked:
			s.handled++
		case !r.filter.match(x.dl):
			s.skipped++
			parked++
		case x.redrives() >= r.max:
			s.refused++
			parked++
			fmt.Fprintf(e.stdout, "refused %d:%d (key %s): re-driven %d times already, the --max-redrives limit %d; it keeps failing with %q: fix the cause, then re-drive it on purpose with --key %s --max-redrives %d\n",
				x.rec.Partition, x.rec.Offset, dlqPrintable(x.dl.Key), x.redrives(), r.max, dlqTruncate(x.dl.Error, 120), dlqPrintable(x.dl.Key), x.redrives()+1)
		case r.filter.limit > 0 && len(chosen) >= r.filter.limit:
			s.beyond++
			parked++
		default:
			chosen = append(chosen, i)
			parked++
		}
	}
	mode := "dry run: would re-drive"
	if r.execute {
		mode = "re-driving"
	}
	readFrom := "from the re-drive position of " + progressGroup
	if r.fromStart {
		readFrom = "from its first record (--from-start: the committed re-drive position is not used)"
	}
	fmt.Fprintf(e.stdout, "%s %d of the %d records of %s read %s\n", mode, len(chosen), len(entries), r.topic, readFrom)
	prog := e.newProgress(len(chosen), r.execute)

	// done marks the records that need no re-drive (not dead letters, or handled) and those
	// re-driven by this run; the committed position moves only over them.
	done := make([]bool, len(entries))
	for i, x := range entries {
		done[i] = x.err != nil || x.state != stateParked
	}
	commit := func() error {
		next := map[int32]int64{}
		blocked := map[int32]bool{}
		for i, x := range entries {
			p := x.rec.Partition
			if blocked[p] {
				continue
			}
			if !done[i] {
				blocked[p] = true
				next[p] = x.rec.Offset
				continue
			}
			next[p] = x.rec.Offset + 1
		}
		return r.commit(ctx, adm, progressGroup, next)
	}
	// finish prints the summary, whatever happened, and says how the run ended.
	finish := func(runErr error) error {
		prog.finish()
		verb := "would re-drive"
		if r.execute {
			verb = "re-driven"
		}
		fmt.Fprintf(e.stdout, "summary: %s %d, refused by the loop guard %d, skipped by filters %d, beyond --limit %d, handled before %d, not dead letters %d\n",
			verb, s.redriven, s.refused, s.skipped, s.beyond, s.handled, s.invalid)
		fmt.Fprintf(e.stdout, "still parked after this run: %d (dlq list --group %s shows them)\n", parked-s.redriven, r.group)
		switch {
		case runErr != nil && r.execute:
			fmt.Fprintf(e.stdout, "stopped: every acknowledged batch is recorded; run the same command again to continue (records already re-driven are not sent again)\n")
			return runErr
		case runErr != nil:
			return runErr
		case !r.execute && len(chosen) > 0:
			fmt.Fprintln(e.stdout, "nothing was sent: run again with --execute to re-drive")
		}
		if s.refused > 0 {
			return &exitError{code: ExitRefused, err: fmt.Errorf("%d record(s) of %s refused by the loop guard (re-driven --max-redrives %d times or more): fix their cause; the refused lines above say how to re-drive one on purpose",
				s.refused, r.topic, r.max)}
		}
		return nil
	}
	if !r.execute {
		for _, i := range chosen {
			x := entries[i]
			s.redriven++
			fmt.Fprintf(e.stdout, "would re-drive %d:%d key %s to %s (source %d@%d, %s: %s), redrive-count %d\n",
				x.rec.Partition, x.rec.Offset, dlqPrintable(x.dl.Key), x.dl.Topic, x.dl.Partition, x.dl.Offset,
				x.dl.Class, dlqTruncate(x.dl.Error, 60), x.redrives()+1)
		}
		return finish(nil)
	}
	// send publishes one batch, records what the broker acknowledged, and commits the position.
	send := func(batch []int) error {
		// The batch is not cut short by an interruption: it is finished, so that what the broker
		// has is exactly what is recorded. (With the idempotent producer franz-go never fails a
		// record it has sent, so a failure below means the record was not written.)
		pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), redriveBatchTimeout)
		defer cancel()
		out := make([]*kgo.Record, len(batch))
		from := map[*kgo.Record]int{}
		for j, i := range batch {
			out[j] = redriveRecord(entries[i])
			from[out[j]] = i
		}
		var firstErr error
		var acked []postgres.Redrive
		var ackedIdx []int
		for _, res := range cl.ProduceSync(pctx, out...) {
			i := from[res.Record]
			x := entries[i]
			if res.Err != nil {
				if firstErr == nil {
					firstErr = fmt.Errorf("re-drive %s %d:%d to %s: %w", r.topic, x.rec.Partition, x.rec.Offset, res.Record.Topic, res.Err)
				}
				continue
			}
			acked = append(acked, postgres.Redrive{DLQPosition: postgres.DLQPosition{Partition: x.rec.Partition, Offset: x.rec.Offset}, EventID: x.eventID()})
			ackedIdx = append(ackedIdx, i)
		}
		if err := led.AddRedrives(pctx, r.group, acked); err != nil {
			return errors.Join(firstErr, fmt.Errorf("%w (%d acknowledged record(s) not recorded: a new run sends them again, and their consumer skips the event ids it processed)", err, len(acked)))
		}
		for _, i := range ackedIdx {
			done[i] = true
			s.redriven++
			prog.add(1)
		}
		if err := commit(); err != nil {
			return errors.Join(firstErr, err)
		}
		return firstErr
	}
	for start := 0; start < len(chosen); start += r.batch {
		if err := ctx.Err(); err != nil {
			// Interrupted: the rest was not sent and stays parked.
			return finish(fmt.Errorf("re-drive of %s interrupted: %w", r.topic, err))
		}
		if err := send(chosen[start:min(start+r.batch, len(chosen))]); err != nil {
			return finish(err)
		}
	}
	if err := commit(); err != nil {
		return finish(err)
	}
	return finish(nil)
}

// redriveRecord is the dead letter's original record for its source topic, with redrive-count
// incremented.
func redriveRecord(x dlqEntry) *kgo.Record {
	out := x.dl.Redrive()
	n := strconv.AppendInt(nil, int64(x.redrives()+1), 10)
	out.Headers = slices.DeleteFunc(out.Headers, func(h kgo.RecordHeader) bool { return h.Key == HeaderRedriveCount })
	out.Headers = append(out.Headers, kgo.RecordHeader{Key: HeaderRedriveCount, Value: n})
	return out
}

func (r redriveRun) commit(ctx context.Context, adm *kadm.Client, group string, next map[int32]int64) error {
	if len(next) == 0 {
		return nil
	}
	offs := kadm.Offsets{}
	for p, at := range next {
		offs.AddOffset(r.topic, p, at, -1)
	}
	// Commit even when interrupted: what was acknowledged must not be sent again.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	resp, err := adm.CommitOffsets(cctx, group, offs)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		return fmt.Errorf("commit re-drive progress of %s: %w", group, err)
	}
	return nil
}

func (e *env) dlqClient(opts ...kgo.Opt) (*kgo.Client, error) {
	return kafka.NewClient(kafka.ClientConfig{Brokers: e.cfg.KafkaBrokers, ClientID: e.cfg.KafkaClientID + "-orderctl"}, opts...)
}

// dlqRead checks the arguments list and count share, reads the group's whole dead-letter topic
// and annotates each record with its state.
func (e *env) dlqRead(ctx context.Context, group, output string, f *dlqFilter) (string, []dlqEntry, error) {
	topic, err := dlqGroup(group)
	if err != nil {
		return "", nil, err
	}
	if err := checkOutput(output); err != nil {
		return "", nil, err
	}
	if err := f.validate(time.Now()); err != nil {
		return "", nil, err
	}
	entries, err := e.readDLQ(ctx, topic, nil)
	if err != nil {
		return "", nil, err
	}
	pool, err := e.pool(ctx)
	if err != nil {
		return "", nil, err
	}
	defer pool.Close()
	if _, err := annotate(ctx, postgres.NewDeadLetterLedger(pool), group, entries); err != nil {
		return "", nil, err
	}
	return topic, entries, nil
}

// annotate sets each dead letter's state, whether it is outstanding, and its loop-guard count,
// from the re-drives recorded in Postgres, the later records of the same event id and, for
// order-worker, the order's row (an orders row is written only when the order is decided).
// It returns the re-drives recorded so far.
func annotate(ctx context.Context, led *postgres.DeadLetterLedger, group string, entries []dlqEntry) (postgres.Redrives, error) {
	rd, err := led.Redrives(ctx, group)
	if err != nil {
		return rd, err
	}
	latest := map[string]int{} // event id -> index of its latest dead letter
	var keys []string
	for i, x := range entries {
		if x.err != nil {
			continue
		}
		if id := x.eventID(); id != "" {
			if j, ok := latest[id]; !ok || !x.dl.Time.Before(entries[j].dl.Time) {
				latest[id] = i
			}
		}
		keys = append(keys, orderKey(x.dl.Key))
	}
	statuses := map[string]string{}
	if group == topology.GroupOrderWorker {
		if statuses, err = led.OrderStatuses(ctx, keys); err != nil {
			return rd, err
		}
	}
	for i := range entries {
		x := &entries[i]
		if x.err != nil {
			continue
		}
		id := x.eventID()
		if id != "" {
			x.guard = rd.ByEvent[id]
		}
		st, decided := statuses[orderKey(x.dl.Key)]
		switch {
		case decided:
			x.state = st
		case id != "" && latest[id] != i:
			x.state = stateSuperseded
		case redriven(rd, x):
			x.state = stateRedriven
			x.outstanding = group == topology.GroupOrderWorker
		default:
			x.state, x.outstanding = stateParked, true
		}
	}
	return rd, nil
}

// redriven reports whether the ledger has x as re-driven: its position, with its event id (a
// record at a recorded position with another event id is a new one: the topic was re-created).
func redriven(rd postgres.Redrives, x *dlqEntry) bool {
	id, ok := rd.Records[postgres.DLQPosition{Partition: x.rec.Partition, Offset: x.rec.Offset}]
	return ok && id == x.eventID()
}

// orderKey is a record key as an order id in Postgres's text form (lower case) when it is a UUID.
func orderKey(k []byte) string {
	if u, err := uuid.ParseBytes(k); err == nil {
		return u.String()
	}
	return string(k)
}

// readDLQ reads topic from the start (or from the given offsets, where later) up to the end
// offsets it finds when called, with a plain consumer (no group). Only partitions are read when
// given. Entries are ordered by partition, then offset.
func (e *env) readDLQ(ctx context.Context, topic string, from map[int32]int64, only ...int32) ([]dlqEntry, error) {
	cl, err := e.dlqClient()
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("end offsets of %s: %w", topic, err)
	}
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("start offsets of %s: %w", topic, err)
	}
	end := map[int32]int64{}
	next := map[int32]int64{}
	assign := map[int32]kgo.Offset{}
	ends.Each(func(o kadm.ListedOffset) {
		if len(only) > 0 && !slices.Contains(only, o.Partition) {
			return
		}
		at := int64(0)
		if s, ok := starts.Lookup(topic, o.Partition); ok {
			at = s.Offset
		}
		if f, ok := from[o.Partition]; ok && f > at {
			at = f
		}
		if at < o.Offset {
			end[o.Partition], next[o.Partition] = o.Offset, at
			assign[o.Partition] = kgo.NewOffset().At(at)
		}
	})
	var out []dlqEntry
	if len(assign) == 0 {
		return out, nil
	}
	cons, err := e.dlqClient(kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: assign}), kgo.FetchMaxWait(200*time.Millisecond))
	if err != nil {
		return nil, err
	}
	defer cons.Close()
	for len(end) > 0 {
		fs := cons.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("read %s: %w", topic, err)
		}
		var ferr error
		fs.EachError(func(t string, p int32, err error) { ferr = fmt.Errorf("read %s partition %d: %w", t, p, err) })
		if ferr != nil {
			return nil, ferr
		}
		fs.EachRecord(func(r *kgo.Record) {
			stop, ok := end[r.Partition]
			if !ok || r.Offset >= stop {
				return
			}
			x := dlqEntry{rec: r}
			x.dl, x.err = consumer.ParseDeadLetter(r)
			out = append(out, x)
			if r.Offset+1 >= stop {
				delete(end, r.Partition)
			}
		})
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].rec.Partition != out[j].rec.Partition {
			return out[i].rec.Partition < out[j].rec.Partition
		}
		return out[i].rec.Offset < out[j].rec.Offset
	})
	return out, nil
}

func dlqParsePartOffset(s string) (int32, int64, error) {
	ps, offs, ok := strings.Cut(s, ":")
	p, perr := strconv.ParseInt(ps, 10, 32)
	o, oerr := strconv.ParseInt(offs, 10, 64)
	if !ok || perr != nil || oerr != nil || p < 0 || o < 0 {
		return 0, 0, usageErr("--offset: want PARTITION:OFFSET like 2:17, got %q", s)
	}
	return int32(p), o, nil
}

func dlqTruncate(s string, n int) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// dlqPrintable shows bytes as text when they are UTF-8, quoted hex otherwise.
func dlqPrintable(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	return fmt.Sprintf("%x (binary)", b)
}

// dlqProgress shows a bar when stdout is a terminal, plain lines (every 10%) otherwise.
type dlqProgress struct {
	bar        *progressbar.ProgressBar
	w          io.Writer
	total, now int
	step       int
}

func (e *env) newProgress(total int, active bool) *dlqProgress {
	p := &dlqProgress{w: e.stdout, total: total, step: max(1, total/10)}
	if !active || total == 0 {
		p.total = 0
		return p
	}
	if f, ok := e.stdout.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		p.bar = progressbar.NewOptions(total, progressbar.OptionSetWriter(f), progressbar.OptionSetDescription("re-driving"),
			progressbar.OptionShowCount(), progressbar.OptionShowIts(), progressbar.OptionSetItsString("records"))
	}
	return p
}

func (p *dlqProgress) add(n int) {
	if p.total == 0 {
		return
	}
	p.now += n
	if p.bar != nil {
		_ = p.bar.Add(n)
		return
	}
	if p.now%p.step == 0 || p.now == p.total {
		fmt.Fprintf(p.w, "progress: %d/%d re-driven\n", p.now, p.total)
	}
}

func (p *dlqProgress) finish() {
	if p.bar != nil {
		_ = p.bar.Finish()
		fmt.Fprintln(p.w)
	}
}

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

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/term"

	"github.com/orderpipe/orderpipe/internal/consumer"
	"github.com/orderpipe/orderpipe/internal/event"
	"github.com/orderpipe/orderpipe/internal/kafka"
	"github.com/orderpipe/orderpipe/internal/topology"
)

// HeaderRedriveCount counts how often `orderctl dlq redrive` put a record back on its source
// topic. The consumer keeps it when it dead-letters the record again, so the loop guard sees it.
const HeaderRedriveCount = "redrive-count"

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
}

func (x dlqEntry) redrives() int {
	n := 0
	for _, h := range x.dl.Headers {
		if h.Key == HeaderRedriveCount {
			n, _ = strconv.Atoi(string(h.Value))
		}
	}
	return n
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
	Key             string    `json:"key"`
	Error           string    `json:"error"`
	// ReplayGroup is the replay group (orderctl replay range) that gave the record up; empty for
	// the live group's own dead letters.
	ReplayGroup string `json:"replay_group,omitempty"`
}

func rowOf(x dlqEntry) dlqRow {
	return dlqRow{Partition: x.rec.Partition, Offset: x.rec.Offset, Time: x.dl.Time.UTC(), SourceTopic: x.dl.Topic,
		SourcePartition: x.dl.Partition, SourceOffset: x.dl.Offset, Attempts: x.dl.Attempts, Class: x.dl.Class,
		Redrives: x.redrives(), Key: string(x.dl.Key), Error: x.dl.Error, ReplayGroup: x.dl.ReplayGroup}
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
	cmd := &cobra.Command{
		Use:   "list --group G [filters] [--limit N] [--output table|json]",
		Short: "Print the dead letters of a group, one row each, oldest first per partition",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			topic, entries, err := e.dlqRead(cmd.Context(), group, output, &f)
			if err != nil {
				return err
			}
			rows := []dlqRow{}
			invalid := 0
			for _, x := range entries {
				if x.err != nil {
					invalid++
					continue
				}
				if f.limit > 0 && len(rows) == f.limit {
					break
				}
				if f.match(x.dl) {
					rows = append(rows, rowOf(x))
				}
			}
			if output == "json" {
				return writeJSON(e.stdout, rows)
			}
			tw := tabwriter.NewWriter(e.stdout, 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "PARTITION:OFFSET\tDLQ_TIME\tSOURCE\tATTEMPTS\tCLASS\tREDRIVES\tKEY\tERROR")
			for _, r := range rows {
				fmt.Fprintf(tw, "%d:%d\t%s\t%s/%d@%d\t%d\t%s\t%d\t%s\t%s\n", r.Partition, r.Offset, r.Time.Format(time.RFC3339),
					r.SourceTopic, r.SourcePartition, r.SourceOffset, r.Attempts, r.Class, r.Redrives, r.Key, dlqTruncate(r.Error, 60))
			}
			fmt.Fprintf(tw, "%d dead letters on %s\n", len(rows), topic)
			if invalid > 0 {
				fmt.Fprintf(tw, "%d record(s) of %s are not dead letters (no dlq-* headers); dlq inspect shows them\n", invalid, topic)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&group, "group", "", "consumer group whose dead-letter topic to read (required)")
	cmd.Flags().StringVar(&output, "output", "table", "table or json")
	f.flags(cmd, true)
	return cmd
}

func (e *env) dlqCountCmd() *cobra.Command {
	var group, output string
	var f dlqFilter
	cmd := &cobra.Command{
		Use:   "count --group G [filters] [--output table|json]",
		Short: "Count the dead letters of a group by error class and source topic",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			topic, entries, err := e.dlqRead(cmd.Context(), group, output, &f)
			if err != nil {
				return err
			}
			type count struct {
				Class       string `json:"class"`
				SourceTopic string `json:"source_topic"`
				Count       int    `json:"count"`
			}
			by := map[[2]string]int{}
			total, invalid := 0, 0
			for _, x := range entries {
				switch {
				case x.err != nil:
					invalid++
				case f.match(x.dl):
					by[[2]string{x.dl.Class, x.dl.Topic}]++
					total++
				}
			}
			counts := []count{}
			for k, n := range by {
				counts = append(counts, count{Class: k[0], SourceTopic: k[1], Count: n})
			}
			sort.Slice(counts, func(i, j int) bool {
				if counts[i].Class != counts[j].Class {
					return counts[i].Class < counts[j].Class
				}
				return counts[i].SourceTopic < counts[j].SourceTopic
			})
			if output == "json" {
				return writeJSON(e.stdout, map[string]any{"topic": topic, "total": total, "not_dead_letters": invalid, "counts": counts})
			}
			tw := tabwriter.NewWriter(e.stdout, 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "CLASS\tSOURCE_TOPIC\tCOUNT")
			for _, c := range counts {
				fmt.Fprintf(tw, "%s\t%s\t%d\n", c.Class, c.SourceTopic, c.Count)
			}
			fmt.Fprintf(tw, "total\t\t%d\n", total)
			if invalid > 0 {
				fmt.Fprintf(tw, "%d record(s) of %s are not dead letters\n", invalid, topic)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&group, "group", "", "consumer group whose dead-letter topic to read (required)")
	cmd.Flags().StringVar(&output, "output", "table", "table or json")
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
			"Resumable: records are published with the idempotent producer (acks=all) in batches of\n" +
			"--batch, and after every acknowledged batch the progress is committed as offsets of the\n" +
			"group orderctl-redrive.<G> on the dead-letter topic. A re-drive continues after the last\n" +
			"record the previous one scanned (re-driven, refused or skipped by the filters). Interrupted\n" +
			"(Ctrl-C), it lets the batch in flight be acknowledged, commits, and stops before sending\n" +
			"more, so running it again sends nothing twice. Only a crash (or a broker failure in the\n" +
			"middle of a batch) between the broker's acknowledgement and the commit can publish up to\n" +
			"one batch again; those records keep their event ids and the consumers skip an event id\n" +
			"they processed, so the effect is still once.\n" +
			"--from-start ignores that progress to reach records an earlier filtered re-drive skipped;\n" +
			"combine it with filters that exclude what was already re-driven.\n\n" +
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
	scanned, redriven, refused, skipped, invalid int
}

func (e *env) redrive(ctx context.Context, r redriveRun) error {
	cl, err := e.dlqClient()
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
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
	mode := "dry run: would re-drive"
	if r.execute {
		mode = "re-driving"
	}
	var s redriveSummary
	chosen := 0
	for _, x := range entries {
		if x.err == nil && r.filter.match(x.dl) && x.redrives() < r.max {
			chosen++
		}
	}
	if r.filter.limit > 0 {
		chosen = min(chosen, r.filter.limit)
	}
	fmt.Fprintf(e.stdout, "%s %d of the %d records of %s after the committed progress of %s\n", mode, chosen, len(entries), r.topic, progressGroup)
	prog := e.newProgress(chosen, r.execute)

	var pending []*kgo.Record
	sentFrom := map[*kgo.Record]*kgo.Record{} // re-driven record -> its dead letter
	scannedTo := map[int32]int64{}            // next offset to scan, per DLQ partition
	flush := func() error {
		if len(pending) == 0 {
			return r.commit(ctx, adm, progressGroup, scannedTo)
		}
		// The batch is not cut short by an interruption: it is finished, so that what the broker
		// has is exactly what is committed. (With the idempotent producer franz-go never fails a
		// record it has sent, so a failure below means the record was not written.)
		pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), redriveBatchTimeout)
		defer cancel()
		// Results come in completion order: match them by record. On a failure, progress stops
		// before the first failed dead letter of its partition (what follows is sent again).
		stop := map[int32]int64{}
		var firstErr error
		for _, res := range cl.ProduceSync(pctx, pending...) {
			if res.Err == nil {
				s.redriven++
				prog.add(1)
				continue
			}
			dl := sentFrom[res.Record]
			if firstErr == nil {
				firstErr = fmt.Errorf("re-drive %s %d:%d to %s: %w", r.topic, dl.Partition, dl.Offset, res.Record.Topic, res.Err)
			}
			if at, ok := stop[dl.Partition]; !ok || dl.Offset < at {
				stop[dl.Partition] = dl.Offset
			}
		}
		for p, at := range stop {
			scannedTo[p] = at
		}
		pending = pending[:0]
		clear(sentFrom)
		if err := r.commit(ctx, adm, progressGroup, scannedTo); err != nil {
			return errors.Join(firstErr, err)
		}
		return firstErr
	}
	// finish prints the summary, whatever happened, and says how the run ended.
	finish := func(runErr error) error {
		prog.finish()
		verb := "would re-drive"
		if r.execute {
			verb = "re-driven"
		}
		fmt.Fprintf(e.stdout, "summary: %s %d, refused by the loop guard %d, skipped by filters %d, not dead letters %d (scanned %d of %d)\n",
			verb, s.redriven, s.refused, s.skipped, s.invalid, s.scanned, len(entries))
		switch {
		case runErr != nil && r.execute:
			fmt.Fprintf(e.stdout, "stopped: progress up to the last acknowledged batch is committed in %s; run the same command again to continue (records already re-driven are not sent again)\n", progressGroup)
			return runErr
		case runErr != nil:
			return runErr
		case !r.execute && chosen > 0:
			fmt.Fprintln(e.stdout, "nothing was sent: run again with --execute to re-drive")
		}
		if s.refused > 0 {
			return &exitError{code: ExitRefused, err: fmt.Errorf("%d record(s) of %s refused by the loop guard (re-driven --max-redrives %d times or more): fix their cause; the refused lines above say how to re-drive one on purpose",
				s.refused, r.topic, r.max)}
		}
		return nil
	}
	for _, x := range entries {
		if err := ctx.Err(); err != nil {
			// Interrupted: what is pending was not sent; progress stays before it.
			for _, out := range pending {
				dl := sentFrom[out]
				if at, ok := scannedTo[dl.Partition]; !ok || dl.Offset < at {
					scannedTo[dl.Partition] = dl.Offset
				}
			}
			pending = pending[:0]
			if cerr := r.commit(ctx, adm, progressGroup, scannedTo); cerr != nil {
				return finish(errors.Join(err, cerr))
			}
			return finish(fmt.Errorf("re-drive of %s interrupted: %w", r.topic, err))
		}
		if r.filter.limit > 0 && s.redriven+len(pending) >= r.filter.limit {
			break // --limit reached: progress stays before the records not scanned
		}
		s.scanned++
		next := x.rec.Offset + 1
		switch {
		case x.err != nil:
			s.invalid++
		case !r.filter.match(x.dl):
			s.skipped++
		case x.redrives() >= r.max:
			s.refused++
			fmt.Fprintf(e.stdout, "refused %d:%d (key %s): re-driven %d times already, the --max-redrives limit %d; it keeps failing with %q: fix the cause, then re-drive it on purpose with --from-start --key %s --max-redrives %d\n",
				x.rec.Partition, x.rec.Offset, dlqPrintable(x.dl.Key), x.redrives(), r.max, dlqTruncate(x.dl.Error, 120), dlqPrintable(x.dl.Key), x.redrives()+1)
		case !r.execute:
			s.redriven++
			fmt.Fprintf(e.stdout, "would re-drive %d:%d key %s to %s (source %d@%d, %s: %s), redrive-count %d\n",
				x.rec.Partition, x.rec.Offset, dlqPrintable(x.dl.Key), x.dl.Topic, x.dl.Partition, x.dl.Offset,
				x.dl.Class, dlqTruncate(x.dl.Error, 60), x.redrives()+1)
		default:
			out := redriveRecord(x)
			sentFrom[out] = x.rec
			pending = append(pending, out)
		}
		if r.execute {
			scannedTo[x.rec.Partition] = next
			if len(pending) >= r.batch {
				if err := flush(); err != nil {
					return finish(err)
				}
			}
		}
	}
	if r.execute {
		if err := flush(); err != nil {
			return finish(err)
		}
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

// readDLQ reads topic from the start (or from the given offsets, where later) up to the end
// offsets it finds when called, with a plain consumer (no group). Only partitions are read when
// given. Entries are ordered by partition, then offset.
// dlqRead checks the arguments list and count share and reads the group's whole dead-letter
// topic.
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
	return topic, entries, err
}

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

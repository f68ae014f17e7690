package orderctl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderpipe/orderpipe/internal/kafka"
	"github.com/orderpipe/orderpipe/internal/topology"
)

// LagReport is what `orderctl lag --output json` prints: one object per refresh (one line each
// with --watch). Groups are sorted by name, partitions by topic then partition.
type LagReport struct {
	At     time.Time        `json:"at"`     // when the offsets were read
	Groups []GroupLagReport `json:"groups"` // every requested group, even one without commits
}

// GroupLagReport is one consumer group's lag.
type GroupLagReport struct {
	Group      string         `json:"group"`
	State      string         `json:"state"`     // Kafka's group state: Stable, Empty, Dead, PreparingRebalance...
	TotalLag   int64          `json:"total_lag"` // records not yet consumed, summed over partitions
	Members    []LagMember    `json:"members"`   // active members, sorted by member id; empty when nobody consumes
	Partitions []PartitionLag `json:"partitions"`
	Error      string         `json:"error,omitempty"` // describing the group or fetching its offsets failed
}

// LagMember is one member of a consumer group as the coordinator describes it.
type LagMember struct {
	MemberID   string `json:"member_id"`
	InstanceID string `json:"instance_id,omitempty"`
	ClientID   string `json:"client_id"`
	Host       string `json:"host"`
}

// PartitionLag is a group's position on one partition.
type PartitionLag struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Committed int64  `json:"committed"` // committed offset; -1 when the group never committed here
	End       int64  `json:"end"`       // log end offset (high watermark)
	Lag       int64  `json:"lag"`       // records between the committed offset and the end; -1 on error
	// LagSeconds is the age of the oldest unconsumed record (the record at the committed offset):
	// 0 when Lag is 0, -1 when the record could not be read.
	LagSeconds float64 `json:"lag_seconds"`
	// OldestUnconsumed is the timestamp of the oldest unconsumed record, absent when Lag is 0.
	OldestUnconsumed *time.Time `json:"oldest_unconsumed,omitempty"`
	MemberID         string     `json:"member_id,omitempty"` // the member assigned this partition, if any
	Error            string     `json:"error,omitempty"`
}

// lagRecordTimeout bounds how long reading the oldest unconsumed records may take per refresh.
const lagRecordTimeout = 3 * time.Second

func (e *env) lagCmd() *cobra.Command {
	var groups []string
	var output string
	var watch time.Duration
	cmd := &cobra.Command{
		Use:   "lag [--group G ...] [--output table|json] [--watch DURATION]",
		Short: "Show each consumer group's committed offset, end offset, lag in records and in time, and members",
		Long: "For every orderpipe consumer group (or the ones given with --group), per topic and partition:\n" +
			"the committed offset, the end offset, the lag in records, the age of the oldest unconsumed\n" +
			"record (LAG-TIME) and the member consuming it, followed by the groups' members.\n" +
			"--watch refreshes at the given interval until interrupted.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			if watch < 0 {
				return usageErr("--watch: want a positive duration, got %s", watch)
			}
			named := len(groups) > 0
			if !named {
				for _, g := range topology.Groups() {
					groups = append(groups, g.Name)
				}
			}
			slices.Sort(groups)
			groups = slices.Compact(groups)
			return e.runLag(cmd.Context(), groups, named, output, watch)
		},
	}
	cmd.Flags().StringSliceVar(&groups, "group", nil, "consumer group to show (repeatable; default: every orderpipe group)")
	cmd.Flags().StringVar(&output, "output", "table", "table or json")
	cmd.Flags().DurationVar(&watch, "watch", 0, "refresh at this interval until interrupted (0: run once)")
	return cmd
}

func (e *env) runLag(ctx context.Context, groups []string, named bool, output string, watch time.Duration) error {
	cl, err := kafka.NewClient(kafka.ClientConfig{Brokers: e.cfg.KafkaBrokers, ClientID: e.cfg.KafkaClientID + "-orderctl"})
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	if named {
		if err := knownGroups(ctx, adm, groups); err != nil {
			return err
		}
	}
	for first := true; ; first = false {
		rep, err := e.lagReport(ctx, adm, groups)
		switch {
		case err != nil && watch > 0 && ctx.Err() != nil:
			return nil
		case err != nil && watch > 0:
			// keep watching through a broker hiccup; the next refresh may succeed
			fmt.Fprintf(e.stdout, "at %s: %v\n", time.Now().UTC().Format(time.RFC3339), err)
			if !sleepCtx(ctx, watch) {
				return nil
			}
			continue
		case err != nil:
			return err
		}
		if output == "json" {
			err = json.NewEncoder(e.stdout).Encode(rep)
		} else {
			if watch > 0 {
				if !first {
					fmt.Fprintln(e.stdout)
				}
				fmt.Fprintf(e.stdout, "at %s\n", rep.At.Format(time.RFC3339))
			}
			err = writeLagTable(e.stdout, rep)
		}
		if err != nil {
			return fmt.Errorf("write lag: %w", err)
		}
		var failed []string
		for _, g := range rep.Groups {
			if g.Error != "" {
				failed = append(failed, g.Group+": "+g.Error)
			}
		}
		if watch == 0 {
			if len(failed) > 0 {
				return fmt.Errorf("lag of %s", strings.Join(failed, "; "))
			}
			return nil
		}
		if !sleepCtx(ctx, watch) {
			return nil
		}
	}
}

// knownGroups fails with a usage error naming every group in groups that is neither an orderpipe
// group (which may not have joined yet) nor known to the broker (a replay or re-drive group, say):
// a typo must not read as an idle group.
func knownGroups(ctx context.Context, adm *kadm.Client, groups []string) error {
	listed, err := adm.ListGroups(ctx)
	if err != nil {
		return fmt.Errorf("list consumer groups: %w", err)
	}
	var unknown []string
	for _, g := range groups {
		isOurs := slices.ContainsFunc(topology.Groups(), func(o topology.Group) bool { return o.Name == g })
		if _, ok := listed[g]; !ok && !isOurs {
			unknown = append(unknown, g)
		}
	}
	if len(unknown) > 0 {
		return usageErr("--group: unknown consumer group %s: not an orderpipe group, and the broker has no such group (%d groups listed)",
			strings.Join(unknown, ", "), len(listed))
	}
	return nil
}

// sleepCtx waits d and reports whether ctx is still alive.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// lagReport reads the lag of groups, then the timestamps of their oldest unconsumed records.
func (e *env) lagReport(ctx context.Context, adm *kadm.Client, groups []string) (LagReport, error) {
	lags, err := adm.Lag(ctx, groups...)
	if err != nil {
		return LagReport{}, fmt.Errorf("lag of %s: %w", strings.Join(groups, ","), err)
	}
	rep := LagReport{At: time.Now().UTC()}
	for _, name := range groups {
		l, ok := lags[name]
		g := GroupLagReport{Group: name, State: l.State, Members: []LagMember{}, Partitions: []PartitionLag{}}
		if !ok {
			g.State = "Dead"
		}
		switch err := l.Error(); {
		case errors.Is(err, kerr.GroupIDNotFound):
			// a group that never joined nor committed: nothing to report, not a failure
			g.State = "Dead"
		case err != nil:
			g.Error = err.Error()
		}
		for _, m := range l.Members {
			lm := LagMember{MemberID: m.MemberID, ClientID: m.ClientID, Host: m.ClientHost}
			if m.InstanceID != nil {
				lm.InstanceID = *m.InstanceID
			}
			g.Members = append(g.Members, lm)
		}
		slices.SortFunc(g.Members, func(a, b LagMember) int { return strings.Compare(a.MemberID, b.MemberID) })
		for _, pl := range l.Lag.Sorted() {
			p := PartitionLag{Topic: pl.Topic, Partition: pl.Partition, Committed: pl.Commit.At, End: pl.End.Offset, Lag: pl.Lag}
			if pl.Err != nil {
				p.Error = pl.Err.Error()
			}
			if pl.Member != nil {
				p.MemberID = pl.Member.MemberID
			}
			if p.Lag > 0 {
				g.TotalLag += p.Lag
			}
			g.Partitions = append(g.Partitions, p)
		}
		rep.Groups = append(rep.Groups, g)
	}
	if err := e.oldestUnconsumed(ctx, &rep, lags); err != nil {
		return LagReport{}, err
	}
	return rep, nil
}

type partitionAt struct {
	topic     string
	partition int32
	offset    int64
}

// oldestUnconsumed fills LagSeconds and OldestUnconsumed of every lagging partition by reading the
// record at its committed offset (or at the log start when the group never committed there).
// Each distinct offset of a partition is read once; several groups at different offsets of the
// same partition take several rounds, since a client consumes a partition from one offset.
func (e *env) oldestUnconsumed(ctx context.Context, rep *LagReport, lags kadm.DescribedGroupLags) error {
	var rounds []map[partitionAt]bool
	wanted := func(g string, p PartitionLag) (partitionAt, bool) {
		if p.Lag <= 0 || p.Error != "" {
			return partitionAt{}, false
		}
		at := p.Committed
		if at < 0 {
			pl, _ := lags[g].Lag.Lookup(p.Topic, p.Partition)
			if pl.Start.Err != nil {
				return partitionAt{}, false
			}
			at = pl.Start.Offset
		}
		return partitionAt{p.Topic, p.Partition, at}, true
	}
	for _, g := range rep.Groups {
		for _, p := range g.Partitions {
			k, ok := wanted(g.Group, p)
			if !ok {
				continue
			}
			placed := false
			for _, r := range rounds {
				if r[k] {
					placed = true
					break
				}
				free := true
				for o := range r {
					if o.topic == k.topic && o.partition == k.partition {
						free = false
						break
					}
				}
				if free {
					r[k], placed = true, true
					break
				}
			}
			if !placed {
				rounds = append(rounds, map[partitionAt]bool{k: true})
			}
		}
	}
	found := map[partitionAt]time.Time{}
	for _, r := range rounds {
		if err := e.readTimestamps(ctx, r, found); err != nil {
			return err
		}
	}
	for gi := range rep.Groups {
		g := &rep.Groups[gi]
		for pi := range g.Partitions {
			p := &g.Partitions[pi]
			k, ok := wanted(g.Group, *p)
			if !ok {
				continue
			}
			ts, ok := found[k]
			if !ok {
				p.LagSeconds = -1
				continue
			}
			ts = ts.UTC()
			p.OldestUnconsumed = &ts
			p.LagSeconds = max(rep.At.Sub(ts), 0).Seconds()
		}
	}
	return nil
}

// readTimestamps consumes each partition of round from its offset until the first record arrives
// or lagRecordTimeout passes, recording the record's timestamp in found.
func (e *env) readTimestamps(ctx context.Context, round map[partitionAt]bool, found map[partitionAt]time.Time) error {
	offsets := map[string]map[int32]kgo.Offset{}
	want := map[string]map[int32]partitionAt{}
	for k := range round {
		if offsets[k.topic] == nil {
			offsets[k.topic] = map[int32]kgo.Offset{}
			want[k.topic] = map[int32]partitionAt{}
		}
		offsets[k.topic][k.partition] = kgo.NewOffset().At(k.offset)
		want[k.topic][k.partition] = k
	}
	cl, err := kafka.NewClient(kafka.ClientConfig{Brokers: e.cfg.KafkaBrokers, ClientID: e.cfg.KafkaClientID + "-orderctl-lag"},
		kgo.ConsumePartitions(offsets), kgo.FetchMaxWait(500*time.Millisecond))
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, lagRecordTimeout)
	defer cancel()
	left := len(round)
	for left > 0 && ctx.Err() == nil {
		fs := cl.PollFetches(ctx)
		fs.EachRecord(func(r *kgo.Record) {
			k, ok := want[r.Topic][r.Partition]
			if !ok || r.Offset < k.offset {
				return
			}
			if _, seen := found[k]; !seen {
				found[k] = r.Timestamp
				left--
			}
		})
	}
	return nil
}

// writeLagTable prints one row per group, topic and partition (LAG-TIME last so its varying width
// does not move the other columns), then the members of every group that has any.
func writeLagTable(w io.Writer, rep LagReport) error {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "GROUP\tSTATE\tTOPIC\tPARTITION\tCOMMITTED\tEND\tLAG\tMEMBER\tLAG-TIME")
	var members [][2]string
	for _, g := range rep.Groups {
		clients := map[string]string{}
		for _, m := range g.Members {
			clients[m.MemberID] = m.ClientID + "@" + m.Host
			members = append(members, [2]string{g.Group, fmt.Sprintf("%s\t%s\t%s", m.MemberID, m.ClientID, m.Host)})
		}
		if g.Error != "" {
			fmt.Fprintf(tw, "%s\t%s\t-\t-\t-\t-\t-\t-\terror: %s\n", g.Group, dash(g.State), g.Error)
			continue
		}
		if len(g.Partitions) == 0 {
			fmt.Fprintf(tw, "%s\t%s\t-\t-\t-\t-\t-\t-\t-\n", g.Group, dash(g.State))
			continue
		}
		for _, p := range g.Partitions {
			committed := "-"
			if p.Committed >= 0 {
				committed = fmt.Sprint(p.Committed)
			}
			lag, age := fmt.Sprint(p.Lag), formatAge(p.LagSeconds)
			if p.Error != "" {
				lag, age = "-", "error: "+p.Error
			}
			member := "-"
			if p.MemberID != "" {
				member = clients[p.MemberID]
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%d\t%s\t%s\t%s\n",
				g.Group, dash(g.State), p.Topic, p.Partition, committed, p.End, lag, member, age)
		}
	}
	if len(members) > 0 {
		fmt.Fprintln(tw)
		fmt.Fprintln(tw, "GROUP\tMEMBER-ID\tCLIENT-ID\tHOST")
		for _, m := range members {
			fmt.Fprintf(tw, "%s\t%s\n", m[0], m[1])
		}
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// formatAge prints an age in seconds for people: "0s", "850ms", "12.3s", "2h4m10s"; "?" when unknown.
func formatAge(sec float64) string {
	if sec < 0 {
		return "?"
	}
	d := time.Duration(sec * float64(time.Second))
	switch {
	case d == 0:
		return "0s"
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	default:
		return d.Round(time.Second).String()
	}
}

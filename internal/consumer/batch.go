package consumer

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderpipe/orderpipe/internal/event"
)

// state of one record of a batch.
type state int

const (
	pending   state = iota // handled or about to be; not settled
	done                   // the handler finished it
	forwarded              // its retry or dead-letter copy was acknowledged
	deferred               // a retry copy before its not-before time, or after such a copy
	unsettled              // failed and kept: its partition is rewound to it (or the consumer stops)
)

type item struct {
	rec   *kgo.Record
	tier  int // 0 for a source record, n for a copy read from retry topic n
	state state
	err   error
	fwd   *kgo.Record // the retry or dead-letter copy to produce
	dead  bool        // fwd goes to the dead-letter topic
}

// process runs one polled batch through the handler, the in-place retries, the retry and
// dead-letter topics and the commit. ctx is Run's context (it ending stops retrying); hctx is the
// handler's context, which outlives ctx by up to DrainTimeout.
func (c *Consumer) process(ctx, hctx context.Context, recs []*kgo.Record) {
	now := time.Now()
	items := make([]item, len(recs))
	rewind := make(map[tp]time.Time) // partition -> resume time, rewound to its first kept record
	for i, r := range recs {
		it := &items[i]
		it.rec, it.tier = r, c.tiers[r.Topic]
		k := tp{r.Topic, r.Partition}
		if _, ok := rewind[k]; ok {
			it.state = deferred
			continue
		}
		if it.tier > 0 {
			if nb := notBefore(r); nb.After(now) {
				it.state = deferred
				rewind[k] = nb
			}
		}
	}

	c.handle(ctx, hctx, items)
	stopping := ctx.Err() != nil

	// Decide where each failed record goes.
	ndone := 0
	for i := range items {
		it := &items[i]
		if it.state != pending {
			continue
		}
		k := tp{it.rec.Topic, it.rec.Partition}
		if _, ok := rewind[k]; ok {
			// An earlier record of this partition is kept; this one comes again after it.
			it.state = deferred
			continue
		}
		if it.err == nil {
			it.state = done
			ndone++
			continue
		}
		class := ClassOf(it.err)
		o := originOf(it.rec, it.tier)
		switch {
		case class == ClassPermanent:
			it.fwd, it.dead = c.deadLetterRecord(it.rec, o, it.tier+1, now, it.err), true
		case stopping:
			it.state = unsettled
		case c.cfg.InPlaceOnly:
			it.state = unsettled
			rewind[k] = now.Add(c.nextBackoff(k, it.rec.Offset))
			c.m.records.WithLabelValues(c.cfg.Group, outcomeRetried).Inc()
			c.log.LogAttrs(ctx, slog.LevelWarn, "record retried in place", c.recAttrs(it.rec,
				slog.Int("attempt", c.attempts(k)), slog.Time("not_before", rewind[k]), slog.Any("error", it.err))...)
		case it.tier < len(c.cfg.RetryTiers):
			next := it.tier + 1
			nb := time.Now().Add(c.cfg.RetryTiers[it.tier])
			it.fwd = retryRecord(event.RetryTopic(c.cfg.Group, next), it.rec, o, next, nb, it.err)
		default:
			it.fwd, it.dead = c.deadLetterRecord(it.rec, o, it.tier+1, now, it.err), true
		}
	}

	c.m.records.WithLabelValues(c.cfg.Group, outcomeDone).Add(float64(ndone))
	c.forward(hctx, items, rewind)

	// Commit each partition's settled prefix; rewind (and pause) each partition to its first kept
	// record.
	next := make(map[tp]kgo.EpochOffset)
	first := make(map[tp]*kgo.Record)
	for i := range items {
		it := &items[i]
		k := tp{it.rec.Topic, it.rec.Partition}
		if _, blocked := first[k]; blocked {
			continue
		}
		if it.state == done || it.state == forwarded {
			next[k] = kgo.EpochOffset{Epoch: it.rec.LeaderEpoch, Offset: it.rec.Offset + 1}
			c.clearFailure(k, it.rec.Offset)
			continue
		}
		first[k] = it.rec
	}
	c.commit(hctx, next)
	if !stopping {
		// When stopping, kept records are simply not committed: the next owner gets them.
		c.rewind(first, rewind)
	}
}

// handle calls the handler for the pending records, then retries the transient failures in place
// for RetryInPlaceFor (in InPlaceOnly mode, not for a record already rewound to: it waits for its
// partition's backoff instead).
func (c *Consumer) handle(ctx, hctx context.Context, items []item) {
	var idx []int
	for i := range items {
		if items[i].state == pending {
			idx = append(idx, i)
		}
	}
	if len(idx) == 0 {
		return
	}
	c.call(hctx, items, idx)
	c.isolate(hctx, items, idx)

	deadline := time.Now().Add(c.cfg.RetryInPlaceFor)
	b := &backoff.ExponentialBackOff{InitialInterval: initialBackoff, RandomizationFactor: 0.2, Multiplier: 2, MaxInterval: c.cfg.MaxBackoff}
	b.Reset()
	for {
		idx = idx[:0]
		for i := range items {
			it := &items[i]
			if it.state != pending || it.err == nil || ClassOf(it.err) == ClassPermanent {
				continue
			}
			if c.cfg.InPlaceOnly && c.isFailing(tp{it.rec.Topic, it.rec.Partition}, it.rec.Offset) {
				continue
			}
			idx = append(idx, i)
		}
		if len(idx) == 0 {
			return
		}
		d := b.NextBackOff()
		if time.Now().Add(d).After(deadline) {
			return
		}
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		c.m.records.WithLabelValues(c.cfg.Group, outcomeRetried).Add(float64(len(idx)))
		c.call(hctx, items, idx)
		c.isolate(hctx, items, idx)
	}
}

// isolate makes every permanent verdict of a handler call belong to its own record. A handler
// that works a batch as a unit (one Postgres transaction) may not know which record made the
// unit fail and gives the same error to every record; dead-lettering them all would throw away a
// whole batch for one poison record. So when several records of items[idx] failed permanently
// with the same error (the same message: the batch's error, not theirs), those records are
// handed to the handler again in two halves (batch order kept, the first half first), and so on
// recursively: such a record is dead-lettered only after it failed permanently in a call where
// no other record shared its error, and the others are finished by the calls that no longer
// contain it. A permanent error of its own (a message no other record of the call has) is
// trusted as it is: calling that record again would only repeat its work. Records the handler
// finished in an earlier call are not called again (it decides nothing twice), and a record that
// comes out transient takes the ordinary retry path. One poison record among n costs about
// 2·log2(n) more calls, each smaller than the last.
func (c *Consumer) isolate(hctx context.Context, items []item, idx []int) {
	shared := map[string]int{}
	for _, i := range idx {
		if items[i].err != nil && ClassOf(items[i].err) == ClassPermanent {
			shared[items[i].err.Error()]++
		}
	}
	var perm []int
	for _, i := range idx {
		if items[i].err != nil && ClassOf(items[i].err) == ClassPermanent && shared[items[i].err.Error()] > 1 {
			perm = append(perm, i)
		}
	}
	if len(perm) < 2 || hctx.Err() != nil {
		return
	}
	half := len(perm) / 2
	for _, part := range [][]int{perm[:half], perm[half:]} {
		c.m.isolationCalls.WithLabelValues(c.cfg.Group).Inc()
		c.call(hctx, items, part)
		c.isolate(hctx, items, part)
	}
}

// call runs the handler on items[idx] (in batch order) and stores each record's error.
func (c *Consumer) call(hctx context.Context, items []item, idx []int) {
	recs := make([]*kgo.Record, len(idx))
	for j, i := range idx {
		recs[j] = items[i].rec
	}
	errs := c.h.Handle(hctx, recs)
	if len(errs) != 0 && len(errs) != len(recs) {
		err := Transient(fmt.Errorf("handler returned %d errors for %d records", len(errs), len(recs)))
		c.log.LogAttrs(hctx, slog.LevelError, "handler broke its contract", slog.String("group", c.cfg.Group), slog.Any("error", err))
		errs = make([]error, len(recs))
		for j := range errs {
			errs[j] = err
		}
	}
	for j, i := range idx {
		if len(errs) == 0 {
			items[i].err = nil
		} else {
			items[i].err = errs[j]
		}
	}
}

// forward produces the retry and dead-letter copies and waits for the broker's acknowledgement.
// A copy that cannot be written keeps its record (the partition is rewound to it and retried
// after a backoff); so does a dead letter whose OnDeadLetter hook fails.
func (c *Consumer) forward(hctx context.Context, items []item, rewind map[tp]time.Time) {
	var idx []int
	var recs []*kgo.Record
	for i := range items {
		if items[i].fwd != nil && items[i].state == pending {
			if items[i].dead && c.alreadyDeadLettered(hctx, &items[i]) {
				items[i].state = forwarded
				continue
			}
			idx = append(idx, i)
			recs = append(recs, items[i].fwd)
		}
	}
	if len(recs) == 0 {
		return
	}
	pctx, cancel := context.WithTimeout(hctx, forwardTimeout)
	// ProduceSync returns results in completion order, not in the order given: index them by
	// record so each item gets its own record's result.
	byRec := make(map[*kgo.Record]error, len(recs))
	for _, r := range c.cl.ProduceSync(pctx, recs...) {
		byRec[r.Record] = r.Err
	}
	cancel()
	keep := func(it *item, why string, err error) {
		it.state = unsettled
		k := tp{it.rec.Topic, it.rec.Partition}
		if _, ok := rewind[k]; !ok {
			rewind[k] = time.Now().Add(c.nextBackoff(k, it.rec.Offset))
		}
		c.log.LogAttrs(hctx, slog.LevelWarn, why, c.recAttrs(it.rec, slog.Any("error", err))...)
	}
	for j, i := range idx {
		it := &items[i]
		if err := byRec[recs[j]]; err != nil {
			keep(it, "record not forwarded; kept for a later retry", fmt.Errorf("produce to %s: %w", it.fwd.Topic, err))
			continue
		}
		if !it.dead {
			it.state = forwarded
			c.m.records.WithLabelValues(c.cfg.Group, outcomeRetryTopic).Inc()
			c.log.LogAttrs(hctx, slog.LevelDebug, "record sent to retry topic", c.recAttrs(it.rec,
				slog.String("retry_topic", it.fwd.Topic), slog.Any("error", it.err))...)
			continue
		}
		class := ClassOf(it.err)
		if c.cfg.OnDeadLetter != nil {
			if err := c.cfg.OnDeadLetter(hctx, it.rec, class, it.err); err != nil {
				keep(it, "dead letter hook failed; record kept", err)
				continue
			}
		}
		it.state = forwarded
		c.rememberDeadLetter(hctx, it)
		o := originOf(it.rec, it.tier)
		c.m.records.WithLabelValues(c.cfg.Group, outcomeDeadLettered).Inc()
		c.m.deadLetters.WithLabelValues(c.cfg.Group, o.topic, class).Inc()
		c.log.LogAttrs(hctx, slog.LevelWarn, "record dead-lettered", c.recAttrs(it.rec,
			slog.String("source_topic", o.topic), slog.Int("source_partition", int(o.partition)), slog.Int64("source_offset", o.offset),
			slog.String("dlq_topic", it.fwd.Topic), slog.Int("dlq_partition", int(recs[j].Partition)),
			slog.Int64("dlq_offset", recs[j].Offset), slog.Int("attempts", it.tier+1),
			slog.String("class", class), slog.Any("error", it.err))...)
	}
}

// rewind moves each partition back to its first kept record and pauses it until its resume time
// (no pause for the zero time). Later polls deliver the record again.
func (c *Consumer) rewind(first map[tp]*kgo.Record, resume map[tp]time.Time) {
	if len(first) == 0 {
		return
	}
	set := make(map[string]map[int32]kgo.EpochOffset)
	pause := make(map[string][]int32)
	c.mu.Lock()
	for k, r := range first {
		if set[k.topic] == nil {
			set[k.topic] = make(map[int32]kgo.EpochOffset)
		}
		set[k.topic][k.partition] = kgo.EpochOffset{Epoch: r.LeaderEpoch, Offset: r.Offset}
		if at := resume[k]; !at.IsZero() {
			pause[k.topic] = append(pause[k.topic], k.partition)
			c.resumeAt[k] = at
		}
	}
	c.mu.Unlock()
	if len(pause) > 0 {
		c.cl.PauseFetchPartitions(pause)
	}
	c.cl.SetOffsets(set)
}

// nextBackoff returns how long partition k waits before its record at offset is tried again.
func (c *Consumer) nextBackoff(k tp, offset int64) time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	f, ok := c.failing[k]
	if !ok || f.offset != offset {
		f = &failure{offset: offset, b: &backoff.ExponentialBackOff{
			InitialInterval: initialBackoff, RandomizationFactor: 0.2, Multiplier: 2, MaxInterval: c.cfg.MaxBackoff}}
		f.b.Reset()
		c.failing[k] = f
	}
	f.attempts++
	return f.b.NextBackOff()
}

func (c *Consumer) attempts(k tp) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if f, ok := c.failing[k]; ok {
		return f.attempts
	}
	return 0
}

func (c *Consumer) isFailing(k tp, offset int64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	f, ok := c.failing[k]
	return ok && f.offset == offset
}

func (c *Consumer) clearFailure(k tp, offset int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if f, ok := c.failing[k]; ok && f.offset <= offset {
		delete(c.failing, k)
	}
}

func (c *Consumer) recAttrs(r *kgo.Record, extra ...slog.Attr) []slog.Attr {
	attrs := []slog.Attr{
		slog.String("group", c.cfg.Group),
		slog.String("topic", r.Topic),
		slog.Int("partition", int(r.Partition)),
		slog.Int64("offset", r.Offset),
		slog.String("key", string(r.Key)),
	}
	if id, ok := header(r, event.HeaderID); ok {
		attrs = append(attrs, slog.String("event_id", id))
	}
	return append(attrs, extra...)
}

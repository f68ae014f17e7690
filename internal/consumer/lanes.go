package consumer

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
)

// lanes prefers the priority topic over every other topic the consumer reads (the standard lane:
// the other source topics and the retry topics). Its methods run on the poll loop's goroutine,
// except forget (rebalance callbacks).
//
// The standard lane is paused (PauseFetchTopics) while the priority topic has more than a batch
// waiting: a poll was filled with priority records, or returned priority records of a partition
// whose high watermark, in that fetch, was past the last record returned. A poll whose priority
// records were all there was resumes the lane, as does one that waits out its timeout without any
// record. So priority records the consumer keeps up with (each batch takes all of them) never hold
// standard records back; a burst of them does, until it is worked off. (An empty poll right after a pause is not a drained topic: it is
// the buffered standard records being dropped.)
//
// A lane paused for MaxStarve is resumed regardless, and stays resumed until a batch has carried
// standard records (an empty lane costs nothing resumed), so it makes progress about every
// MaxStarve while a priority backlog lasts: MaxStarve, plus the time to work off the priority
// records already fetched.
//
// Pausing a topic is client state, kept across rebalances. Records of a paused topic that were
// already fetched but not polled are dropped from the buffer without moving the partition's
// position, so they are fetched again on resume: nothing is skipped.
type lanes struct {
	cl        *kgo.Client
	priority  string
	standard  []string
	maxStarve time.Duration
	gauge     prometheus.Gauge

	mu     sync.Mutex
	behind map[int32]bool // priority partition -> records past the last one polled, as last seen
	full   bool           // the last poll with priority records returned as many as it could

	paused   bool
	pausedAt time.Time
	breaking bool // resumed because the standard lane starved
}

func (l *lanes) enabled() bool { return l != nil && l.priority != "" }

// beforePoll ends a pause that has lasted MaxStarve, even if every poll returns priority records.
func (l *lanes) beforePoll(now time.Time) {
	if l.enabled() && l.paused && now.Sub(l.pausedAt) >= l.maxStarve {
		l.resume()
		l.breaking = true
	}
}

// observe notes whether a poll (of at most max records) left priority records behind: it was
// filled with priority records, or a priority partition's high watermark in its fetch was past
// the last record returned.
func (l *lanes) observe(fetches kgo.Fetches, max int) {
	if !l.enabled() {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	fetches.EachPartition(func(p kgo.FetchTopicPartition) {
		if p.Topic != l.priority || len(p.Records) == 0 {
			return
		}
		n += len(p.Records)
		last := p.Records[len(p.Records)-1].Offset
		if p.HighWatermark > last+1 {
			l.behind[p.Partition] = true
		} else {
			delete(l.behind, p.Partition)
		}
	})
	if n > 0 {
		l.full = n >= max
	}
}

// forget drops the backlog of priority partitions this member no longer owns.
func (l *lanes) forget(parts map[string][]int32) {
	if !l.enabled() {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, p := range parts[l.priority] {
		delete(l.behind, p)
	}
}

// backlog reports whether a priority partition was behind when last seen; idle (a poll that
// returned nothing because its wait ran out) means none is.
func (l *lanes) backlog(idle bool) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if idle {
		clear(l.behind)
		l.full = false
	}
	return l.full || len(l.behind) > 0
}

// afterPoll updates the pause from what a poll returned (observe has seen it); idle means it
// returned nothing because its wait ran out.
func (l *lanes) afterPoll(now time.Time, hasStandard, idle bool) {
	if !l.enabled() {
		return
	}
	backlog := l.backlog(idle)
	switch {
	case l.paused:
		if !backlog {
			l.resume()
		}
	case l.breaking:
		if hasStandard {
			l.breaking = false
			if backlog {
				l.pause(now)
			}
		}
	case backlog:
		l.pause(now)
	}
}

// pollWait bounds a poll while the standard lane is paused, so a drained priority topic resumes
// it promptly.
func (l *lanes) pollWait(d time.Duration) time.Duration {
	if l.enabled() && l.paused {
		return min(d, 50*time.Millisecond)
	}
	return d
}

func (l *lanes) pause(now time.Time) {
	l.cl.PauseFetchTopics(l.standard...)
	l.paused, l.pausedAt = true, now
	l.gauge.Set(1)
}

func (l *lanes) resume() {
	l.cl.ResumeFetchTopics(l.standard...)
	l.paused = false
	l.gauge.Set(0)
}

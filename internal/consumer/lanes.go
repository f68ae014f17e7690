package consumer

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
)

// lanes prefers the priority topic over every other topic the consumer reads (the standard lane:
// the other source topics and the retry topics). It runs on the poll loop's goroutine only.
//
// After a batch with priority records the standard lane is paused (PauseFetchTopics); once a poll
// waits out its timeout without any record (the priority topic is drained) it is resumed. (An
// empty poll right after a pause is not a drained topic: it is the buffered standard records being
// dropped.) A lane paused for
// MaxStarve is resumed regardless, and stays resumed until a batch has carried standard records
// (or another MaxStarve passed without any: the lane is empty), so it makes progress at least
// about every MaxStarve while priority records keep coming.
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

	paused   bool
	pausedAt time.Time
	breaking bool // resumed because the standard lane starved
	breakAt  time.Time
}

func (l *lanes) enabled() bool { return l != nil && l.priority != "" }

// beforePoll ends a pause that has lasted MaxStarve, even if every poll returns priority records.
func (l *lanes) beforePoll(now time.Time) {
	if l.enabled() && l.paused && now.Sub(l.pausedAt) >= l.maxStarve {
		l.resume()
		l.breaking, l.breakAt = true, now
	}
}

// afterPoll updates the pause from what a poll returned; idle means it returned nothing because
// its wait ran out.
func (l *lanes) afterPoll(now time.Time, hasPriority, hasStandard, idle bool) {
	if !l.enabled() {
		return
	}
	switch {
	case l.paused:
		if idle || (!hasPriority && hasStandard) {
			l.resume()
		}
	case l.breaking:
		if hasStandard || now.Sub(l.breakAt) >= l.maxStarve {
			l.breaking = false
			if hasPriority {
				l.pause(now)
			}
		}
	case hasPriority:
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

// Package topology says which Kafka topics and consumer groups orderpipe has, with how many
// partitions, retry tiers and retention, so provisioning (orderctl topics, orderctl dev) never
// relies on broker auto-creation and every group's retry and dead-letter topics exist.
package topology

import (
	"time"

	"github.com/orderpipe/orderpipe/internal/event"
	"github.com/orderpipe/orderpipe/internal/kafka"
)

// Settings size the topics.
type Settings struct {
	Partitions  int32 // partitions of every topic; consumers scale up to this many members per group
	Replication int16 // 3 on a production cluster, 1 on the development broker
}

// Consumer groups. Their names are stable: committed offsets live under them.
const (
	GroupOrderWorker   = "order-worker"
	GroupInventorySync = "inventory-sync"
	GroupNotifier      = "notifier"
	GroupReports       = "reports"
)

// Group describes a consumer group's retry tiers (delays of <group>.retry.1..N; none means the
// group retries in place) and that it has a dead-letter topic <group>.dlq.
type Group struct {
	Name       string
	RetryTiers []time.Duration
}

// Groups lists every consumer group with its default retry tiers.
func Groups() []Group {
	return []Group{
		{Name: GroupOrderWorker, RetryTiers: []time.Duration{30 * time.Second, 5 * time.Minute}},
		{Name: GroupInventorySync}, // stock events keep their order: retries happen in place
		{Name: GroupNotifier, RetryTiers: []time.Duration{time.Minute, 10 * time.Minute}},
		{Name: GroupReports, RetryTiers: []time.Duration{time.Minute}},
	}
}

// Topics lists every topic with its partitions and retention. Order topics keep 7 days so ops
// can replay after an incident; dead-letter topics keep 30 days, so a parked record outlives a
// long weekend.
func Topics(s Settings) []kafka.TopicSpec {
	const day = int64(24 * 60 * 60 * 1000)
	spec := func(name string, retention int64) kafka.TopicSpec {
		return kafka.TopicSpec{Name: name, Partitions: s.Partitions, Replication: s.Replication, RetentionMs: retention}
	}
	out := []kafka.TopicSpec{
		spec(event.TopicOrdersPlaced, 7*day),
		spec(event.TopicOrdersPlacedPriority, 7*day),
		spec(event.TopicOrderEvents, 7*day),
		spec(event.TopicInventoryStock, 7*day),
	}
	for _, g := range Groups() {
		for i := range g.RetryTiers {
			out = append(out, spec(event.RetryTopic(g.Name, i+1), 7*day))
		}
		out = append(out, spec(event.DeadLetterTopic(g.Name), 30*day))
	}
	return out
}

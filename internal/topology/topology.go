// Package topology says which Kafka topics orderpipe needs, with how many partitions and what
// retention, so provisioning (orderctl topics, orderctl dev) never relies on broker
// auto-creation.
package topology

import (
	"github.com/orderpipe/orderpipe/internal/event"
	"github.com/orderpipe/orderpipe/internal/kafka"
)

// Settings size the topics.
type Settings struct {
	Partitions  int32 // partitions of every topic; consumers scale up to this many members per group
	Replication int16 // 3 on a production cluster, 1 on the development broker
}

// Topics lists every topic with its partitions and retention. Order topics keep 7 days so ops
// can replay after an incident; stock events keep 7 days too (snapshots make older history moot).
func Topics(s Settings) []kafka.TopicSpec {
	week := int64(7 * 24 * 60 * 60 * 1000)
	return []kafka.TopicSpec{
		{Name: event.TopicOrdersPlaced, Partitions: s.Partitions, Replication: s.Replication, RetentionMs: week},
		{Name: event.TopicOrdersPlacedPriority, Partitions: s.Partitions, Replication: s.Replication, RetentionMs: week},
		{Name: event.TopicOrderEvents, Partitions: s.Partitions, Replication: s.Replication, RetentionMs: week},
		{Name: event.TopicInventoryStock, Partitions: s.Partitions, Replication: s.Replication, RetentionMs: week},
	}
}

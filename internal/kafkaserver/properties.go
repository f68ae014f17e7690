// Package kafkaserver runs a real Apache Kafka cluster on loopback: N combined broker and
// controller nodes (KRaft) as java processes, from the jars that deploy/kafka/pom.xml resolves
// from Maven Central. `orderctl broker --engine kafka`, `orderctl dev --broker kafka` and the
// real-broker test tier (internal/testenv) start it; its server properties are the ones
// docker-compose.yml gives the production-shaped broker, scaled to N nodes.
package kafkaserver

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// DefaultClusterID is docker-compose.yml's CLUSTER_ID (16 bytes, base64url), so a data directory
// formatted by either keeps one identity.
const DefaultClusterID = "kHWQUoOPQPCAN1y1BODsFA"

// Node is one combined broker and controller.
type Node struct {
	ID             int
	BrokerPort     int // PLAINTEXT listener, what clients bootstrap from
	ControllerPort int // CONTROLLER listener, the KRaft quorum
	LogDir         string
}

// BrokerAddr is the node's client address on loopback.
func (n Node) BrokerAddr() string { return fmt.Sprintf("127.0.0.1:%d", n.BrokerPort) }

// ReplicationFactor is the replication factor of the internal topics (offsets, transactions,
// share-group state) on a cluster of n nodes: 1 on one node, as in docker-compose.yml, and 3 from
// three nodes on, as on a production cluster.
func ReplicationFactor(n int) int { return min(n, 3) }

// MinInsyncReplicas is min.insync.replicas on a cluster of n nodes: 1 on one node (compose), 2
// with replication 3, so an acks=all write survives the loss of any one broker.
func MinInsyncReplicas(n int) int { return max(1, ReplicationFactor(n)-1) }

// Properties returns the server properties of node in a cluster of nodes: docker-compose.yml's
// Kafka settings with loopback addresses, one PLAINTEXT listener for clients (compose's PLAINTEXT
// and EXTERNAL listeners differ only in the host name they advertise, which on loopback is the
// same), and replication scaled to the number of nodes. overrides are applied last.
func Properties(nodes []Node, node Node, overrides map[string]string) map[string]string {
	voters := make([]string, len(nodes))
	for i, n := range nodes {
		voters[i] = fmt.Sprintf("%d@127.0.0.1:%d", n.ID, n.ControllerPort)
	}
	rf := strconv.Itoa(ReplicationFactor(len(nodes)))
	isr := strconv.Itoa(MinInsyncReplicas(len(nodes)))
	p := map[string]string{
		"node.id":                                          strconv.Itoa(node.ID),
		"process.roles":                                    "broker,controller",
		"controller.quorum.voters":                         strings.Join(voters, ","),
		"controller.listener.names":                        "CONTROLLER",
		"listeners":                                        fmt.Sprintf("PLAINTEXT://127.0.0.1:%d,CONTROLLER://127.0.0.1:%d", node.BrokerPort, node.ControllerPort),
		"advertised.listeners":                             fmt.Sprintf("PLAINTEXT://127.0.0.1:%d", node.BrokerPort),
		"listener.security.protocol.map":                   "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
		"inter.broker.listener.name":                       "PLAINTEXT",
		"log.dirs":                                         node.LogDir,
		"auto.create.topics.enable":                        "false",
		"offsets.topic.replication.factor":                 rf,
		"transaction.state.log.replication.factor":         rf,
		"transaction.state.log.min.isr":                    isr,
		"share.coordinator.state.topic.replication.factor": rf,
		"share.coordinator.state.topic.min.isr":            isr,
		"min.insync.replicas":                              isr,
		"group.initial.rebalance.delay.ms":                 "0",
	}
	maps.Copy(p, overrides)
	return p
}

// FormatProperties renders properties as a Java properties file, sorted by key.
func FormatProperties(p map[string]string) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(p)) {
		fmt.Fprintf(&b, "%s=%s\n", k, p[k])
	}
	return b.String()
}

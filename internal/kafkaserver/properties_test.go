package kafkaserver

import (
	"encoding/xml"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// composeKafka returns the kafka service of docker-compose.yml: its image and its environment.
func composeKafka(t *testing.T) (image string, env map[string]string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "docker-compose.yml"))
	if err != nil {
		t.Fatalf("read docker-compose.yml: %v", err)
	}
	var doc struct {
		Services map[string]struct {
			Image       string            `yaml:"image"`
			Environment map[string]string `yaml:"environment"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("parse docker-compose.yml: %v", err)
	}
	svc, ok := doc.Services["kafka"]
	if !ok {
		t.Fatal("docker-compose.yml has no kafka service")
	}
	return svc.Image, svc.Environment
}

// composeProperties turns the apache/kafka image's KAFKA_* variables into server properties the
// way the image does (KAFKA_LOG_DIRS -> log.dirs).
func composeProperties(env map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range env {
		if name, ok := strings.CutPrefix(k, "KAFKA_"); ok {
			out[strings.ToLower(strings.ReplaceAll(name, "_", "."))] = v
		}
	}
	return out
}

func testNodes(n int) []Node {
	nodes := make([]Node, n)
	for i := range nodes {
		nodes[i] = Node{ID: i + 1, BrokerPort: 29092 + i, ControllerPort: 29192 + i, LogDir: "/tmp/x/node-" + strconv.Itoa(i+1)}
	}
	return nodes
}

// placement are the properties that name hosts, ports and directories: on loopback they differ
// from compose's by design, and are checked for shape instead of value.
var placement = []string{"node.id", "controller.quorum.voters", "listeners", "advertised.listeners",
	"listener.security.protocol.map", "log.dirs"}

func TestSingleNodePropertiesAreTheComposeBrokers(t *testing.T) {
	_, env := composeKafka(t)
	want := composeProperties(env)
	nodes := testNodes(1)
	got := Properties(nodes, nodes[0], nil)

	for k := range want {
		if _, ok := got[k]; !ok {
			t.Errorf("compose sets %s=%s; the loopback node does not set it", k, want[k])
		}
	}
	for k, v := range got {
		w, ok := want[k]
		if !ok {
			t.Errorf("the loopback node sets %s=%s; compose does not (add it to docker-compose.yml or drop it)", k, v)
			continue
		}
		if !slices.Contains(placement, k) && v != w {
			t.Errorf("%s: got %q, want compose's %q", k, v, w)
		}
	}
	if got["node.id"] != want["node.id"] {
		t.Errorf("node.id: got %s, want %s", got["node.id"], want["node.id"])
	}
	// One voter, the node itself, as in compose.
	if g, w := voterIDs(got["controller.quorum.voters"]), voterIDs(want["controller.quorum.voters"]); !slices.Equal(g, w) {
		t.Errorf("controller.quorum.voters ids: got %v, want %v", g, w)
	}
	// Every listener the node has exists in compose with the same security protocol, and the
	// controller and inter-broker listeners are the ones compose names.
	composeMap := protocolMap(want["listener.security.protocol.map"])
	for name, proto := range protocolMap(got["listener.security.protocol.map"]) {
		if composeMap[name] != proto {
			t.Errorf("listener %s: protocol %s, compose has %q", name, proto, composeMap[name])
		}
	}
	for _, l := range strings.Split(got["listeners"], ",") {
		name, _, _ := strings.Cut(l, "://")
		if _, ok := composeMap[name]; !ok {
			t.Errorf("listener %s is not one of compose's", name)
		}
		if !strings.HasPrefix(strings.TrimPrefix(l, name+"://"), "127.0.0.1:") {
			t.Errorf("listener %s does not bind loopback", l)
		}
	}
	if id, ok := env["CLUSTER_ID"]; !ok || id != DefaultClusterID {
		t.Errorf("CLUSTER_ID: compose has %q, DefaultClusterID is %q", id, DefaultClusterID)
	}
}

func TestPropertiesScaleWithTheNumberOfNodes(t *testing.T) {
	for _, tc := range []struct{ nodes, rf, isr int }{{1, 1, 1}, {2, 2, 1}, {3, 3, 2}, {5, 3, 2}} {
		nodes := testNodes(tc.nodes)
		for _, n := range nodes {
			p := Properties(nodes, n, nil)
			for _, k := range []string{"offsets.topic.replication.factor", "transaction.state.log.replication.factor", "share.coordinator.state.topic.replication.factor"} {
				if p[k] != strconv.Itoa(tc.rf) {
					t.Errorf("%d nodes, node %d: %s = %s, want %d", tc.nodes, n.ID, k, p[k], tc.rf)
				}
			}
			for _, k := range []string{"min.insync.replicas", "transaction.state.log.min.isr", "share.coordinator.state.topic.min.isr"} {
				if p[k] != strconv.Itoa(tc.isr) {
					t.Errorf("%d nodes, node %d: %s = %s, want %d", tc.nodes, n.ID, k, p[k], tc.isr)
				}
			}
			if got := len(voterIDs(p["controller.quorum.voters"])); got != tc.nodes {
				t.Errorf("%d nodes: %d voters, want every node", tc.nodes, got)
			}
			if p["node.id"] != strconv.Itoa(n.ID) {
				t.Errorf("node.id = %s, want %d", p["node.id"], n.ID)
			}
		}
	}
}

func TestOverridesWin(t *testing.T) {
	nodes := testNodes(1)
	p := Properties(nodes, nodes[0], map[string]string{"group.min.session.timeout.ms": "100", "min.insync.replicas": "1"})
	if p["group.min.session.timeout.ms"] != "100" {
		t.Errorf("override not applied: %v", p)
	}
}

// TestPomPinsTheComposeKafkaVersion keeps deploy/kafka/pom.xml and the compose image in step.
func TestPomPinsTheComposeKafkaVersion(t *testing.T) {
	image, _ := composeKafka(t)
	name, tag, ok := strings.Cut(image, ":")
	if !ok || name != "apache/kafka" {
		t.Fatalf("compose kafka image %q: want apache/kafka:<version>", image)
	}
	b, err := os.ReadFile(filepath.Join("..", "..", PomPath))
	if err != nil {
		t.Fatal(err)
	}
	var pom struct {
		Properties struct {
			KafkaVersion string `xml:"kafka.version"`
		} `xml:"properties"`
		Dependencies []struct {
			GroupID    string `xml:"groupId"`
			ArtifactID string `xml:"artifactId"`
			Version    string `xml:"version"`
		} `xml:"dependencies>dependency"`
	}
	if err := xml.Unmarshal(b, &pom); err != nil {
		t.Fatalf("parse pom: %v", err)
	}
	if pom.Properties.KafkaVersion != tag {
		t.Errorf("pom kafka.version = %q, compose runs apache/kafka:%s", pom.Properties.KafkaVersion, tag)
	}
	var server bool
	for _, d := range pom.Dependencies {
		if d.GroupID == "org.apache.kafka" {
			if d.Version != "${kafka.version}" {
				t.Errorf("%s:%s pins %q, want ${kafka.version}", d.GroupID, d.ArtifactID, d.Version)
			}
			server = server || d.ArtifactID == "kafka_2.13"
		}
	}
	if !server {
		t.Error("pom does not depend on org.apache.kafka:kafka_2.13 (the server)")
	}
}

func voterIDs(voters string) []string {
	var ids []string
	for v := range strings.SplitSeq(voters, ",") {
		id, _, _ := strings.Cut(v, "@")
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

func protocolMap(s string) map[string]string {
	out := map[string]string{}
	for kv := range strings.SplitSeq(s, ",") {
		k, v, _ := strings.Cut(kv, ":")
		out[k] = v
	}
	return out
}

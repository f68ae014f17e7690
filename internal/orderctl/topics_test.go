package orderctl_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderpipe/orderpipe/internal/orderctl"
	"github.com/orderpipe/orderpipe/internal/testenv"
)

// A broker provisioned like testenv.Kafka (3 partitions each), then damaged: orders.events
// deleted, inventory.stock's retention cut to a day. Without flags topics reports both and
// changes nothing (exit 3, golden); --create --fix-retention repairs both (golden); then every
// topic matches (exit 0, JSON).
func TestTopicsVerifyAndFix(t *testing.T) {
	t.Parallel()
	cluster := testenv.Kafka(t)
	ctx := t.Context()
	cl, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	if _, err := adm.DeleteTopics(ctx, "orders.events"); err != nil {
		t.Fatal(err)
	}
	day := "86400000"
	if _, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "retention.ms", Value: &day}}, "inventory.stock"); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"KAFKA_BROKERS": strings.Join(cluster.ListenAddrs(), ","), "KAFKA_PARTITIONS": "3"}
	run := func(args ...string) (int, string) {
		var out bytes.Buffer
		err := orderctl.Run(ctx, args, func(k string) string { return env[k] }, &out)
		return orderctl.Code(err), out.String()
	}

	for range 2 { // the check changes nothing: the second run finds the same
		code, out := run("topics")
		if code != orderctl.ExitDiff {
			t.Fatalf("topics: exit %d, want 3\n%s", code, out)
		}
		golden(t, "topics_diff.golden", out)
	}
	code, out := run("topics", "--create", "--fix-retention")
	if code != orderctl.ExitOK {
		t.Fatalf("topics --create --fix-retention: exit %d, want 0\n%s", code, out)
	}
	golden(t, "topics_fixed.golden", out)

	code, out = run("topics", "--output", "json")
	if code != orderctl.ExitOK {
		t.Fatalf("topics --output json: exit %d, want 0\n%s", code, out)
	}
	var rep orderctl.TopicsReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("decode %q: %v", out, err)
	}
	if rep.Differences != 0 || len(rep.Topics) != 13 {
		t.Fatalf("got %d topics, %d differences, want 13 topics matching", len(rep.Topics), rep.Differences)
	}
	for _, r := range rep.Topics {
		if r.State != "ok" || r.Partitions != 3 || r.RetentionMs != r.WantRetentionMs || r.RetentionMs <= 0 {
			t.Fatalf("topic %+v, want ok with 3 partitions and its retention", r)
		}
	}

	// More partitions wanted than the broker has: reported, never changed, even with --create.
	env["KAFKA_PARTITIONS"] = "4"
	code, out = run("topics", "--create", "--output", "json")
	if code != orderctl.ExitDiff {
		t.Fatalf("KAFKA_PARTITIONS=4: exit %d, want 3\n%s", code, out)
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("decode %q: %v", out, err)
	}
	if rep.Differences != 13 || rep.Topics[0].State != "partitions differ" || rep.Topics[0].Partitions != 3 {
		t.Fatalf("got %+v, want every topic reported with 3 of 4 partitions", rep.Topics[0])
	}
}

// Bad arguments of topics exit 2.
func TestTopicsBadUsage(t *testing.T) {
	t.Parallel()
	badUsage(t, []usageCase{
		{[]string{"topics", "--output", "yaml"}, "--output: want table or json"},
		{[]string{"topics", "extra"}, `unknown command "extra"`},
		{[]string{"topics", "--delete"}, "unknown flag: --delete"},
	})
}

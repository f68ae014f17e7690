package orderctl

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/orderpipe/orderpipe/internal/kafka"
	"github.com/orderpipe/orderpipe/internal/topology"
)

func (e *env) topicsCmd() *cobra.Command {
	var create bool
	cmd := &cobra.Command{
		Use:   "topics",
		Short: "Verify every orderpipe topic exists with its partitions; --create creates the missing ones",
		Long: "Compares the broker's topics with the ones orderpipe needs and prints each with its state.\n" +
			"Without --create nothing changes and the exit code is 3 when something differs.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			states, err := e.ensureTopics(cmd.Context(), create)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(e.stdout, 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "TOPIC\tPARTITIONS\tWANT\tSTATE")
			diff := false
			for _, s := range states {
				state := "ok"
				switch {
				case s.Created:
					state = "created"
				case !s.Exists:
					state, diff = "missing", true
				case s.Problem != "":
					state, diff = s.Problem, true
				}
				fmt.Fprintf(tw, "%s\t%d\t%d\t%s\n", s.Spec.Name, s.Partitions, s.Spec.Partitions, state)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			if diff {
				return &exitError{code: ExitDiff, err: fmt.Errorf("topics differ from the expected layout (run with --create to create missing ones)")}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&create, "create", false, "create missing topics")
	return cmd
}

func (e *env) ensureTopics(ctx context.Context, create bool) ([]kafka.TopicState, error) {
	cl, err := kafka.NewClient(kafka.ClientConfig{Brokers: e.cfg.KafkaBrokers, ClientID: e.cfg.KafkaClientID + "-orderctl"})
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	specs := topology.Topics(topology.Settings{Partitions: e.cfg.Partitions, Replication: e.cfg.Replication})
	return kafka.EnsureTopics(ctx, kadm.NewClient(cl), specs, create)
}

func (e *env) brokerCmd() *cobra.Command {
	var dataDir string
	var ports []int
	var sync bool
	cmd := &cobra.Command{
		Use:   "broker",
		Short: "Run a standalone Kafka-protocol broker (kfake) on loopback for local development",
		Long: "Runs franz-go's kfake broker on 127.0.0.1. With --data-dir, topics, records and committed\n" +
			"offsets survive a restart. Production uses a real Kafka cluster; services cannot tell\n" +
			"the difference. Stops on SIGINT/SIGTERM, flushing the data directory.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dataDir != "" {
				abs, err := filepath.Abs(dataDir)
				if err != nil {
					return err
				}
				dataDir = abs
			}
			b, err := kafka.StartBroker(kafka.BrokerConfig{Ports: ports, DataDir: dataDir, Sync: sync}, os.Stderr)
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "broker listening on %v (data dir %q)\n", b.Addrs(), dataDir)
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return b.Run(ctx)
		},
	}
	cmd.Flags().StringVar(&dataDir, "data-dir", ".data/kafka", "directory for topics, records and offsets (empty: in memory)")
	cmd.Flags().IntSliceVar(&ports, "port", []int{9092}, "listen port per broker node (several ports: several nodes)")
	cmd.Flags().BoolVar(&sync, "sync", false, "fsync every write (slower; survives a machine crash)")
	return cmd
}

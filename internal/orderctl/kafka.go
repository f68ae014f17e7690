package orderctl

import (
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/orderpipe/orderpipe/internal/kafka"
)

func (e *env) brokerCmd() *cobra.Command {
	var dataDir string
	var ports []int
	var sync bool
	var controlAddr string
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
			if controlAddr != "" {
				return runBrokerWithControl(ctx, b, controlAddr, e.stdout)
			}
			return b.Run(ctx)
		},
	}
	cmd.Flags().StringVar(&controlAddr, "control-addr", "", "loopback address of the fault-injection control endpoint (chaos runs; empty: none)")
	cmd.Flags().StringVar(&dataDir, "data-dir", ".data/kafka", "directory for topics, records and offsets (empty: in memory)")
	cmd.Flags().IntSliceVar(&ports, "port", []int{9092}, "listen port per broker node (several ports: several nodes)")
	cmd.Flags().BoolVar(&sync, "sync", false, "fsync every write (slower; survives a machine crash)")
	return cmd
}

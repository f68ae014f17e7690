package orderctl

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/orderpipe/orderpipe/internal/kafka"
	"github.com/orderpipe/orderpipe/internal/kafkaserver"
)

// Broker engines of `orderctl broker`.
const (
	engineKfake = "kfake" // franz-go's Kafka-protocol broker in this process; no Java needed
	engineKafka = "kafka" // Apache Kafka (deploy/kafka/pom.xml) as java processes
)

type brokerFlags struct {
	engine          string
	nodes           int
	dataDir         string
	ports           []int
	controllerPorts []int
	sync            bool
	controlAddr     string
	heap            string
}

func (e *env) brokerCmd() *cobra.Command {
	var f brokerFlags
	cmd := &cobra.Command{
		Use:   "broker",
		Short: "Run a Kafka broker on loopback for local development: kfake (default) or real Apache Kafka",
		Long: "--engine kfake (default) runs franz-go's kfake, a Kafka-protocol broker written in Go, in\n" +
			"this process. With --data-dir, topics, records and committed offsets survive a restart.\n\n" +
			"--engine kafka runs Apache Kafka, the version docker-compose.yml runs, resolved from Maven\n" +
			"Central by deploy/kafka/pom.xml (the first start downloads it; later starts are offline):\n" +
			"it formats KRaft storage under --data-dir (once) and starts --nodes combined broker and\n" +
			"controller nodes as java processes, with compose's server properties scaled to the number\n" +
			"of nodes. Needs java (17+) and mvn. Broker ports are --port (one per node, or the first\n" +
			"and the ports after it); controller ports are --controller-port or free ports.\n\n" +
			"Services cannot tell the engines apart. Stops on SIGINT/SIGTERM: kfake flushes its data\n" +
			"directory; Kafka nodes get SIGTERM (controlled shutdown) and are killed after 30 s.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.engine == engineKafka && !cmd.Flags().Changed("data-dir") {
				f.dataDir = ".data/apache-kafka" // not kfake's directory: the formats differ
			}
			if f.dataDir != "" {
				abs, err := filepath.Abs(f.dataDir)
				if err != nil {
					return err
				}
				f.dataDir = abs
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			switch f.engine {
			case engineKfake:
				return e.runKfake(ctx, f)
			case engineKafka:
				return e.runKafka(ctx, f)
			default:
				return usageErr("--engine %q: want %s or %s", f.engine, engineKfake, engineKafka)
			}
		},
	}
	cmd.Flags().StringVar(&f.engine, "engine", engineKfake, "broker implementation: kfake (in process) or kafka (Apache Kafka, needs java and mvn)")
	cmd.Flags().IntVar(&f.nodes, "nodes", 1, "number of combined broker and controller nodes (engine kafka)")
	cmd.Flags().StringVar(&f.controlAddr, "control-addr", "", "loopback address of the fault-injection control endpoint (engine kfake, chaos runs; empty: none)")
	cmd.Flags().StringVar(&f.dataDir, "data-dir", ".data/kafka", "directory for topics, records and offsets (engine kfake: empty keeps them in memory; engine kafka default: .data/apache-kafka)")
	cmd.Flags().IntSliceVar(&f.ports, "port", []int{9092}, "listen port per broker node (kfake: several ports, several nodes; kafka: one per node, or the first of consecutive ports)")
	cmd.Flags().IntSliceVar(&f.controllerPorts, "controller-port", nil, "KRaft controller port per node (engine kafka; default: free ports)")
	cmd.Flags().BoolVar(&f.sync, "sync", false, "fsync every write (engine kfake; slower; survives a machine crash)")
	cmd.Flags().StringVar(&f.heap, "heap", "512m", "maximum Java heap per node (engine kafka)")
	return cmd
}

func (e *env) runKfake(ctx context.Context, f brokerFlags) error {
	b, err := kafka.StartBroker(kafka.BrokerConfig{Ports: f.ports, DataDir: f.dataDir, Sync: f.sync}, os.Stderr)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "broker listening on %v (data dir %q)\n", b.Addrs(), f.dataDir)
	if f.controlAddr != "" {
		return runBrokerWithControl(ctx, b, f.controlAddr, e.stdout)
	}
	return b.Run(ctx)
}

func (e *env) runKafka(ctx context.Context, f brokerFlags) error {
	if f.dataDir == "" {
		return usageErr("--data-dir: engine kafka keeps its log on disk and needs a directory")
	}
	if f.controlAddr != "" || f.sync {
		return usageErr("--control-addr and --sync are for engine kfake")
	}
	if f.nodes < 1 {
		return usageErr("--nodes %d: want at least 1", f.nodes)
	}
	ports := f.ports
	if len(ports) == 1 && f.nodes > 1 {
		for i := 1; i < f.nodes; i++ {
			ports = append(ports, ports[0]+i)
		}
	}
	if len(ports) != f.nodes {
		return usageErr("--port: %d ports for %d nodes (give one per node, or only the first)", len(ports), f.nodes)
	}
	c, err := kafkaserver.Start(ctx, kafkaserver.Config{
		Nodes: f.nodes, DataDir: f.dataDir, BrokerPorts: ports, ControllerPorts: f.controllerPorts,
		HeapMax: f.heap, Log: os.Stderr,
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "broker listening on %v (Apache Kafka, %d node(s), data dir %q)\n", c.Addrs(), f.nodes, f.dataDir)
	return c.Run(ctx)
}

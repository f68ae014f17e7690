package kafkaserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Config says how many nodes to run, where, and on which ports.
type Config struct {
	Nodes   int    // combined broker and controller nodes (1 if zero)
	DataDir string // required: node-<id>/ holds each node's properties, log and data

	// BrokerPorts and ControllerPorts give each node's ports; missing or zero entries get a free
	// port. Broker ports are what clients bootstrap from.
	BrokerPorts     []int
	ControllerPorts []int

	ClusterID string            // DefaultClusterID if empty
	Pom       string            // deploy/kafka/pom.xml (FindPom if empty)
	Java      string            // "java" if empty
	Maven     string            // "mvn" if empty
	HeapMax   string            // -Xmx of each node's JVM ("512m" if empty)
	Overrides map[string]string // server properties applied on top of Properties

	StartTimeout time.Duration // until every node serves metadata (2 minutes if zero)
	StopTimeout  time.Duration // per node after SIGTERM before SIGKILL (30 s if zero)
	Log          io.Writer     // progress lines (discarded if nil)
}

// Cluster is a running set of nodes.
type Cluster struct {
	cfg    Config
	nodes  []Node
	procs  []*proc
	exited chan error // the first node that exits on its own
	stop   sync.Once
	stopEr error
}

type proc struct {
	node Node
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error // Wait's result, valid after done
}

// Start formats the storage of every node that has none yet (so a data directory survives a
// restart, like the compose volume), starts the nodes, and waits until each of them is
// registered with the controller and serves metadata. On error nothing is left running.
func Start(ctx context.Context, cfg Config) (*Cluster, error) {
	if cfg.Nodes <= 0 {
		cfg.Nodes = 1
	}
	if cfg.DataDir == "" {
		return nil, errors.New("kafka server: a data directory is required")
	}
	if cfg.ClusterID == "" {
		cfg.ClusterID = DefaultClusterID
	}
	if cfg.Java == "" {
		cfg.Java = "java"
	}
	if cfg.HeapMax == "" {
		cfg.HeapMax = "512m"
	}
	if cfg.StartTimeout == 0 {
		cfg.StartTimeout = 2 * time.Minute
	}
	if cfg.StopTimeout == 0 {
		cfg.StopTimeout = 30 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	dataDir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	cfg.DataDir = dataDir
	if _, err := exec.LookPath(cfg.Java); err != nil {
		return nil, fmt.Errorf("kafka server: %w", errNoJava)
	}
	if cfg.Pom == "" {
		if cfg.Pom, err = FindPom(); err != nil {
			return nil, fmt.Errorf("kafka server: %w", err)
		}
	}
	cp, err := Classpath(ctx, cfg.Pom, cfg.Maven, cfg.Log)
	if err != nil {
		return nil, fmt.Errorf("kafka server: %w", err)
	}

	nodes := make([]Node, cfg.Nodes)
	for i := range nodes {
		bp, err := portAt(cfg.BrokerPorts, i)
		if err != nil {
			return nil, err
		}
		cport, err := portAt(cfg.ControllerPorts, i)
		if err != nil {
			return nil, err
		}
		nodes[i] = Node{ID: i + 1, BrokerPort: bp, ControllerPort: cport,
			LogDir: filepath.Join(dataDir, fmt.Sprintf("node-%d", i+1), "data")}
	}
	log4j := filepath.Join(dataDir, "log4j2.properties")
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(log4j, []byte(log4jConfig), 0o644); err != nil {
		return nil, err
	}
	jvm := []string{"-Xms64m", "-Xmx" + cfg.HeapMax, "-XX:+UseSerialGC", "-Djava.awt.headless=true",
		"-Dlog4j2.configurationFile=" + log4j, "-cp", cp}

	// Write properties and format new storage; formats run in parallel (a JVM start each).
	propsFiles := make([]string, len(nodes))
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		dir := filepath.Dir(n.LogDir)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		propsFiles[i] = filepath.Join(dir, "server.properties")
		if err := os.WriteFile(propsFiles[i], []byte(FormatProperties(Properties(nodes, n, cfg.Overrides))), 0o644); err != nil {
			return nil, err
		}
		if _, err := os.Stat(filepath.Join(n.LogDir, "meta.properties")); err == nil {
			continue // formatted before: keep its data
		}
		wg.Go(func() {
			args := append(append([]string{}, jvm...), "kafka.tools.StorageTool", "format",
				"--config", propsFiles[i], "--cluster-id", cfg.ClusterID)
			cmd := exec.CommandContext(ctx, cfg.Java, args...)
			var buf bytes.Buffer
			cmd.Stdout, cmd.Stderr = &buf, &buf
			if err := cmd.Run(); err != nil {
				errs[i] = fmt.Errorf("kafka server: format storage of node %d: %w\n%s", n.ID, err, tail(buf.String(), 2000))
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}

	c := &Cluster{cfg: cfg, nodes: nodes, exited: make(chan error, len(nodes))}
	for i, n := range nodes {
		logPath := filepath.Join(filepath.Dir(n.LogDir), "server.log")
		logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			_ = c.Stop()
			return nil, err
		}
		args := append(append([]string{}, jvm...), "kafka.Kafka", propsFiles[i])
		cmd := exec.Command(cfg.Java, args...)
		cmd.Stdout, cmd.Stderr = logf, logf
		// The JVM dies with the process that started it, even on SIGKILL: a killed test binary
		// or orderctl leaves no broker behind holding its ports.
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			logf.Close()
			_ = c.Stop()
			return nil, fmt.Errorf("kafka server: start node %d: %w", n.ID, err)
		}
		p := &proc{node: n, cmd: cmd, log: logPath, done: make(chan struct{})}
		c.procs = append(c.procs, p)
		go func() {
			p.err = cmd.Wait()
			logf.Close()
			close(p.done)
			c.exited <- fmt.Errorf("kafka node %d exited: %v (log %s)", n.ID, p.err, p.log)
		}()
	}
	fmt.Fprintf(cfg.Log, "kafka: %d node(s) starting, data in %s\n", len(nodes), dataDir)
	startCtx, cancel := context.WithTimeout(ctx, cfg.StartTimeout)
	defer cancel()
	if err := c.waitReady(startCtx); err != nil {
		_ = c.Stop()
		return nil, err
	}
	return c, nil
}

// waitReady waits until the cluster serves metadata (WaitReady), and fails early when a node
// exits.
func (c *Cluster) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	for _, p := range c.procs {
		go func() {
			select {
			case <-p.done:
				cancel(fmt.Errorf("kafka node %d exited while starting: %v\n%s", p.node.ID, p.err, logTail(p.log)))
			case <-ctx.Done():
			}
		}()
	}
	err := WaitReady(ctx, c.Addrs(), len(c.nodes))
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) && !errors.Is(cause, context.DeadlineExceeded) {
		return cause
	}
	if err != nil {
		var logs []string
		for _, p := range c.procs {
			logs = append(logs, fmt.Sprintf("node %d (%s):\n%s", p.node.ID, p.log, logTail(p.log)))
		}
		return fmt.Errorf("kafka server: %w (within %s)\n%s", err, c.cfg.StartTimeout, strings.Join(logs, "\n"))
	}
	return nil
}

// WaitReady waits until the cluster at addrs answers metadata that lists nodes registered,
// unfenced brokers and an active controller: then it takes client requests. A listening port is
// not enough; a starting node accepts connections before it serves.
func WaitReady(ctx context.Context, addrs []string, nodes int) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.DialTimeout(time.Second))
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	last := errors.New("no answer yet")
	for {
		reqCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
		m, err := adm.BrokerMetadata(reqCtx)
		cancel()
		switch {
		case err != nil:
			last = err
		case len(m.Brokers) < nodes:
			var ids []int32
			for _, b := range m.Brokers {
				ids = append(ids, b.NodeID)
			}
			last = fmt.Errorf("%d of %d brokers registered and unfenced (%v)", len(m.Brokers), nodes, ids)
		case m.Controller < 0:
			last = errors.New("no active controller")
		default:
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not serving metadata: %v", last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Addrs are the nodes' client addresses (127.0.0.1:port), to bootstrap from.
func (c *Cluster) Addrs() []string {
	out := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		out[i] = n.BrokerAddr()
	}
	return out
}

// Nodes describes the running nodes.
func (c *Cluster) Nodes() []Node { return append([]Node(nil), c.nodes...) }

// Exited delivers an error when a node exits without Stop.
func (c *Cluster) Exited() <-chan error { return c.exited }

// Stop sends every node SIGTERM (Kafka's shutdown hook: controlled shutdown, flush, close the
// log) and waits for them, killing any node still running after StopTimeout. It reports the nodes
// that had to be killed. Safe to call more than once.
func (c *Cluster) Stop() error {
	c.stop.Do(func() {
		var wg sync.WaitGroup
		errs := make([]error, len(c.procs))
		for i, p := range c.procs {
			select {
			case <-p.done:
				continue
			default:
			}
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
			wg.Go(func() {
				select {
				case <-p.done:
				case <-time.After(c.cfg.StopTimeout):
					_ = p.cmd.Process.Kill()
					<-p.done
					errs[i] = fmt.Errorf("kafka node %d did not stop within %s of SIGTERM: killed (log %s)", p.node.ID, c.cfg.StopTimeout, p.log)
				}
			})
		}
		wg.Wait()
		c.stopEr = errors.Join(errs...)
	})
	return c.stopEr
}

// Run blocks until ctx ends or a node exits on its own, then stops the cluster.
func (c *Cluster) Run(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return c.Stop()
	case err := <-c.exited:
		return errors.Join(err, c.Stop())
	}
}

func portAt(ports []int, i int) (int, error) {
	if i < len(ports) && ports[i] != 0 {
		return ports[i], nil
	}
	return freePort()
}

// freePort asks the kernel for a free loopback port. Another process may take it before the node
// binds it; the node then fails to start and says so.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func logTail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	return tail(string(b), 3000)
}

// log4jConfig keeps the nodes' logs to warnings and errors, plus the lines that say a node
// started or stopped.
const log4jConfig = `status = warn
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = warn
rootLogger.appenderRef.stdout.ref = STDOUT
logger.server.name = kafka.server.KafkaRaftServer
logger.server.level = info
`

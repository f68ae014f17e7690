// Package orderctl is the ops command line: keys, migrations, topics, the development broker,
// demo data, and `dev`, which runs the whole pipeline locally (what `make run` calls).
// Commands are built with spf13/cobra; every one has --help, and exit codes are stable:
// 0 success, 1 failure, 2 bad usage or bad input (an invalid import file), 3 a check found
// differences, 4 the dead-letter re-drive refused records (loop guard).
package orderctl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/orderpipe/orderpipe/internal/config"
)

// Exit codes scripts can rely on.
const (
	ExitOK    = 0
	ExitError = 1
	ExitUsage = 2
	ExitDiff  = 3
	// ExitRefused: `dlq redrive` refused records re-driven --max-redrives times already.
	ExitRefused = 4
)

// ExitError carries an exit code through cobra.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func usageErr(format string, args ...any) error {
	return &exitError{code: ExitUsage, err: fmt.Errorf(format, args...)}
}

// Code returns the exit code for an error Run returned.
func Code(err error) int {
	if err == nil {
		return ExitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return ExitError
}

// Config is what orderctl reads from the environment (the same variables as the services).
type Config struct {
	config.Postgres
	config.Redis
	config.Kafka
	config.Log
	Topology
	CheckSources
}

// Topology sizes the topics orderctl provisions.
type Topology struct {
	Partitions  int32 `env:"KAFKA_PARTITIONS" envDefault:"6" help:"partitions of each topic orderctl creates"`
	Replication int16 `env:"KAFKA_REPLICATION" envDefault:"1" help:"replication factor of each topic orderctl creates (3 in production)"`
}

// Validate checks the topology settings.
func (t *Topology) Validate() error {
	if t.Partitions < 1 || t.Partitions > 1000 {
		return config.Errorf("KAFKA_PARTITIONS", "want 1..1000, got %d", t.Partitions)
	}
	if t.Replication < 1 || t.Replication > 7 {
		return config.Errorf("KAFKA_REPLICATION", "want 1..7, got %d", t.Replication)
	}
	return nil
}

type env struct {
	getenv func(string) string
	stdout io.Writer
	cfg    Config
}

// Run runs orderctl with args (without the program name).
func Run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	e := &env{getenv: getenv, stdout: stdout}
	var timeout time.Duration
	timed, cancelTimeout := context.Context(nil), context.CancelFunc(func() {})
	defer func() { cancelTimeout() }()
	root := &cobra.Command{
		Use:           "orderctl",
		Short:         "Operate orderpipe: keys, migrations, topics, demo data and the local pipeline",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if timeout < 0 {
				return usageErr("--timeout: want a positive duration, got %s", timeout)
			}
			if timeout > 0 {
				ctx, cancel := context.WithTimeoutCause(cmd.Context(), timeout, errTimeout)
				timed, cancelTimeout = ctx, cancel
				cmd.SetContext(ctx)
			}
			if err := config.Load(&e.cfg, getenv); err != nil {
				return fmt.Errorf("configuration: %w", err)
			}
			return nil
		},
	}
	root.PersistentFlags().DurationVar(&timeout, "timeout", 0,
		"give up on the whole command after this long (e.g. 30s for a broker that accepts connections and never answers; 0: no limit)")
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stdout)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageErr("%v", err) })
	root.AddCommand(
		e.envCmd(),
		e.migrateCmd(),
		e.keysCmd(),
		e.tradeAccountsCmd(),
		e.warehousesCmd(),
		e.topicsCmd(),
		e.brokerCmd(),
		e.seedCmd(),
		e.devCmd(),
		e.paysimCmd(),
		e.reconcileCmd(),
		e.mailsinkCmd(),
		e.benchCmd(),
		e.dlqCmd(),
		e.ordersCmd(),
		e.lagCmd(),
		e.replayCmd(),
		e.chaosCmd(),
		e.loadCmd(),
		e.checkCmd(),
		e.catalogCmd(),
		e.promoCmd(),
	)
	err := root.ExecuteContext(ctx)
	if err != nil && timed != nil && errors.Is(context.Cause(timed), errTimeout) {
		err = fmt.Errorf("gave up after --timeout %s: %w", timeout, err)
	}
	if err != nil && !isExit(err) && isUsage(err) {
		return usageErr("%v", err)
	}
	return err
}

// errTimeout is the cause of a command's context ending at --timeout.
var errTimeout = errors.New("--timeout reached")

func isExit(err error) bool {
	var ee *exitError
	return errors.As(err, &ee)
}

// isUsage recognises cobra's own argument errors (unknown command, wrong argument count).
func isUsage(err error) bool {
	msg := err.Error()
	for _, p := range []string{"unknown command", "unknown flag", "accepts ", "requires at least", "required flag"} {
		if strings.Contains(msg, p) {
			return true
		}
	}
	return false
}

// checkOutput accepts the value of an --output flag: table or json.
func checkOutput(output string) error {
	if output != "table" && output != "json" {
		return usageErr("--output: want table or json, got %q", output)
	}
	return nil
}

// writeJSON writes v as indented JSON, the form of every --output json.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

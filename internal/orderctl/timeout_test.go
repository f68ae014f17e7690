package orderctl_test

import (
	"bytes"
	"net"
	"strings"
	"testing"

	"github.com/orderpipe/orderpipe/internal/orderctl"
)

// TestGlobalTimeout: against a broker that accepts connections and never answers, every command
// that talks to it gives up at --timeout and says so.
func TestGlobalTimeout(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var held []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				for _, c := range held {
					c.Close()
				}
				return
			}
			held = append(held, c) // read nothing, answer nothing
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })

	env := map[string]string{"KAFKA_BROKERS": ln.Addr().String()}
	for _, args := range [][]string{
		{"--timeout", "1s", "lag"},
		{"--timeout", "1s", "topics"},
		{"dlq", "count", "--group", "order-worker", "--timeout", "1s"},
	} {
		var out bytes.Buffer
		err := orderctl.Run(t.Context(), args, func(k string) string { return env[k] }, &out)
		if err == nil || !strings.Contains(err.Error(), "gave up after --timeout 1s") {
			t.Errorf("%v against a silent broker: got %v, want an error naming --timeout 1s\n%s", args, err, out.String())
		}
	}
	var out bytes.Buffer
	if code := orderctl.Code(orderctl.Run(t.Context(), []string{"--timeout", "-1s", "lag"}, func(string) string { return "" }, &out)); code != orderctl.ExitUsage {
		t.Errorf("--timeout -1s: exit %d, want %d", code, orderctl.ExitUsage)
	}
}

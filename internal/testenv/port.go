package testenv

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
)

// FixedPort returns a loopback port that is free now, below the kernel's ephemeral range, for a
// server the test starts seconds later. A port from the ephemeral range (a ":0" listener's) could meanwhile be
// handed to another test's ":0" listener, whose server would then answer in its place. Nothing
// else picks ports below that range.
func FixedPort(t testing.TB) int {
	t.Helper()
	low := 32768 // Linux's default when the range cannot be read
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil {
				low = n
			}
		}
	}
	const from = 10000
	if low <= from+100 {
		t.Fatalf("ephemeral port range starts at %d: no room below it for fixed ports", low)
	}
	for range 100 {
		port := from + rand.IntN(low-from)
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue // taken
		}
		ln.Close()
		return port
	}
	t.Fatalf("no free port in [%d, %d) after 100 tries", from, low)
	return 0
}

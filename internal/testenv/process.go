package testenv

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"
)

// RunFunc is the shape of every orderpipe process entry point (api.Run, orderworker.Run, ...).
type RunFunc func(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error

// Proc is a process entry point running in this test process, as its binary would run it.
type Proc struct {
	// Addr is the address from its "listening" log line ("url" for the api, "admin_addr" for
	// workers), as http://host:port.
	URL  string
	Logs *Buffer
	stop func() error
}

// Start runs fn with env (nothing else: the test's own environment does not leak in), waits
// for its "listening" log line and for /readyz to answer 200, and stops it when the test ends.
// Logs are printed when the test fails.
func Start(t testing.TB, name string, fn RunFunc, env map[string]string) *Proc {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	logs := &Buffer{}
	go func() {
		done <- fn(ctx, nil, func(k string) string { return env[k] }, pw)
		pw.Close()
	}()
	urlc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Bytes()
			logs.Write(append(append([]byte{}, line...), '\n'))
			var rec struct {
				Msg       string `json:"msg"`
				URL       string `json:"url"`
				AdminAddr string `json:"admin_addr"`
			}
			if json.Unmarshal(line, &rec) == nil && rec.Msg == "listening" {
				switch {
				case rec.URL != "":
					urlc <- rec.URL
				case rec.AdminAddr != "":
					urlc <- "http://" + rec.AdminAddr
				}
			}
		}
	}()
	var once sync.Once
	var stopErr error
	p := &Proc{Logs: logs}
	p.stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case stopErr = <-done:
			case <-time.After(60 * time.Second):
				stopErr = fmt.Errorf("%s did not stop within 60s", name)
			}
		})
		return stopErr
	}
	t.Cleanup(func() {
		if err := p.stop(); err != nil {
			t.Errorf("%s stop: %v", name, err)
		}
		if t.Failed() {
			t.Logf("%s logs:\n%s", name, logs.String())
		}
	})
	select {
	case p.URL = <-urlc:
	case err := <-done:
		t.Fatalf("%s exited before listening: %v\nlogs:\n%s", name, err, logs.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not listen within 30s\nlogs:\n%s", name, logs.String())
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(p.URL + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready within 30s (last: %v)\nlogs:\n%s", name, err, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return p
}

// Stop stops the process gracefully (its context ends) and returns what its Run returned.
func (p *Proc) Stop() error { return p.stop() }

// Buffer is a goroutine-safe log buffer.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

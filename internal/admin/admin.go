// Package admin serves a worker process's operations endpoints on its admin port: /livez,
// /readyz (every dependency check passes within a second, and the process is not draining) and
// /metrics (Prometheus). The api serves the same endpoints through its Echo server.
package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Check is one readiness check.
type Check struct {
	Name string
	Fn   func(ctx context.Context) error
}

// Server is the admin HTTP server.
type Server struct {
	srv      *http.Server
	ln       net.Listener
	draining atomic.Bool
	log      *slog.Logger
}

// Listen binds addr and prepares the endpoints.
func Listen(addr string, checks []Check, g prometheus.Gatherer, log *slog.Logger) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("admin listen on %s: %w", addr, err)
	}
	s := &Server{ln: ln, log: log}
	mux := http.NewServeMux()
	live := func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	}
	mux.HandleFunc("GET /livez", live)
	mux.HandleFunc("GET /healthz", live) // the same answer under the name many probes default to
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), time.Second)
		defer cancel()
		res := map[string]string{}
		status := "ok"
		var mu sync.Mutex
		var wg sync.WaitGroup
		for _, c := range checks {
			wg.Go(func() {
				v := "ok"
				if err := c.Fn(ctx); err != nil {
					v = "down"
					log.Warn("readiness check failed", "check", c.Name, "err", err)
				}
				mu.Lock()
				res[c.Name] = v
				if v != "ok" {
					status = "unavailable"
				}
				mu.Unlock()
			})
		}
		wg.Wait()
		if s.draining.Load() {
			status = "draining"
		}
		code := http.StatusOK
		if status != "ok" {
			code = http.StatusServiceUnavailable
		}
		writeJSON(w, code, map[string]any{"status": status, "checks": res})
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	return s, nil
}

// Addr is the bound address.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Drain makes /readyz answer 503 from now on.
func (s *Server) Drain() { s.draining.Store(true) }

// Serve serves until Shutdown.
func (s *Server) Serve() error {
	if err := s.srv.Serve(s.ln); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("admin server: %w", err)
	}
	return nil
}

// Shutdown stops the server.
func (s *Server) Shutdown(ctx context.Context) error { return s.srv.Shutdown(ctx) }

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// Actor returns the server as an oklog/run actor: it serves until interrupted, then shuts down
// within five seconds.
func (s *Server) Actor() (execute func() error, interrupt func(error)) {
	return s.Serve, func(error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx)
	}
}

// UntilDone is an oklog/run actor that ends when ctx ends, the process's normal stop (it returns
// nil, so the group's Run does too), or when another actor ends first.
func UntilDone(ctx context.Context) (execute func() error, interrupt func(error)) {
	done := make(chan struct{})
	return func() error {
			select {
			case <-ctx.Done():
			case <-done:
			}
			return nil
		}, func(error) {
			close(done)
		}
}

package paysim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// Run serves the simulator on addr until ctx ends, then stops: hanging requests are released,
// in-flight ones get up to five seconds to finish, and the final counters are printed.
func (s *Server) Run(ctx context.Context, addr string, stdout io.Writer) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("paysim listen %s: %w", addr, err)
	}
	fmt.Fprintf(stdout, "paysim listening on http://%s (latency %s + up to %s, decline rate %g, fault rate %g, seed %d)\n",
		ln.Addr(), s.cfg.Latency, s.cfg.LatencyJitter, s.cfg.DeclineRate, s.cfg.FaultRate, s.cfg.Seed)
	err = s.Serve(ctx, ln)
	st := s.Stats()
	fmt.Fprintf(stdout, "paysim stopped: %d requests, %d captures, %d declines, %d refunds, %d duplicates suppressed, %d faults, %d orders captured twice\n",
		st.Requests, st.Captures, st.Declines, st.Refunds, st.Duplicates, st.Faults, len(st.DoubleCaptured))
	return err
}

// Serve serves the simulator on ln until ctx ends; it closes ln. A Server is served once.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return fmt.Errorf("paysim serve: %w", err)
	case <-ctx.Done():
	}
	s.quitted.Do(func() { close(s.quit) })
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	err := srv.Shutdown(sctx)
	if errors.Is(err, context.DeadlineExceeded) {
		err = srv.Close()
	}
	if serr := <-served; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("paysim shutdown: %w", err)
	}
	return nil
}

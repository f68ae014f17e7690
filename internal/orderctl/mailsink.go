package orderctl

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/orderpipe/orderpipe/internal/mailsink"
)

func (e *env) mailsinkCmd() *cobra.Command {
	var addr, dir, httpAddr string
	var latency time.Duration
	cmd := &cobra.Command{
		Use:   "mailsink",
		Short: "Run a local SMTP server that keeps every e-mail (for make run and manual tests)",
		Long: "Accepts e-mail over plain SMTP on --addr (no TLS, no authentication) and\n" +
			"writes each message to --dir as an .eml file, which any mail client opens. With --http-addr\n" +
			"it also serves a listing page of the messages. Point the notifier at it with\n" +
			"SMTP_HOST/SMTP_PORT and SMTP_TLS=off. Stops on SIGINT/SIGTERM.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return e.mailsink(ctx, addr, dir, httpAddr, latency)
		},
	}
	f := cmd.Flags()
	f.StringVar(&addr, "addr", "127.0.0.1:2525", "SMTP listen address (the notifier's SMTP_HOST:SMTP_PORT)")
	f.StringVar(&dir, "dir", ".data/mail", "directory of the received messages (.eml files)")
	f.StringVar(&httpAddr, "http-addr", "127.0.0.1:8025", "listen address of the listing page; empty serves none")
	f.DurationVar(&latency, "latency", 0, "delay before accepting each message (a slow provider)")
	return cmd
}

func (e *env) mailsink(ctx context.Context, addr, dir, httpAddr string, latency time.Duration) error {
	log := e.cfg.Logger(e.stdout, "mailsink")
	sink, err := mailsink.Start(mailsink.Config{Addr: addr, Dir: dir, Latency: latency, Log: log})
	if err != nil {
		return err
	}
	defer sink.Close()
	var srv *http.Server
	listing := ""
	if httpAddr != "" {
		ln, err := net.Listen("tcp", httpAddr)
		if err != nil {
			return fmt.Errorf("listing page: listen on %s: %w", httpAddr, err)
		}
		srv = &http.Server{Handler: sink.Handler(), ReadHeaderTimeout: 5 * time.Second}
		go func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("listing page stopped", "err", err)
			}
		}()
		listing = "http://" + ln.Addr().String()
	}
	log.Info("listening", slog.String("smtp", sink.Addr()), slog.String("dir", dir), slog.String("url", listing))
	<-ctx.Done()
	if srv != nil {
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}
	return nil
}

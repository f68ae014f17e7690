package config

import (
	"io"
	"log/slog"
)

// Logger builds the process logger from the Log section: JSON by default, so every line carries
// structured fields (order_id, event_id) that log tooling can index.
func (l Log) Logger(w io.Writer, component string) *slog.Logger {
	var lv slog.Level
	_ = lv.UnmarshalText([]byte(l.LogLevel)) // validated before
	opts := &slog.HandlerOptions{Level: lv}
	var h slog.Handler = slog.NewJSONHandler(w, opts)
	if l.LogFormat == "text" {
		h = slog.NewTextHandler(w, opts)
	}
	return slog.New(h).With("component", component)
}

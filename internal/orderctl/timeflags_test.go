package orderctl

import (
	"testing"
	"time"
)

func TestParseAgo(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]time.Duration{
		"40m": 40 * time.Minute, "1h30m": 90 * time.Minute, "2d": 48 * time.Hour, "1.5d": 36 * time.Hour,
		"PT5M": 5 * time.Minute, "P2D": 48 * time.Hour, "P1DT2H": 26 * time.Hour, "PT0.5S": 500 * time.Millisecond,
	} {
		got, err := parseAgo(in)
		if err != nil || got != want {
			t.Errorf("parseAgo(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "soon", "2x", "P", "d", "5 minutes"} {
		if got, err := parseAgo(in); err == nil {
			t.Errorf("parseAgo(%q) = %v, want an error", in, got)
		}
	}
}

func TestParseWhen(t *testing.T) {
	t.Parallel()
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	want := time.Date(2026, 12, 7, 10, 30, 0, 0, time.UTC)
	for in, loc := range map[string]*time.Location{
		"2026-12-07T10:30:00Z":      nil,
		"2026-12-07T11:30:00+01:00": nil,
		"2026-12-07T11:30:00.000":   berlin, // kafka-consumer-groups' --to-datetime form, read in loc
		"2026-12-07T11:30:00":       berlin,
		"2026-12-07 11:30":          berlin,
		"2026-12-07T10:30":          time.UTC,
		"1796639400000":             nil, // epoch milliseconds
	} {
		got, err := parseWhen(in, loc)
		if err != nil || !got.Equal(want) {
			t.Errorf("parseWhen(%q, %v) = %v, %v; want %v", in, loc, got, err, want)
		}
	}
	for _, in := range []string{"", "yesterday", "2026-13-07T10:30:00Z", "12345"} {
		if got, err := parseWhen(in, time.UTC); err == nil {
			t.Errorf("parseWhen(%q) = %v, want an error", in, got)
		}
	}
}

package orderctl

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/sosodev/duration"
)

// agoValue is a flag holding how long ago: a Go duration (40m, 1h30m), whole or fractional days
// (2d, 1.5d), or an ISO 8601 duration (PT5M, P2D, P1DT2H), the form kafka-consumer-groups'
// --by-duration takes.
type agoValue struct{ d *time.Duration }

func (v agoValue) String() string {
	if v.d == nil || *v.d == 0 {
		return "0s"
	}
	return v.d.String()
}

func (v agoValue) Type() string { return "duration" }

func (v agoValue) Set(s string) error {
	d, err := parseAgo(s)
	if err != nil {
		return err
	}
	*v.d = d
	return nil
}

// parseAgo reads the forms agoValue accepts.
func parseAgo(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if d, err := time.ParseDuration(s); err == nil {
		return d, nil
	}
	if days, ok := strings.CutSuffix(s, "d"); ok {
		if n, err := strconv.ParseFloat(days, 64); err == nil {
			return time.Duration(n * float64(24*time.Hour)), nil
		}
	}
	if strings.HasPrefix(strings.TrimPrefix(s, "-"), "P") && strings.ContainsAny(s, "0123456789") {
		if d, err := duration.Parse(s); err == nil {
			return d.ToTimeDuration(), nil
		}
	}
	return 0, fmt.Errorf("want a duration like 40m, 1h30m, 2d or ISO 8601 PT5M / P1DT2H, got %q", s)
}

// localLayouts are the date-times without a zone that parseWhen reads in its location, among
// them kafka-consumer-groups' --to-datetime form YYYY-MM-DDTHH:mm:SS.sss.
var localLayouts = []string{
	"2006-01-02T15:04:05.000", "2006-01-02T15:04:05", "2006-01-02T15:04",
	"2006-01-02 15:04:05.000", "2006-01-02 15:04:05", "2006-01-02 15:04",
}

// parseWhen reads a point in time: RFC 3339 with its own offset (2026-12-07T10:30:00Z,
// ...+01:00), a date-time without zone read in loc (time.Local when nil, as kafka-consumer-groups
// does), or epoch milliseconds (1796639400000).
func parseWhen(s string, loc *time.Location) (time.Time, error) {
	s = strings.TrimSpace(s)
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), nil
	}
	if loc == nil {
		loc = time.Local
	}
	for _, layout := range localLayouts {
		if t, err := time.ParseInLocation(layout, s, loc); err == nil {
			return t.UTC(), nil
		}
	}
	if ms, err := strconv.ParseInt(s, 10, 64); err == nil && len(s) >= 12 {
		return time.UnixMilli(ms).UTC(), nil
	}
	return time.Time{}, fmt.Errorf("want RFC 3339 (2026-12-07T10:30:00Z), a local date-time (2026-12-07T10:30:00.000 or \"2026-12-07 10:30\") or epoch milliseconds, got %q", s)
}

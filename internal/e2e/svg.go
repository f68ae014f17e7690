package e2e

import (
	"fmt"
	"html"
	"math"
	"strings"
	"time"
)

// series is one line of a panel.
type series struct {
	name  string
	color string
	ys    []float64 // NaN: no value
}

type panel struct {
	title string
	unit  string
	lines []series
}

// Plot renders the run as an SVG: arrival and accepted rate, intake p99 and consumer lag over
// time, one panel each on a shared time axis, with the chaos steps marked. Hand-rolled: it is a
// few polylines and axes.
func Plot(title string, pts []Point, chaos []ChaosRecord) string {
	const (
		width   = 900
		panelH  = 150
		left    = 70
		right   = 20
		top     = 40
		gap     = 45
		bottomM = 40
	)
	xs := make([]float64, len(pts))
	offered := make([]float64, len(pts))
	accepted := make([]float64, len(pts))
	refused := make([]float64, len(pts))
	p99 := make([]float64, len(pts))
	crit := make([]float64, len(pts))
	low := make([]float64, len(pts))
	for i, p := range pts {
		xs[i] = p.At.Seconds()
		offered[i], accepted[i], refused[i] = p.Offered, p.Accepted, p.Refused
		p99[i] = math.NaN()
		if p.P99 > 0 {
			p99[i] = float64(p.P99) / float64(time.Millisecond)
		}
		crit[i], low[i] = float64(p.CriticalLag), float64(p.LowLag)
		if p.CriticalLag < 0 {
			crit[i], low[i] = math.NaN(), math.NaN()
		}
	}
	panels := []panel{
		{title: "arrival and answers per second", unit: "/s", lines: []series{
			{"buyers arriving", "#1f77b4", offered}, {"accepted (202)", "#2ca02c", accepted}, {"refused (409/429/503)", "#ff7f0e", refused}}},
		{title: "intake latency p99 (per second)", unit: "ms", lines: []series{{"p99", "#d62728", p99}}},
		{title: "consumer lag (records)", unit: "", lines: []series{
			{"critical: order-worker + inventory-sync", "#9467bd", crit}, {"low priority: notifier + reports", "#8c564b", low}}},
	}
	height := top + len(panels)*(panelH+gap) + bottomM
	xmax := 1.0
	if len(xs) > 0 {
		xmax = math.Max(xmax, xs[len(xs)-1])
	}
	plotW := float64(width - left - right)
	xpix := func(x float64) float64 { return left + x/xmax*plotW }

	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="11">`+"\n", width, height, width, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%d" y="20" font-size="14" font-weight="bold">%s</text>`+"\n", left, html.EscapeString(title))
	for pi, p := range panels {
		y0 := float64(top + pi*(panelH+gap) + 15)
		ymax := 0.0
		for _, s := range p.lines {
			for _, v := range s.ys {
				if !math.IsNaN(v) {
					ymax = math.Max(ymax, v)
				}
			}
		}
		ymax = niceCeil(ymax)
		ypix := func(v float64) float64 { return y0 + panelH - v/ymax*panelH }
		fmt.Fprintf(&b, `<text x="%d" y="%.0f" font-weight="bold">%s</text>`+"\n", left, y0-5, html.EscapeString(p.title))
		// axes and grid
		fmt.Fprintf(&b, `<rect x="%d" y="%.0f" width="%.0f" height="%d" fill="none" stroke="#999"/>`+"\n", left, y0, plotW, panelH)
		for i := 0; i <= 4; i++ {
			v := ymax * float64(i) / 4
			y := ypix(v)
			fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%.0f" y2="%.1f" stroke="#eee"/>`+"\n", left, y, left+plotW, y)
			fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end">%s%s</text>`+"\n", left-4, y+4, short(v), p.unit)
		}
		// chaos marks
		for _, c := range chaos {
			x := xpix(c.At.Seconds())
			w := math.Max(1, xpix((c.At+c.Took).Seconds())-x)
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.0f" width="%.1f" height="%d" fill="#f4cccc" fill-opacity="0.5"/>`+"\n", x, y0, w, panelH)
			if pi == 0 {
				fmt.Fprintf(&b, `<text x="%.1f" y="%.0f" font-size="9" fill="#a00" transform="rotate(-90 %.1f %.0f)">%s</text>`+"\n", x+9, y0+panelH-3, x+9, y0+panelH-3, html.EscapeString(c.Step))
			}
		}
		// lines
		for si, s := range p.lines {
			var seg []string
			flush := func() {
				if len(seg) > 1 {
					fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="1.5" points="%s"/>`+"\n", s.color, strings.Join(seg, " "))
				} else if len(seg) == 1 {
					fmt.Fprintf(&b, `<circle r="1.5" fill="%s" cx="%s"/>`+"\n", s.color, strings.Replace(seg[0], ",", `" cy="`, 1))
				}
				seg = seg[:0]
			}
			for i, v := range s.ys {
				if math.IsNaN(v) {
					flush()
					continue
				}
				seg = append(seg, fmt.Sprintf("%.1f,%.1f", xpix(xs[i]), ypix(v)))
			}
			flush()
			lx := left + 10 + si*260
			fmt.Fprintf(&b, `<line x1="%d" y1="%.0f" x2="%d" y2="%.0f" stroke="%s" stroke-width="2"/><text x="%d" y="%.0f">%s</text>`+"\n",
				lx, y0+panelH+14, lx+18, y0+panelH+14, s.color, lx+22, y0+panelH+18, html.EscapeString(s.name))
		}
	}
	// time axis
	yAxis := float64(height - bottomM + 5)
	step := niceCeil(xmax / 10)
	for t := 0.0; t <= xmax+1e-9; t += step {
		fmt.Fprintf(&b, `<text x="%.1f" y="%.0f" text-anchor="middle">%ss</text>`+"\n", xpix(t), yAxis, short(t))
	}
	fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" text-anchor="middle">seconds since the load started (shaded: chaos steps)</text>`+"\n", left+plotW/2, yAxis+16)
	b.WriteString("</svg>\n")
	return b.String()
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	if v <= 0 || math.IsNaN(v) {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

func short(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.3gM", v/1e6)
	case v >= 1e4:
		return fmt.Sprintf("%.3gk", v/1e3)
	default:
		return fmt.Sprintf("%.4g", v)
	}
}

package main

import (
	"fmt"
	"html"
	"math"
	"strings"
)

// series is one line of the chart.
type series struct {
	label  string
	color  string
	dashed bool
	x, y   []float64
}

// Chart draws p50 latency (one client) against the number of containers,
// log-log, for every operation of both servers, as a standalone SVG.
func Chart(res *Results) string {
	colors := map[string]string{"PROCESSID": "#1f77b4", "CGROUPNAME": "#2ca02c", "HOSTNAME": "#d62728"}
	var ss []series
	for _, server := range []string{"rootd", "reference"} {
		for _, op := range Ops {
			s := series{label: server + " " + op.PDU, color: colors[op.PDU], dashed: server == "reference"}
			for _, sr := range res.Sizes {
				if r, ok := findCell(sr.Cells, server, op.PDU, 1); ok && r.P50 > 0 && r.Errors == 0 {
					s.x = append(s.x, float64(sr.N))
					s.y = append(s.y, r.P50)
				}
			}
			if len(s.x) > 0 {
				ss = append(ss, s)
			}
		}
	}
	refs := []hline{{15, "rootd target 15 µs"}}
	if f, ok := floorOf(res.Floor, "floor-c", 1); ok && f.P50 > 0 {
		refs = append(refs, hline{f.P50, fmt.Sprintf("floor: zero-work C server %.1f µs", f.P50)})
	}
	return drawLogLog(ss, "p50 latency per request (1 client, libpcp_pmda) against containers",
		"containers (synthetic Docker state)", "p50 latency", refs)
}

// hline is a labelled horizontal reference line.
type hline struct {
	y     float64
	label string
}

// decades returns the powers of ten spanning [lo, hi].
func decades(lo, hi float64) (float64, float64) {
	a := math.Pow(10, math.Floor(math.Log10(lo)))
	b := math.Pow(10, math.Ceil(math.Log10(hi)))
	if a == b {
		b *= 10
	}
	return a, b
}

func drawLogLog(ss []series, title, xlabel, ylabel string, refs []hline) string {
	const (
		w, h                 = 820, 480
		left, right, top, bo = 80, 220, 40, 60
	)
	xmin, xmax, ymin, ymax := math.Inf(1), math.Inf(-1), math.Inf(1), math.Inf(-1)
	for _, r := range refs {
		ymin, ymax = math.Min(ymin, r.y), math.Max(ymax, r.y)
	}
	for _, s := range ss {
		for i := range s.x {
			xmin, xmax = math.Min(xmin, s.x[i]), math.Max(xmax, s.x[i])
			ymin, ymax = math.Min(ymin, s.y[i]), math.Max(ymax, s.y[i])
		}
	}
	if math.IsInf(xmin, 0) {
		xmin, xmax = 10, 10000
	}
	if math.IsInf(ymin, 0) {
		ymin, ymax = 1, 1000
	}
	xmin, xmax = decades(xmin, xmax)
	ymin, ymax = decades(ymin, ymax)
	pw, ph := float64(w-left-right), float64(h-top-bo)
	px := func(x float64) float64 {
		return left + pw*(math.Log10(x)-math.Log10(xmin))/(math.Log10(xmax)-math.Log10(xmin))
	}
	py := func(y float64) float64 {
		return top + ph*(1-(math.Log10(y)-math.Log10(ymin))/(math.Log10(ymax)-math.Log10(ymin)))
	}
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p(`<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", w, h, w, h)
	p(`<rect width="%d" height="%d" fill="white"/>`+"\n", w, h)
	p(`<text x="%d" y="22" font-size="14" font-weight="bold">%s</text>`+"\n", left, html.EscapeString(title))
	// Grid and tick labels at every power of ten.
	for x := xmin; x <= xmax*1.0001; x *= 10 {
		p(`<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#ddd"/>`+"\n", px(x), top, px(x), h-bo)
		p(`<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", px(x), h-bo+18, tick(x, ""))
	}
	for y := ymin; y <= ymax*1.0001; y *= 10 {
		p(`<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/>`+"\n", left, py(y), w-right, py(y))
		p(`<text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", left-6, py(y)+4, tick(y, "µs"))
	}
	p(`<rect x="%d" y="%d" width="%.0f" height="%.0f" fill="none" stroke="#333"/>`+"\n", left, top, pw, ph)
	p(`<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", left+pw/2, h-18, html.EscapeString(xlabel))
	p(`<text x="18" y="%.1f" text-anchor="middle" transform="rotate(-90 18 %.1f)">%s</text>`+"\n", top+ph/2, top+ph/2, html.EscapeString(ylabel))
	for _, r := range refs {
		p(`<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#888" stroke-dasharray="2,3"/>`+"\n", left, py(r.y), w-right, py(r.y))
		p(`<text x="%d" y="%.1f" fill="#555">%s</text>`+"\n", left+4, py(r.y)-4, html.EscapeString(r.label))
	}
	for i, s := range ss {
		var pts []string
		for j := range s.x {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", px(s.x[j]), py(s.y[j])))
		}
		dash := ""
		if s.dashed {
			dash = ` stroke-dasharray="7,4"`
		}
		p(`<polyline points="%s" fill="none" stroke="%s" stroke-width="2"%s/>`+"\n", strings.Join(pts, " "), s.color, dash)
		for j := range s.x {
			p(`<circle cx="%.1f" cy="%.1f" r="3" fill="%s"/>`+"\n", px(s.x[j]), py(s.y[j]), s.color)
		}
		ly := top + 10 + 20*i
		p(`<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="2"%s/>`+"\n", w-right+12, ly, w-right+40, ly, s.color, dash)
		p(`<text x="%d" y="%d">%s</text>`+"\n", w-right+46, ly+4, html.EscapeString(s.label))
	}
	p("</svg>\n")
	return b.String()
}

// tick labels a power of ten: 10, 1k, 10k; with unit µs: 10 µs, 1 ms.
func tick(v float64, unit string) string {
	if unit == "µs" {
		switch {
		case v >= 1e6:
			return fmt.Sprintf("%g s", v/1e6)
		case v >= 1e3:
			return fmt.Sprintf("%g ms", v/1e3)
		}
		return fmt.Sprintf("%g µs", v)
	}
	if v >= 1000 {
		return fmt.Sprintf("%gk", v/1000)
	}
	return fmt.Sprintf("%g", v)
}

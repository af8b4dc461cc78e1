package main

import (
	"fmt"
	"image/color"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

var palette = map[string]color.Color{
	"direct": color.RGBA{200, 50, 50, 255},
	"proxy":  color.RGBA{40, 110, 200, 255},
	"peers":  color.RGBA{30, 150, 60, 255},
	// boot methods
	"limit":     color.Gray{110},
	"profile":   color.RGBA{30, 150, 60, 255},
	"noprofile": color.RGBA{40, 110, 200, 255},
	"2005":      color.RGBA{220, 140, 20, 255},
	"download":  color.RGBA{200, 50, 50, 255},
	"stream":    color.RGBA{120, 70, 170, 255},
	"toram":     color.RGBA{180, 80, 140, 255},
}

func colorOf(i int, name string) color.Color {
	if c, ok := palette[name]; ok {
		return c
	}
	others := []color.Color{color.RGBA{120, 70, 170, 255}, color.RGBA{220, 140, 20, 255}, color.RGBA{60, 60, 60, 255},
		color.RGBA{0, 150, 150, 255}, color.RGBA{180, 80, 140, 255}, color.RGBA{120, 120, 30, 255}}
	return others[i%len(others)]
}

// fleetTimeChart: completion time (p99 solid, p50 dashed) against clients, per method,
// with the single client's time and 1.5 times it for reference.
func fleetTimeChart(rows []row, path string) error {
	p := plot.New()
	p.Title.Text = "Fleet boot: completion time vs clients booting at once (" + rows[0].scenario + " origin link)"
	p.X.Label.Text = "clients booting at once (log scale)"
	p.Y.Label.Text = "seconds, log scale (p99 solid, p50 dashed)"
	ns := sizes(rows)
	logX(p, ns)
	p.Legend.Top = true
	p.Legend.Left = true
	for i, m := range methods(rows) {
		for _, q := range []string{"p99", "p50"} {
			var xy plotter.XYs
			for _, n := range ns {
				if v, ok := median(rows, m, n, q); ok {
					xy = append(xy, plotter.XY{X: float64(n), Y: v})
				}
			}
			if len(xy) == 0 {
				continue
			}
			l, pts, err := plotter.NewLinePoints(xy)
			if err != nil {
				return err
			}
			l.Color, pts.Color = colorOf(i, m), colorOf(i, m)
			l.Width = vg.Points(2)
			if q == "p50" {
				l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
				l.Width = vg.Points(1)
				pts.Shape = draw.CircleGlyph{}
			}
			p.Add(l, pts)
			if q == "p99" {
				p.Legend.Add(m, l, pts)
			}
		}
	}
	if single, ok := median(rows, "direct", 1, "p99"); ok && len(ns) > 1 {
		for _, f := range []float64{1, 1.5} {
			ref, _ := plotter.NewLine(plotter.XYs{{X: float64(ns[0]), Y: f * single}, {X: float64(ns[len(ns)-1]), Y: f * single}})
			ref.Color = color.Gray{150}
			ref.Dashes = []vg.Length{vg.Points(2), vg.Points(2)}
			p.Add(ref)
			if f == 1 {
				p.Legend.Add("one client alone", ref)
			} else {
				p.Legend.Add("1.5 x one client", ref)
			}
		}
	}
	// A log scale: direct grows with the clients by two orders of magnitude, and the
	// goal is a ratio to one client's time.
	lo, hi := 0.0, 0.0
	for _, r := range rows {
		if r.metric == "p50" || r.metric == "p99" {
			if lo == 0 || r.value < lo {
				lo = r.value
			}
			hi = max(hi, r.value)
		}
	}
	if lo > 0 {
		p.Y.Scale = plot.LogScale{}
		p.Y.Tick.Marker = secondsTicks{}
		p.Y.Min, p.Y.Max = lo/1.3, hi*1.3
	}
	return p.Save(8*vg.Inch, 5*vg.Inch, path)
}

// fleetOriginChart: what the origin served, in working sets, against clients.
func fleetOriginChart(rows []row, path string) error {
	p := plot.New()
	p.Title.Text = "Fleet boot: bytes the origin served, in working sets of one boot"
	p.X.Label.Text = "clients booting at once (log scale)"
	p.Y.Label.Text = "origin chunk bytes / working set (log scale)"
	logX(p, sizes(rows))
	p.Y.Scale, p.Y.Tick.Marker = plot.LogScale{}, plot.LogTicks{Prec: -1}
	p.Legend.Top, p.Legend.Left = true, true
	top := 1.0
	for i, m := range methods(rows) {
		var xy plotter.XYs
		for _, n := range sizes(rows) {
			b, ok1 := median(rows, m, n, "origin_chunk_bytes")
			ws, ok2 := median(rows, m, n, "working_set_bytes")
			if ok1 && ok2 && ws > 0 && b > 0 {
				xy = append(xy, plotter.XY{X: float64(n), Y: b / ws})
				top = max(top, b/ws)
			}
		}
		if len(xy) == 0 {
			continue
		}
		l, pts, err := plotter.NewLinePoints(xy)
		if err != nil {
			return err
		}
		l.Color, pts.Color, l.Width = colorOf(i, m), colorOf(i, m), vg.Points(2)
		if i > 0 { // proxy and peers often coincide: the later ones dashed, thinner, on top
			l.Width = vg.Points(4 - 1.5*float64(min(i, 2)-1))
			if i > 1 {
				l.Dashes = []vg.Length{vg.Points(6), vg.Points(4)}
			}
		}
		p.Add(l, pts)
		p.Legend.Add(m, l, pts)
	}
	p.Y.Min, p.Y.Max = 0.5, top*2
	return p.Save(8*vg.Inch, 5*vg.Inch, path)
}

// logX puts the fleet sizes on a log axis with a tick at each, padded so a single size
// still has an axis.
func logX(p *plot.Plot, ns []int) {
	p.X.Scale = plot.LogScale{}
	var ticks []plot.Tick
	for _, n := range ns {
		ticks = append(ticks, plot.Tick{Value: float64(n), Label: fmt.Sprint(n)})
	}
	p.X.Tick.Marker = plot.ConstantTicks(ticks)
	if len(ns) > 0 {
		p.X.Min, p.X.Max = float64(ns[0])/1.5, float64(ns[len(ns)-1])*1.5
	}
}

// bootChart: median time to the login prompt, one horizontal bar per scenario and
// method that has any (scenarios measure different methods: the loopback boots stream
// and toram, the WAN boots profile, noprofile, 2005, download and the limit), grouped by
// scenario, coloured by method, the figure at the end of each bar.
func bootChart(rows []row, path string) error {
	logins := filter(rows, func(r row) bool { return r.metric == "login" && r.n == 1 })
	if len(logins) == 0 {
		fmt.Println("plot: boot results have no login times: boot chart skipped")
		return nil
	}
	var scenarios []string
	for _, r := range logins {
		if !contains(scenarios, r.scenario) {
			scenarios = append(scenarios, r.scenario)
		}
	}
	allMethods := methods(logins)
	type bar struct {
		label  string
		method string
		v      float64
	}
	var bars []bar
	for _, s := range scenarios {
		sr := filter(logins, func(r row) bool { return r.scenario == s })
		for _, m := range methods(sr) {
			if v, ok := median(sr, m, 1, "login"); ok {
				bars = append(bars, bar{s + ": " + m, m, v})
			}
		}
	}
	// Bars go bottom up: reverse, so the first scenario's first method is on top.
	for i, j := 0, len(bars)-1; i < j; i, j = i+1, j-1 {
		bars[i], bars[j] = bars[j], bars[i]
	}
	p := plot.New()
	p.Title.Text = "Boot to the login prompt, per scenario and method (median of the runs)"
	p.X.Label.Text = "seconds"
	w := vg.Points(14)
	top := 0.0
	labels := make([]string, len(bars))
	for mi, m := range allMethods {
		vals := make(plotter.Values, len(bars))
		any := false
		for i, b := range bars {
			labels[i] = b.label
			if b.method == m {
				vals[i], any = b.v, true
				top = max(top, b.v)
			}
		}
		if !any {
			continue
		}
		bc, err := plotter.NewBarChart(vals, w)
		if err != nil {
			return err
		}
		bc.Horizontal = true
		bc.Color = colorOf(mi, m)
		bc.LineStyle.Width = 0
		p.Add(bc)
	}
	var pts []plotter.XY
	var texts []string
	for i, b := range bars {
		pts = append(pts, plotter.XY{X: b.v, Y: float64(i)})
		texts = append(texts, fmt.Sprintf(" %.1f s", b.v))
	}
	lab, err := plotter.NewLabels(plotter.XYLabels{XYs: pts, Labels: texts})
	if err != nil {
		return err
	}
	for i := range lab.TextStyle {
		lab.TextStyle[i].YAlign = draw.YCenter
	}
	p.Add(lab)
	p.X.Min, p.X.Max = 0, top*1.15 // room for the figures
	p.NominalY(labels...)
	return p.Save(8*vg.Inch, vg.Length(1.2+0.28*float64(len(bars)))*vg.Inch, path)
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// fleetTable is the markdown table of a fleet run set.
func fleetTable(rows []row) string {
	var b strings.Builder
	single, haveSingle := median(rows, "direct", 1, "p99")
	fmt.Fprintf(&b, "\nScenario %s, run %s (bench/results). Working set: %.1f MB in %.0f chunks.\n\n",
		rows[0].scenario, rows[0].date, first(rows, "working_set_bytes")/1e6, first(rows, "working_set_chunks"))
	b.WriteString("| method | clients | origin MB | × working set | origin requests | p50 | p99 | p99 ÷ one client | from peers MB | CPU s | failed |\n")
	b.WriteString("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n")
	for _, m := range methods(rows) {
		for _, n := range sizes(rows) {
			p99, ok := median(rows, m, n, "p99")
			if !ok {
				continue
			}
			p50, _ := median(rows, m, n, "p50")
			ob, _ := median(rows, m, n, "origin_bytes")
			ocb, _ := median(rows, m, n, "origin_chunk_bytes")
			ws, _ := median(rows, m, n, "working_set_bytes")
			req, _ := median(rows, m, n, "origin_requests")
			peers, _ := median(rows, m, n, "from_peers_bytes")
			failed, _ := median(rows, m, n, "failed")
			cpu := "-"
			if v, ok := median(rows, m, n, "cpu"); ok {
				cpu = fmt.Sprintf("%.1f", v)
			}
			ratio := "-"
			if haveSingle && single > 0 {
				ratio = fmt.Sprintf("%.2f", p99/single)
			}
			fmt.Fprintf(&b, "| %s | %d | %.1f | %.2f | %.0f | %.2f s | %.2f s | %s | %.1f | %s | %.0f |\n",
				m, n, ob/1e6, ocb/ws, req, p50, p99, ratio, peers/1e6, cpu, failed)
		}
	}
	return b.String() + "\n"
}

func first(rows []row, metric string) float64 {
	for _, r := range rows {
		if r.metric == metric {
			return r.value
		}
	}
	return 0
}

// bootTable lists the median boot figures per scenario and method.
func bootTable(rows []row) string {
	var b strings.Builder
	b.WriteString("\n| scenario | method | runs | login (median) | fetched MB | requests |\n| --- | --- | --- | --- | --- | --- |\n")
	var scenarios []string
	for _, r := range rows {
		if !contains(scenarios, r.scenario) {
			scenarios = append(scenarios, r.scenario)
		}
	}
	for _, s := range scenarios {
		sr := filter(rows, func(r row) bool { return r.scenario == s })
		for _, m := range methods(sr) {
			login, ok := median(sr, m, 1, "login")
			if !ok {
				continue
			}
			runs := len(filter(sr, func(r row) bool { return r.method == m && r.metric == "login" }))
			by, _ := median(sr, m, 1, "bytes")
			rq, _ := median(sr, m, 1, "requests")
			fmt.Fprintf(&b, "| %s | %s | %d | %.1f s | %.1f | %.0f |\n", s, m, runs, login, by/1e6, rq)
		}
	}
	return b.String() + "\n"
}

// secondsTicks labels a log axis of seconds at 1-2-5 steps.
type secondsTicks struct{}

func (secondsTicks) Ticks(min, max float64) []plot.Tick {
	var ts []plot.Tick
	for d := 1.0; d <= max*10; d *= 10 {
		for _, f := range []float64{1, 2, 5} {
			if v := d * f; v >= min && v <= max {
				ts = append(ts, plot.Tick{Value: v, Label: fmt.Sprint(v)})
			}
		}
	}
	return ts
}

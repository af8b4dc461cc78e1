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
	p.Y.Label.Text = "seconds (p99 solid, p50 dashed)"
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Legend.Top = true
	p.Legend.Left = true
	ns := sizes(rows)
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
	p.Y.Min = 0
	return p.Save(8*vg.Inch, 5*vg.Inch, path)
}

// fleetOriginChart: what the origin served, in working sets, against clients.
func fleetOriginChart(rows []row, path string) error {
	p := plot.New()
	p.Title.Text = "Fleet boot: bytes the origin served, in working sets of one boot"
	p.X.Label.Text = "clients booting at once (log scale)"
	p.Y.Label.Text = "origin chunk bytes / working set (log scale)"
	p.X.Scale, p.Y.Scale = plot.LogScale{}, plot.LogScale{}
	p.X.Tick.Marker, p.Y.Tick.Marker = plot.LogTicks{Prec: -1}, plot.LogTicks{Prec: -1}
	p.Legend.Top, p.Legend.Left = true, true
	for i, m := range methods(rows) {
		var xy plotter.XYs
		for _, n := range sizes(rows) {
			b, ok1 := median(rows, m, n, "origin_chunk_bytes")
			ws, ok2 := median(rows, m, n, "working_set_bytes")
			if ok1 && ok2 && ws > 0 && b > 0 {
				xy = append(xy, plotter.XY{X: float64(n), Y: b / ws})
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
		p.Add(l, pts)
		p.Legend.Add(m, l, pts)
	}
	return p.Save(8*vg.Inch, 5*vg.Inch, path)
}

// bootChart: median time to the login prompt per method, one group of bars per scenario.
func bootChart(rows []row, path string) error {
	p := plot.New()
	p.Title.Text = "Boot to the login prompt, per method (median of the runs)"
	p.Y.Label.Text = "seconds"
	var scenarios []string
	for _, r := range rows {
		if r.metric == "login" && !contains(scenarios, r.scenario) {
			scenarios = append(scenarios, r.scenario)
		}
	}
	if len(scenarios) == 0 {
		fmt.Println("plot: boot results have no login times: boot chart skipped")
		return nil
	}
	ms := methods(filter(rows, func(r row) bool { return r.metric == "login" }))
	w := vg.Points(min(90, 400/float64(len(ms)*len(scenarios))))
	top := 0.0
	for i, m := range ms {
		vals := make(plotter.Values, len(scenarios))
		for j, s := range scenarios {
			if v, ok := median(filter(rows, func(r row) bool { return r.scenario == s }), m, 1, "login"); ok {
				vals[j] = v
				top = max(top, v)
			}
		}
		b, err := plotter.NewBarChart(vals, w)
		if err != nil {
			return err
		}
		b.Color = colorOf(i, m)
		b.LineStyle.Width = 0
		b.Offset = w * vg.Length(float64(i)-float64(len(ms)-1)/2)
		p.Add(b)
		p.Legend.Add(m, b)
	}
	p.Legend.Top = true
	p.Y.Min, p.Y.Max = 0, top*1.25 // room for the legend
	p.NominalX(scenarios...)
	return p.Save(8*vg.Inch, 5*vg.Inch, path)
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
	b.WriteString("| method | clients | origin MB | × working set | origin requests | p50 | p99 | p99 ÷ one client | from peers MB | failed |\n")
	b.WriteString("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n")
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
			ratio := "-"
			if haveSingle && single > 0 {
				ratio = fmt.Sprintf("%.2f", p99/single)
			}
			fmt.Fprintf(&b, "| %s | %d | %.1f | %.2f | %.0f | %.2f s | %.2f s | %s | %.1f | %.0f |\n",
				m, n, ob/1e6, ocb/ws, req, p50, p99, ratio, peers/1e6, failed)
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

// Command plot draws the candidate-scaling figure of the end-to-end
// benchmark as a standalone SVG (standard library only): two panels,
// throughput (rps) and p99 latency (ms) against the number of candidates N
// (log scale), one solid polyline per concurrency level for D(N), the real
// Decide, and dashed horizontal lines for B0 (the empty handler) and B2
// (the I/O floor), which do not depend on N, in the same colour.
//
// Input (-i, default stdin): whitespace-separated lines
//
//	SCENARIO C N RPS P99_MS
//
// with SCENARIO one of B0, B2, D (N is ignored for B0 and B2); lines
// starting with # are skipped. bench/run.sh writes this file
// (bench/out/scaling.tsv) and the SVG (bench/out/scaling.svg).
//
//	plot -i bench/out/scaling.tsv -o bench/out/scaling.svg -title "..."
//
// With -series it draws any other curve of the same two panels instead:
// one line per series against X, from lines
//
//	SERIES X RPS P99_MS
//
// (SERIES a name without spaces, e.g. "D(100)"; X > 0), with -xlabel and
// -xlog (log scale). run.sh draws the concurrency sweep (X = c, log) and
// the open-loop sweep (X = offered rate, linear) this way.
//
//	plot -series -xlabel "concurrency c" -xlog -i c.tsv -o concurrency.svg
package main

import (
	"bufio"
	"cmp"
	"errors"
	"flag"
	"fmt"
	"html"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "plot:", err)
		os.Exit(1)
	}
}

type point struct {
	scenario string
	c, n     int
	rps, p99 float64
}

func run(args []string) error {
	fs := flag.NewFlagSet("plot", flag.ContinueOnError)
	in := fs.String("i", "", "input file; empty: stdin")
	out := fs.String("o", "", "output SVG file (required)")
	title := fs.String("title", "Arbiter: Decide with N candidates vs B0 and B2", "figure title")
	series := fs.Bool("series", false, "input is SERIES X RPS P99_MS: one line per series against X")
	xlabel := fs.String("xlabel", "x", "x axis label (-series)")
	xlog := fs.Bool("xlog", false, "log scale on the x axis (-series)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" {
		return fmt.Errorf("-o is required")
	}
	var r io.Reader = os.Stdin
	if *in != "" {
		f, err := os.Open(*in)
		if err != nil {
			return err
		}
		defer f.Close()
		r = f
	}
	if *series {
		ss, err := parseSeries(r)
		if err != nil {
			return err
		}
		if len(ss) == 0 {
			return fmt.Errorf("no rows in the input")
		}
		return os.WriteFile(*out, []byte(renderSeries(ss, *title, *xlabel, *xlog)), 0o644)
	}
	pts, err := parse(r)
	if err != nil {
		return err
	}
	if !slices.ContainsFunc(pts, func(p point) bool { return p.scenario == "D" }) {
		return fmt.Errorf("no D rows in the input")
	}
	svg := render(pts, *title)
	return os.WriteFile(*out, []byte(svg), 0o644)
}

// records calls fn with the fields of each line of r that is neither
// blank nor a # comment, after checking it has as many fields as shape
// names; an error names the line.
func records(r io.Reader, shape string, fn func(fields []string) error) error {
	want := len(strings.Fields(shape))
	sc := bufio.NewScanner(r)
	for line := 1; sc.Scan(); line++ {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		if len(fields) != want {
			return fmt.Errorf("line %d: want %s, got %q", line, shape, sc.Text())
		}
		if err := fn(fields); err != nil {
			return fmt.Errorf("line %d: %w", line, err)
		}
	}
	return sc.Err()
}

func parse(r io.Reader) ([]point, error) {
	var pts []point
	err := records(r, "SCENARIO C N RPS P99_MS", func(fields []string) error {
		var p point
		var err error
		p.scenario = fields[0]
		if p.scenario != "B0" && p.scenario != "B2" && p.scenario != "D" {
			return fmt.Errorf("scenario must be B0, B2 or D, got %q", p.scenario)
		}
		if p.c, err = strconv.Atoi(fields[1]); err != nil {
			return fmt.Errorf("c: %w", err)
		}
		if p.n, err = strconv.Atoi(fields[2]); err != nil {
			return fmt.Errorf("n: %w", err)
		}
		if p.rps, err = strconv.ParseFloat(fields[3], 64); err != nil {
			return fmt.Errorf("rps: %w", err)
		}
		if p.p99, err = strconv.ParseFloat(fields[4], 64); err != nil {
			return fmt.Errorf("p99: %w", err)
		}
		if p.scenario == "D" && p.n < 1 {
			return errors.New("D needs N >= 1")
		}
		pts = append(pts, p)
		return nil
	})
	return pts, err
}

var palette = []string{"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"}

const (
	panelW, panelH = 460, 320
	marginL        = 70
	marginR        = 20
	marginT        = 60
	marginB        = 50
	gap            = 60
	legendH        = 70
)

func render(pts []point, title string) string {
	var cs, ns []int
	for _, p := range pts {
		if !slices.Contains(cs, p.c) {
			cs = append(cs, p.c)
		}
		if p.scenario == "D" && !slices.Contains(ns, p.n) {
			ns = append(ns, p.n)
		}
	}
	slices.Sort(cs)
	slices.Sort(ns)
	color := map[int]string{}
	for i, c := range cs {
		color[c] = palette[i%len(palette)]
	}
	var b strings.Builder
	figure(&b, title)
	panel(&b, pts, cs, ns, color, marginL, "throughput (rps, higher is better)", func(p point) float64 { return p.rps })
	panel(&b, pts, cs, ns, color, marginL+panelW+gap+marginL, "p99 latency (ms, lower is better)", func(p point) float64 { return p.p99 })

	// Legend: one swatch per c, then the line styles.
	y := marginT + panelH + marginB + 10
	x := marginL
	for _, c := range cs {
		swatch(&b, x, y, color[c], fmt.Sprintf("c=%d", c))
		x += 80
	}
	y += 24
	x = marginL
	for _, s := range []struct{ name, dash string }{
		{"D(N): real Decide, N candidates", ""},
		{"B0: empty handler (health Check)", "8,4"},
		{"B2: floor (Decide's Redis access only)", "2,3"},
	} {
		fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black" stroke-width="2" stroke-dasharray="%s"/>`, x, y, x+30, y, s.dash)
		fmt.Fprintf(&b, `<text x="%d" y="%d">%s</text>`+"\n", x+36, y+4, html.EscapeString(s.name))
		x += 300
	}
	b.WriteString("</svg>\n")
	return b.String()
}

// panel draws one panel of the candidate-scaling figure at x0.
func panel(b *strings.Builder, pts []point, cs, ns []int, color map[int]string, x0 int, label string, val func(point) float64) {
	top := 0.0
	for _, p := range pts {
		top = max(top, val(p))
	}
	xs := make([]float64, len(ns))
	for i, n := range ns {
		xs[i] = float64(n)
	}
	px, py := axes(b, x0, label, "candidates N (log scale)", xs, true, top)
	for _, c := range cs {
		col := color[c]
		for _, s := range []struct{ name, dash string }{{"B0", "8,4"}, {"B2", "2,3"}} {
			for _, p := range pts {
				if p.scenario == s.name && p.c == c {
					y := py(val(p))
					fmt.Fprintf(b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="%s" stroke-width="1.5" stroke-dasharray="%s"><title>%s c=%d: %s</title></line>`+"\n",
						x0, y, x0+panelW, y, col, s.dash, s.name, c, tick(val(p)))
					fmt.Fprintf(b, `<text x="%d" y="%.1f" fill="%s" font-size="10" text-anchor="end">%s</text>`+"\n", x0+panelW-4, y-3, col, s.name)
				}
			}
		}
		var d []xpoint
		for _, p := range pts {
			if p.scenario == "D" && p.c == c {
				d = append(d, xpoint{x: float64(p.n), rps: p.rps, p99: p.p99})
			}
		}
		curve(b, d, px, py, col, func(p xpoint) float64 { return val(point{rps: p.rps, p99: p.p99}) },
			func(p xpoint) string { return fmt.Sprintf("D(%d) c=%d", int(p.x), c) })
	}
}

const (
	figureW = marginL + panelW + gap + marginL + panelW + marginR
	figureH = marginT + panelH + marginB + legendH
)

// figure opens the SVG of a two-panel figure with its title; the caller
// closes it.
func figure(b *strings.Builder, title string) {
	fmt.Fprintf(b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", figureW, figureH, figureW, figureH)
	fmt.Fprintf(b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(b, `<text x="%d" y="24" font-size="16" text-anchor="middle">%s</text>`+"\n", figureW/2, html.EscapeString(title))
}

// axes draws a panel's frame at x0: its label, the y grid from 0 to top
// (rounded up), and x ticks at xs on a linear or log scale padded so
// that the end points are off the frame. It returns the coordinate maps.
func axes(b *strings.Builder, x0 int, label, xlabel string, xs []float64, xlog bool, top float64) (px, py func(float64) float64) {
	top = niceCeil(top * 1.05)
	tx := func(x float64) float64 { return x }
	if xlog {
		tx = math.Log10
	}
	lo, hi := tx(xs[0]), tx(xs[len(xs)-1])
	if hi-lo < 1e-9 {
		lo, hi = lo-0.5, hi+0.5
	}
	pad := (hi - lo) * 0.06
	lo, hi = lo-pad, hi+pad
	px = func(x float64) float64 { return float64(x0) + (tx(x)-lo)/(hi-lo)*panelW }
	py = func(v float64) float64 { return float64(marginT) + panelH - v/top*panelH }

	fmt.Fprintf(b, `<text x="%d" y="%d" font-size="13" text-anchor="middle">%s</text>`+"\n", x0+panelW/2, marginT-12, html.EscapeString(label))
	fmt.Fprintf(b, `<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="black"/>`+"\n", x0, marginT, panelW, panelH)
	for i := 0; i <= 5; i++ {
		v := top * float64(i) / 5
		y := py(v)
		fmt.Fprintf(b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/>`, x0, y, x0+panelW, y)
		fmt.Fprintf(b, `<text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", x0-6, y+4, tick(v))
	}
	for _, x := range xs {
		fmt.Fprintf(b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#ddd"/>`, px(x), marginT, px(x), marginT+panelH)
		fmt.Fprintf(b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", px(x), marginT+panelH+16, strconv.FormatFloat(x, 'g', -1, 64))
	}
	fmt.Fprintf(b, `<text x="%d" y="%d" text-anchor="middle">%s</text>`+"\n", x0+panelW/2, marginT+panelH+36, html.EscapeString(xlabel))
	return px, py
}

// curve draws pts (sorted by x here) as a line with a marker per point,
// each marker titled name(p) and its value.
func curve(b *strings.Builder, pts []xpoint, px, py func(float64) float64, col string, val func(xpoint) float64, name func(xpoint) string) {
	pts = slices.Clone(pts)
	slices.SortFunc(pts, func(a, b xpoint) int { return cmp.Compare(a.x, b.x) })
	var coords []string
	for _, p := range pts {
		coords = append(coords, fmt.Sprintf("%.1f,%.1f", px(p.x), py(val(p))))
	}
	if len(coords) > 1 {
		fmt.Fprintf(b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2.5"/>`+"\n", strings.Join(coords, " "), col)
	}
	for _, p := range pts {
		fmt.Fprintf(b, `<circle cx="%.1f" cy="%.1f" r="3.5" fill="%s"><title>%s: %s</title></circle>`+"\n",
			px(p.x), py(val(p)), col, html.EscapeString(name(p)), tick(val(p)))
	}
}

// swatch draws a legend entry: a short line in col and its text.
func swatch(b *strings.Builder, x, y int, col, text string) {
	fmt.Fprintf(b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="3"/>`, x, y, x+24, y, col)
	fmt.Fprintf(b, `<text x="%d" y="%d">%s</text>`+"\n", x+30, y+4, html.EscapeString(text))
}

// niceCeil rounds v up to 1, 2, 2.5 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	e := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*e >= v {
			return m * e
		}
	}
	return 10 * e
}

func tick(v float64) string {
	switch {
	case v == 0:
		return "0"
	case v >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
}

// A series is one named line of -series mode.
type series struct {
	name string
	pts  []xpoint
}

type xpoint struct{ x, rps, p99 float64 }

// parseSeries reads SERIES X RPS P99_MS lines, keeping the series in the
// order they first appear.
func parseSeries(r io.Reader) ([]series, error) {
	var out []series
	err := records(r, "SERIES X RPS P99_MS", func(fields []string) error {
		var p xpoint
		var err error
		for i, dst := range []*float64{&p.x, &p.rps, &p.p99} {
			if *dst, err = strconv.ParseFloat(fields[i+1], 64); err != nil {
				return fmt.Errorf("field %d: %w", i+2, err)
			}
		}
		if p.x <= 0 {
			return fmt.Errorf("X must be > 0, got %v", p.x)
		}
		i := slices.IndexFunc(out, func(s series) bool { return s.name == fields[0] })
		if i < 0 {
			out = append(out, series{name: fields[0]})
			i = len(out) - 1
		}
		out[i].pts = append(out[i].pts, p)
		return nil
	})
	return out, err
}

func renderSeries(ss []series, title, xlabel string, xlog bool) string {
	var b strings.Builder
	figure(&b, title)
	seriesPanel(&b, ss, marginL, "throughput (rps, higher is better)", xlabel, xlog, func(p xpoint) float64 { return p.rps })
	seriesPanel(&b, ss, marginL+panelW+gap+marginL, "p99 latency (ms, lower is better)", xlabel, xlog, func(p xpoint) float64 { return p.p99 })
	y := marginT + panelH + marginB + 10
	for i, s := range ss {
		swatch(&b, marginL+150*i, y, palette[i%len(palette)], s.name)
	}
	b.WriteString("</svg>\n")
	return b.String()
}

func seriesPanel(b *strings.Builder, ss []series, x0 int, label, xlabel string, xlog bool, val func(xpoint) float64) {
	top := 0.0
	var xs []float64
	for _, s := range ss {
		for _, p := range s.pts {
			top = max(top, val(p))
			if !slices.Contains(xs, p.x) {
				xs = append(xs, p.x)
			}
		}
	}
	slices.Sort(xs)
	px, py := axes(b, x0, label, xlabel, xs, xlog, top)
	for i, s := range ss {
		curve(b, s.pts, px, py, palette[i%len(palette)], val,
			func(p xpoint) string { return s.name + " at " + strconv.FormatFloat(p.x, 'g', -1, 64) })
	}
}

// plot turns the benchmark results in bench/results (README there) into the charts next to
// docs/benchmarks.md (docs/img/*.png) and the tables inside it (between
// "<!-- bench/plot: NAME -->" and "<!-- /bench/plot -->" markers). It works on whatever
// results exist: a chart or table without data is skipped with a note.
//
//	cd bench/plot && go run . -results ../results -img ../../docs/img -doc ../../docs/benchmarks.md
//
// It is a module of its own so that the plotting library stays out of nowhere's binary
// and go.mod.
package main

import (
	"encoding/csv"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// row is one line of a results file.
type row struct {
	date, suite, scenario, method string
	n                             int
	metric                        string
	value                         float64
	file                          string
}

func main() {
	results := flag.String("results", "bench/results", "directory of results CSV files")
	img := flag.String("img", "docs/img", "directory for the charts")
	doc := flag.String("doc", "docs/benchmarks.md", "markdown file whose marked tables to rewrite (\"\": none)")
	flag.Parse()
	rows, err := load(*results)
	if err != nil {
		fmt.Fprintf(os.Stderr, "plot: %v\n", err)
		os.Exit(1)
	}
	if err := os.MkdirAll(*img, 0o755); err != nil {
		fmt.Fprintf(os.Stderr, "plot: %v\n", err)
		os.Exit(1)
	}
	tables := map[string]string{}
	fleet := latestFleet(rows)
	if len(fleet) == 0 {
		fmt.Println("plot: no fleet results: fleet charts and table skipped")
	} else {
		check(fleetTimeChart(fleet, filepath.Join(*img, "fleet-time.png")))
		check(fleetOriginChart(fleet, filepath.Join(*img, "fleet-origin.png")))
		tables["fleet"] = fleetTable(fleet)
	}
	boot := filter(rows, func(r row) bool { return r.suite == "boot" })
	if len(boot) == 0 {
		fmt.Println("plot: no boot results: boot chart and table skipped")
	} else {
		check(bootChart(boot, filepath.Join(*img, "boot-methods.png")))
		tables["boot"] = bootTable(boot)
	}
	if *doc != "" && len(tables) > 0 {
		check(rewriteDoc(*doc, tables))
	}
}

func check(err error) {
	if err != nil {
		fmt.Fprintf(os.Stderr, "plot: %v\n", err)
		os.Exit(1)
	}
}

// load reads every *.csv in dir, refusing a malformed line with its file and line.
func load(dir string) ([]row, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.csv"))
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	var out []row
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			return nil, err
		}
		recs, err := csv.NewReader(fh).ReadAll()
		fh.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %v", f, err)
		}
		for i, r := range recs {
			if i == 0 {
				if strings.Join(r, ",") != "date,suite,scenario,method,n,metric,value,unit" {
					return nil, fmt.Errorf("%s: header is not date,suite,scenario,method,n,metric,value,unit", f)
				}
				continue
			}
			n, err1 := strconv.Atoi(r[4])
			v, err2 := strconv.ParseFloat(r[6], 64)
			if err1 != nil || err2 != nil {
				return nil, fmt.Errorf("%s line %d: n %q or value %q is not a number", f, i+1, r[4], r[6])
			}
			out = append(out, row{r[0], r[1], r[2], r[3], n, r[5], v, f})
		}
	}
	return out, nil
}

func filter(rows []row, keep func(row) bool) []row {
	var out []row
	for _, r := range rows {
		if keep(r) {
			out = append(out, r)
		}
	}
	return out
}

// latestFleet returns the fleet rows of the most recent results file that has any.
func latestFleet(rows []row) []row {
	last, lastDate := "", ""
	for _, r := range rows {
		if r.suite == "fleet" && r.date > lastDate {
			last, lastDate = r.file, r.date
		}
	}
	return filter(rows, func(r row) bool { return r.suite == "fleet" && r.file == last })
}

// median of the values of rows matching (method, n, metric); ok false when none.
func median(rows []row, method string, n int, metric string) (float64, bool) {
	var v []float64
	for _, r := range rows {
		if r.method == method && r.n == n && r.metric == metric {
			v = append(v, r.value)
		}
	}
	if len(v) == 0 {
		return 0, false
	}
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2], true
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2, true
}

// methods returns the methods of rows, in a fixed order where known.
func methods(rows []row) []string {
	order := []string{"direct", "proxy", "peers", "limit", "profile", "noprofile", "stream", "stream-ra2M", "2005", "download", "toram"}
	var out []string
	for _, r := range rows {
		if !slices.Contains(out, r.method) {
			out = append(out, r.method)
		}
	}
	slices.SortStableFunc(out, func(a, b string) int {
		ia, ib := slices.Index(order, a), slices.Index(order, b)
		if ia < 0 {
			ia = len(order)
		}
		if ib < 0 {
			ib = len(order)
		}
		return ia - ib
	})
	return out
}

func sizes(rows []row) []int {
	var out []int
	for _, r := range rows {
		if !slices.Contains(out, r.n) {
			out = append(out, r.n)
		}
	}
	slices.Sort(out)
	return out
}

// rewriteDoc replaces the text between "<!-- bench/plot: NAME -->" and the next
// "<!-- /bench/plot -->" with tables[NAME], writing the file atomically.
func rewriteDoc(path string, tables map[string]string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	s := string(b)
	for name, table := range tables {
		open := "<!-- bench/plot: " + name + " -->"
		i := strings.Index(s, open)
		if i < 0 {
			fmt.Printf("plot: %s has no %s marker: table %s not written\n", path, open, name)
			continue
		}
		j := strings.Index(s[i:], "<!-- /bench/plot -->")
		if j < 0 {
			return fmt.Errorf("%s: %s without <!-- /bench/plot -->", path, open)
		}
		s = s[:i+len(open)] + "\n" + table + s[i+j:]
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(s), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

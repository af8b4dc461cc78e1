package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/nowhere-boot/nowhere/internal/chunk"
	"github.com/nowhere-boot/nowhere/internal/image"
	"github.com/nowhere-boot/nowhere/internal/index"
	"github.com/nowhere-boot/nowhere/internal/store"
	"github.com/nowhere-boot/nowhere/internal/units"
)

type mirrorsOptions struct {
	image   string
	samples int
	noList  bool
	rounds  int
	json    bool
}

func newMirrorsCommand() *cobra.Command {
	var o mirrorsOptions
	cmd := &cobra.Command{
		Use:   "mirrors URL...",
		Short: "Measure mirrors of a store and print them ranked (the successor of netselect)",
		Long: `Mirrors probes every given mirror of one store at once (plus the mirrors the store's
mirrors file lists), measures latency with small requests and, when an image is known
(a URL of the form STORE/images/NAME, or --image), throughput by fetching sample chunks
of it from each mirror, and prints them best first with the figures measured.`,
		Example: `  nowhere mirrors http://a.example/images/debian http://b.example http://c.example
  nowhere mirrors http://a.example http://b.example --image debian --samples 64`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return runMirrors(cmd.Context(), args, o) },
	}
	f := cmd.Flags()
	f.StringVar(&o.image, "image", "", "image whose chunks measure throughput")
	f.IntVar(&o.samples, "samples", 16, "chunks fetched from each mirror to measure throughput (0: latency only)")
	f.IntVar(&o.rounds, "probes", 3, "small requests sent to each mirror to measure latency")
	f.BoolVar(&o.noList, "no-mirror-list", false, "do not add the mirrors the store lists")
	f.BoolVar(&o.json, "json", false, "print JSON (the mirrors best first; times in milliseconds, throughput in bytes/s)")
	return cmd
}

func runMirrors(ctx context.Context, args []string, o mirrorsOptions) error {
	var stores []store.Store
	name := o.image
	for _, a := range args {
		base := strings.TrimSuffix(a, "/")
		if strings.Contains(a, "/images/") {
			loc, err := image.ParseLocation(a)
			if err != nil {
				return err
			}
			base = loc.Store
			if name == "" {
				name = loc.Name
			}
		}
		s, err := store.OpenMirror(base, store.HTTPOptions{})
		if err != nil {
			return err
		}
		stores = append(stores, s)
	}
	set, err := store.NewMirrorSet(stores, store.MirrorOptions{Log: logf, HedgeFraction: -1})
	if err != nil {
		return err
	}
	defer set.Close()
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for range max(o.rounds, 1) {
		set.Probe(pctx)
	}
	if !o.noList {
		if n := set.Learn(pctx, store.HTTPOptions{}); n > 0 {
			fmt.Fprintf(os.Stderr, "nowhere: added %s from the store's mirror list\n", units.Count(n, "mirror"))
		}
	}
	if up := upMirrors(set.Status()); up == 0 {
		// The table still shows each mirror's error; the exit status says it is all bad.
		o.show(set.Status())
		return fmt.Errorf("no mirror answered (%s probed)", units.Count(len(stores), "mirror"))
	}
	if name != "" && o.samples > 0 {
		if err := index.ValidName(name); err != nil {
			return fmt.Errorf("--image: %w", err)
		}
		ix, _, err := image.Load(ctx, set, image.Location{Name: name}, openPolicy)
		if err != nil {
			// The ranking by latency still stands: print it, then fail.
			o.show(set.Status())
			return fmt.Errorf("throughput not measured: %w", err)
		}
		mctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		set.Measure(mctx, sampleChunks(ix, o.samples))
	}
	o.show(set.Status())
	return nil
}

// mirrorJSON is one mirror of mirrors --json, best first as in the table.
type mirrorJSON struct {
	Rank        int     `json:"rank"`
	Mirror      string  `json:"mirror"`
	State       string  `json:"state"`
	LatencyMS   float64 `json:"latency_ms"`
	P50MS       float64 `json:"p50_ms"`
	P95MS       float64 `json:"p95_ms"`
	BytesPerSec float64 `json:"throughput_bytes_per_s"`
	Requests    int64   `json:"requests"`
	Failures    int64   `json:"failed"`
	Corrupt     int64   `json:"corrupt"`
	Hedges      int64   `json:"hedged"`
	Bytes       int64   `json:"received_bytes"`
	LastError   string  `json:"last_error,omitempty"`
}

// show prints the ranking: the table, or with --json its JSON.
func (o mirrorsOptions) show(ms []store.MirrorStatus) {
	if !o.json {
		writeMirrorTable(os.Stdout, ms)
		return
	}
	_ = printJSON(mirrorsJSON(ms)) // stdout gone: nothing to tell
}

// mirrorsJSON is the ranking as mirrors --json and status --json print it.
func mirrorsJSON(ms []store.MirrorStatus) []mirrorJSON {
	ms2 := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	out := make([]mirrorJSON, 0, len(ms))
	for i, m := range ms {
		out = append(out, mirrorJSON{
			Rank: i + 1, Mirror: m.Name, State: m.State,
			LatencyMS: ms2(m.Latency), P50MS: ms2(m.P50), P95MS: ms2(m.P95), BytesPerSec: m.Throughput,
			Requests: m.Requests, Failures: m.Failures, Corrupt: m.Corrupt, Hedges: m.Hedges, Bytes: m.Bytes,
			LastError: m.LastError,
		})
	}
	return out
}

// upMirrors counts the mirrors that answered their probes.
func upMirrors(ms []store.MirrorStatus) int {
	n := 0
	for _, m := range ms {
		if m.State == "up" {
			n++
		}
	}
	return n
}

// sampleChunks picks up to n distinct chunks spread over the image.
func sampleChunks(ix *index.Index, n int) []chunk.Ref {
	var data []index.Entry
	for _, e := range ix.Entries {
		if !e.Zero {
			data = append(data, e)
		}
	}
	seen := map[chunk.ID]bool{}
	var out []chunk.Ref
	step := max(len(data)/max(n, 1), 1)
	for i := 0; i < len(data) && len(out) < n; i += step {
		if e := data[i]; !seen[e.ID] {
			seen[e.ID] = true
			out = append(out, chunk.Ref{ID: e.ID, Len: e.Len, Stored: e.Stored})
		}
	}
	return out
}

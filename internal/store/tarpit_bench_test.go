package store_test

import (
	"cmp"
	"slices"
	"testing"
	"time"
)

// BenchmarkTarpits measures a read of 64 MiB of chunks (16 fetches at a time, like a
// reader's read-ahead) from one honest mirror alone (the baseline) and from the same
// mirror listed last among ten tarpits: mirrors that answer every probe and metadata
// request at once but, on a chunk, send the headers and then nothing until the client
// leaves. Both read through a fresh mirror set with the defaults (30 s attempt timeout),
// interleaved, three rounds. It reports the time of each, their ratio (goal: at most 2x)
// and the longest single fetch (goal: under one attempt timeout). Run with -benchtime=1x.
func BenchmarkTarpits(b *testing.B) {
	dir, ix, _ := mirrorImage(b, 64<<20, 7)
	refs := refsOf(ix)
	honest := linkSpec{latency: 2 * time.Millisecond, bandwidth: 400e6}
	tarpit := linkSpec{latency: 2 * time.Millisecond, bandwidth: 400e6, tarpitChunks: true}
	for b.Loop() {
		var alone, among []benchResult
		for round := range 3 {
			a := fetchAll(b, refs, []string{startLinkMirror(b, dir, honest, nil).url}, 16, 0.05)
			var urls []string
			for range 10 {
				urls = append(urls, startLinkMirror(b, dir, tarpit, nil).url)
			}
			urls = append(urls, startLinkMirror(b, dir, honest, nil).url)
			t := fetchAll(b, refs, urls, 16, 0.05)
			alone, among = append(alone, a), append(among, t)
			b.Logf("round %d: honest alone %s (longest fetch %s); among ten tarpits %s (longest fetch %s): %.2fx",
				round+1, a.elapsed.Round(time.Millisecond), a.max.Round(time.Millisecond),
				t.elapsed.Round(time.Millisecond), t.max.Round(time.Millisecond), t.elapsed.Seconds()/a.elapsed.Seconds())
		}
		a, t := medianElapsed(alone), medianElapsed(among)
		var longest time.Duration
		for _, r := range among {
			longest = max(longest, r.max)
		}
		b.ReportMetric(a.elapsed.Seconds(), "alone_s")
		b.ReportMetric(t.elapsed.Seconds(), "among10tarpits_s")
		b.ReportMetric(t.elapsed.Seconds()/a.elapsed.Seconds(), "tarpits/alone_x")
		b.ReportMetric(longest.Seconds(), "longest_fetch_s")
		b.Logf("%d chunks, 64 MiB: median honest alone %s, among ten tarpits %s (%.2fx); longest single fetch among tarpits %s",
			len(refs), a.elapsed.Round(time.Millisecond), t.elapsed.Round(time.Millisecond),
			t.elapsed.Seconds()/a.elapsed.Seconds(), longest.Round(time.Millisecond))
	}
}

// medianElapsed returns the run with the median elapsed time.
func medianElapsed(rs []benchResult) benchResult {
	sorted := slices.Clone(rs)
	slices.SortFunc(sorted, func(a, b benchResult) int { return cmp.Compare(a.elapsed, b.elapsed) })
	return sorted[len(sorted)/2]
}

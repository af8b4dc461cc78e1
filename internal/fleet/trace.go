// Package fleet simulates many clients booting one image at the same moment: each client
// replays a recorded boot's reads (a Trace) through the real read path (image reader,
// disk cache, mirror set, LAN peers) with a cache and an HTTP transport of its own, and
// the fleet reports how long each took.
package fleet

import (
	"bufio"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nowhere-boot/nowhere/internal/chunk"
	"github.com/nowhere-boot/nowhere/internal/index"
)

// Read is one read of the image.
type Read struct {
	Off, Len int64
}

// Trace is what a boot read, as a chain of bursts: the reads of a burst were in flight
// together (the replay issues them at once); a burst starts when the one before it has
// completed (the boot waited for it). Think time between bursts is not kept: the replay
// measures the I/O a boot waits for, not its CPU work.
type Trace struct {
	Bursts [][]Read
}

const traceMagic = "nowhere-trace 1"

// Reads returns how many reads the trace has and how many bytes they cover.
func (t *Trace) Reads() (n int, bytes int64) {
	for _, b := range t.Bursts {
		for _, r := range b {
			n++
			bytes += r.Len
		}
	}
	return
}

// Write writes the trace as text: the magic line, then "BURST OFFSET LENGTH" per read.
func (t *Trace) Write(w io.Writer) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintln(bw, traceMagic)
	for i, b := range t.Bursts {
		for _, r := range b {
			fmt.Fprintf(bw, "%d %d %d\n", i, r.Off, r.Len)
		}
	}
	return bw.Flush()
}

// ReadTrace parses what Write wrote, checking every read lies within size bytes.
func ReadTrace(r io.Reader, size int64) (*Trace, error) {
	sc := bufio.NewScanner(r)
	if !sc.Scan() || sc.Text() != traceMagic {
		return nil, fmt.Errorf("trace: first line is not %q", traceMagic)
	}
	t := &Trace{}
	for line := 2; sc.Scan(); line++ {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		var v [3]int64
		for i := range v {
			if len(f) != 3 {
				return nil, fmt.Errorf("trace line %d: want BURST OFFSET LENGTH", line)
			}
			n, err := strconv.ParseInt(f[i], 10, 64)
			if err != nil || n < 0 {
				return nil, fmt.Errorf("trace line %d: %q is not a number", line, f[i])
			}
			v[i] = n
		}
		burst, off, n := int(v[0]), v[1], v[2]
		if burst < len(t.Bursts)-1 || burst > len(t.Bursts) {
			return nil, fmt.Errorf("trace line %d: burst %d out of order", line, burst)
		}
		if n == 0 || off+n > size || off+n < off {
			return nil, fmt.Errorf("trace line %d: read %d+%d outside the image (%d bytes)", line, off, n, size)
		}
		if burst == len(t.Bursts) {
			t.Bursts = append(t.Bursts, nil)
		}
		t.Bursts[burst] = append(t.Bursts[burst], Read{off, n})
	}
	if len(t.Bursts) == 0 {
		return nil, fmt.Errorf("trace: no reads")
	}
	return t, sc.Err()
}

// accessLine matches a line of `nowhere serve`'s access log for a chunk:
// "2026/11/25 17:57:01.123456 ADDR GET /chunks/XXXX/ID.cacnk 200 BYTES RANGE DURATION".
var accessLine = regexp.MustCompile(`^(\d{4}/\d\d/\d\d \d\d:\d\d:\d\d\.\d{6}) \S+ GET /chunks/[0-9a-f]{4}/([0-9a-f]{64})\.cacnk 200 \d+ \S+ (\S+)$`)

// LogTime is the time format of `nowhere serve`'s access log.
const LogTime = "2006/01/02 15:04:05.000000"

// FromAccessLog turns the access log of the server a boot read from into a trace of ix's
// chunks: each chunk request becomes a read of that chunk's bytes in the image (its first
// place), requests that overlapped in time form a burst. Requests that ended after until
// (when it is not zero) are left out.
func FromAccessLog(log io.Reader, ix *index.Index, until time.Time) (*Trace, error) {
	where := map[chunk.ID]Read{}
	for _, e := range ix.Entries {
		if _, ok := where[e.ID]; !ok && !e.Zero {
			where[e.ID] = Read{e.Off, int64(e.Len)}
		}
	}
	type req struct {
		start, end time.Time
		r          Read
	}
	var reqs []req
	sc := bufio.NewScanner(log)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		m := accessLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		end, err := time.Parse(LogTime, m[1])
		if err != nil || (!until.IsZero() && end.After(until)) {
			continue
		}
		d, err := time.ParseDuration(m[3])
		if err != nil {
			continue
		}
		id, err := chunk.ParseID(m[2])
		if err != nil {
			continue
		}
		r, ok := where[id]
		if !ok {
			return nil, fmt.Errorf("access log: chunk %s is not in image %s", id, ix.Name)
		}
		reqs = append(reqs, req{end.Add(-d), end, r})
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(reqs) == 0 {
		return nil, fmt.Errorf("access log: no chunk requests")
	}
	slices.SortStableFunc(reqs, func(a, b req) int { return a.start.Compare(b.start) })
	t := &Trace{}
	var busyUntil time.Time
	for _, q := range reqs {
		if len(t.Bursts) == 0 || !q.start.Before(busyUntil) {
			t.Bursts = append(t.Bursts, nil) // nothing was in flight: the boot waited
		}
		last := len(t.Bursts) - 1
		t.Bursts[last] = append(t.Bursts[last], q.r)
		if q.end.After(busyUntil) {
			busyUntil = q.end
		}
	}
	return t, nil
}

// Sequential is a synthetic trace for tests: the image read from the start in reads of
// readSize, burst reads at a time, up to limit bytes.
func Sequential(size, limit, readSize int64, burst int) *Trace {
	t := &Trace{}
	var cur []Read
	for off := int64(0); off < min(size, limit); off += readSize {
		cur = append(cur, Read{off, min(readSize, size-off)})
		if len(cur) == burst {
			t.Bursts = append(t.Bursts, cur)
			cur = nil
		}
	}
	if len(cur) > 0 {
		t.Bursts = append(t.Bursts, cur)
	}
	return t
}

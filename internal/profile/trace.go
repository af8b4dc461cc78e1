// Package profile records the order in which a boot reads an image, turns recordings into
// the boot profile an index carries (index.Profile), and prefetches a profile's chunks
// while the boot runs, on-demand reads first.
//
//	record:   fusefs ◀─ Recording (notes each chunk's first read) ◀─ image.Reader
//	publish:  Trace files ─▶ Merge ─▶ Apply(index) ─▶ signed index, next version
//	boot:     image.Reader ◀─ Prefetcher (profile queue, paused by demand) ◀─ cache ◀─ mirrors
package profile

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/nowhere-boot/nowhere/internal/chunk"
	"github.com/nowhere-boot/nowhere/internal/index"
)

// Trace is what one or more recorded boots read of an image, each chunk once, in the
// order they first read it. It names chunks by ID (and, for the reader's convenience,
// by entry number and offset in the index it was recorded on), so a trace recorded on one
// version of an image applies to another version that shares chunks.
type Trace struct {
	Image   string // image name ("" when merged from several images)
	Version uint64 // index version recorded on (0 when merged from several versions)
	Boots   int    // recorded boots this trace stands for
	Items   []Item
}

// Item is one chunk of a trace.
type Item struct {
	Entry int   // entry number in the recorded-on index
	Off   int64 // the entry's offset in the image
	Len   uint32
	ID    chunk.ID
}

// FileMagic starts a trace file.
const FileMagic = "nowhere-profile 1"

// MaxItems bounds a trace file: more than any index's entries (index.MaxBody / 49).
const MaxItems = 6 << 20

// FromEntries makes a one-boot trace of ix from entry numbers in first-read order (zero
// runs and chunks already listed are dropped).
func FromEntries(ix *index.Index, entries []int) (*Trace, error) {
	tr := &Trace{Image: ix.Name, Version: ix.Version, Boots: 1}
	seen := make(map[chunk.ID]bool, len(entries))
	for _, i := range entries {
		if i < 0 || i >= len(ix.Entries) {
			return nil, fmt.Errorf("entry %d is not in %s version %d (%d entries)", i, ix.Name, ix.Version, len(ix.Entries))
		}
		e := ix.Entries[i]
		if e.Zero || seen[e.ID] {
			continue // nothing to fetch; or a chunk already read at another offset
		}
		seen[e.ID] = true
		tr.Items = append(tr.Items, Item{Entry: i, Off: e.Off, Len: e.Len, ID: e.ID})
	}
	return tr, nil
}

// FromIndex returns the profile an index carries as a trace.
func FromIndex(ix *index.Index) *Trace {
	tr, _ := FromEntries(ix, ix.Profile.Entries) // Decode checked the entries
	tr.Boots = int(ix.Profile.Boots)
	return tr
}

// Bytes is the plain size of the trace's chunks.
func (t *Trace) Bytes() int64 {
	var n int64
	for _, it := range t.Items {
		n += int64(it.Len)
	}
	return n
}

// Encode writes the trace as text: a magic line, the image, the number of boots, then one
// line per chunk: entry number, offset, length, chunk ID.
func (t *Trace) Encode() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s\nimage %s %d\nboots %d\n# entry offset length chunk, in first-read order\n", FileMagic, orDash(t.Image), t.Version, t.Boots)
	for _, it := range t.Items {
		fmt.Fprintf(&b, "%d %d %d %s\n", it.Entry, it.Off, it.Len, it.ID)
	}
	return b.Bytes()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// ParseTrace reads what Encode writes. Errors name the line.
func ParseTrace(r io.Reader) (*Trace, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), 4096)
	line := 0
	bad := func(format string, a ...any) (*Trace, error) {
		return nil, fmt.Errorf("line %d: "+format, append([]any{line}, a...)...)
	}
	next := func() (string, bool) {
		for sc.Scan() {
			line++
			s := strings.TrimSpace(sc.Text())
			if s != "" && !strings.HasPrefix(s, "#") {
				return s, true
			}
		}
		return "", false
	}
	s, ok := next()
	if !ok || s != FileMagic {
		if err := sc.Err(); err != nil {
			return nil, err
		}
		return bad("not a nowhere profile (want %q first)", FileMagic)
	}
	tr := &Trace{}
	s, _ = next()
	f := strings.Fields(s)
	if len(f) != 3 || f[0] != "image" {
		return bad("want `image NAME VERSION`, got %q", s)
	}
	if f[1] != "-" {
		if err := index.ValidName(f[1]); err != nil {
			return bad("%v", err)
		}
		tr.Image = f[1]
	}
	v, err := strconv.ParseUint(f[2], 10, 64)
	if err != nil {
		return bad("version %q is not a number", f[2])
	}
	tr.Version = v
	s, _ = next()
	f = strings.Fields(s)
	if len(f) != 2 || f[0] != "boots" {
		return bad("want `boots N`, got %q", s)
	}
	if tr.Boots, err = strconv.Atoi(f[1]); err != nil || tr.Boots < 0 || tr.Boots > 1<<20 {
		return bad("boots %q is not a small number", f[1])
	}
	seen := map[chunk.ID]bool{}
	for {
		s, ok := next()
		if !ok {
			break
		}
		f := strings.Fields(s)
		if len(f) != 4 {
			return bad("want `ENTRY OFFSET LENGTH CHUNK`, got %q", s)
		}
		var it Item
		e, err1 := strconv.ParseUint(f[0], 10, 32)
		off, err2 := strconv.ParseUint(f[1], 10, 62)
		n, err3 := strconv.ParseUint(f[2], 10, 32)
		id, err4 := chunk.ParseID(f[3])
		if err := errors.Join(err1, err2, err3); err != nil || n == 0 || n > chunk.MaxSize {
			return bad("bad entry, offset or length in %q", s)
		}
		if err4 != nil {
			return bad("chunk ID: %v", err4)
		}
		it.Entry, it.Off, it.Len, it.ID = int(e), int64(off), uint32(n), id
		if seen[id] {
			return bad("chunk %s listed twice", id)
		}
		seen[id] = true
		if len(tr.Items) >= MaxItems {
			return bad("more than %d chunks", MaxItems)
		}
		tr.Items = append(tr.Items, it)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			line++ // the scanner stopped before counting it
			return bad("line too long")
		}
		return nil, err
	}
	return tr, nil
}

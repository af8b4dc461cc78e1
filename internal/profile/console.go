package profile

import (
	"bufio"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
)

// A boot records its profile on the console (nowhere.profile=record): the root daemon
// prints lines like
//
//	[   5.123] nowhere-root: profile debian 2 @0: 17 18 19 4 5 200 201
//	[   5.376] nowhere-root: profile debian 2 @7: 6 7 880
//
// naming the image, its version, how many entries earlier lines gave (to notice a lost
// line) and the next entries in the order of their first read. ParseConsole reads them
// back from the console log on the host.

// consolePerLine keeps lines short: a console line another writer interrupts loses little.
const consolePerLine = 24

// ConsoleLines formats entries (the ones after the first start) as console lines.
func ConsoleLines(name string, version uint64, start int, entries []int) []string {
	var out []string
	for len(entries) > 0 {
		n := min(len(entries), consolePerLine)
		var b strings.Builder
		fmt.Fprintf(&b, "profile %s %d @%d:", name, version, start)
		for _, e := range entries[:n] {
			b.WriteByte(' ')
			b.WriteString(strconv.Itoa(e))
		}
		out = append(out, b.String())
		start += n
		entries = entries[n:]
	}
	return out
}

var consoleLine = regexp.MustCompile(`profile ([A-Za-z0-9._-]+) ([0-9]+) @([0-9]+):((?: [0-9]+)+)\s*$`)

// ConsoleRecord is what ParseConsole found.
type ConsoleRecord struct {
	Image   string
	Version uint64
	Entries []int
	Gaps    []string // lost or garbled lines, described
}

// ParseConsole reads a console log and returns the recorded entries, up to the first line
// that matches until (nil: to the end). Console output goes on after a prompt on the same
// line, so until should not be anchored with $ ("login: ", not "login: *$"). The lines must
// all name one image and version.
func ParseConsole(r io.Reader, until *regexp.Regexp) (*ConsoleRecord, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	rec := &ConsoleRecord{}
	lineNo := 0
	found := false
	for sc.Scan() {
		lineNo++
		line := strings.TrimRight(sc.Text(), "\r")
		if until != nil && until.MatchString(line) {
			break
		}
		m := consoleLine.FindStringSubmatch(line)
		if m == nil {
			if strings.Contains(line, "nowhere-root: profile ") {
				rec.Gaps = append(rec.Gaps, fmt.Sprintf("line %d: garbled profile line", lineNo))
			}
			continue
		}
		v, err1 := strconv.ParseUint(m[2], 10, 64)
		at, err2 := strconv.Atoi(m[3])
		if err1 != nil || err2 != nil {
			rec.Gaps = append(rec.Gaps, fmt.Sprintf("line %d: garbled profile line", lineNo))
			continue
		}
		if !found {
			rec.Image, rec.Version, found = m[1], v, true
		} else if m[1] != rec.Image || v != rec.Version {
			return nil, fmt.Errorf("line %d: profile of %s version %d, but earlier lines record %s version %d", lineNo, m[1], v, rec.Image, rec.Version)
		}
		if at != len(rec.Entries) {
			rec.Gaps = append(rec.Gaps, fmt.Sprintf("line %d: starts at entry %d of the recording, %d read so far", lineNo, at, len(rec.Entries)))
			if at < len(rec.Entries) {
				continue // a repeat
			}
		}
		for _, f := range strings.Fields(m[4]) {
			e, err := strconv.Atoi(f)
			if err != nil {
				return nil, fmt.Errorf("line %d: entry %q", lineNo, f)
			}
			rec.Entries = append(rec.Entries, e)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if !found {
		return nil, fmt.Errorf("no profile lines (boot with nowhere.profile=record)")
	}
	return rec, nil
}

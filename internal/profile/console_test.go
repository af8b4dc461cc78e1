package profile

import (
	"regexp"
	"strings"
	"testing"
)

func TestConsoleRoundTrip(t *testing.T) {
	var entries []int
	for i := range 100 {
		entries = append(entries, (i*7919)%1000)
	}
	var log strings.Builder
	log.WriteString("[    0.000000] Linux version 6.1.0\n")
	for k, l := range ConsoleLines("debian", 2, 0, entries[:30]) {
		log.WriteString("[   5.1" + strings.Repeat("0", k) + "] nowhere-root: " + l + "\r\n")
		log.WriteString("[  OK  ] Started something.\n")
	}
	for _, l := range ConsoleLines("debian", 2, 30, entries[30:80]) {
		log.WriteString("[   9.000] nowhere-root: " + l + "\n")
	}
	log.WriteString("\nDebian GNU/Linux 12 nowhere ttyS0\n\nnowhere login: ")
	for _, l := range ConsoleLines("debian", 2, 80, entries[80:]) {
		log.WriteString("[  30.000] nowhere-root: " + l + "\n")
	}
	rec, err := ParseConsole(strings.NewReader(log.String()), regexp.MustCompile(`login: `))
	if err != nil {
		t.Fatal(err)
	}
	if rec.Image != "debian" || rec.Version != 2 || len(rec.Gaps) != 0 || len(rec.Entries) != 80 {
		t.Fatalf("parsed %s %d, %d entries, gaps %v; want debian 2, the 80 before the prompt", rec.Image, rec.Version, len(rec.Entries), rec.Gaps)
	}
	for i := range rec.Entries {
		if rec.Entries[i] != entries[i] {
			t.Fatalf("entry %d: %d, want %d", i, rec.Entries[i], entries[i])
		}
	}
	all, err := ParseConsole(strings.NewReader(log.String()), nil)
	if err != nil || len(all.Entries) != 100 {
		t.Fatalf("to the end: %d entries, %v", len(all.Entries), err)
	}
}

func TestConsoleNoticesLostLines(t *testing.T) {
	lines := ConsoleLines("img", 1, 0, []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26})
	if len(lines) != 2 {
		t.Fatalf("%d lines for 26 entries", len(lines))
	}
	// The first line is cut by another writer: its entries are lost, the gap is reported.
	log := "nowhere-root: " + lines[0][:20] + "[  OK  ] Reached target\nnowhere-root: " + lines[1] + "\n"
	rec, err := ParseConsole(strings.NewReader(log), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rec.Entries) != 2 || len(rec.Gaps) != 2 {
		t.Fatalf("entries %v, gaps %v: want the 2 of the second line and 2 gaps (garbled, and a jump)", rec.Entries, rec.Gaps)
	}
	if _, err := ParseConsole(strings.NewReader("no profile here\n"), nil); err == nil || !strings.Contains(err.Error(), "nowhere.profile=record") {
		t.Fatalf("a log without profile lines: %v", err)
	}
	mixed := "profile a 1 @0: 1\nprofile b 1 @1: 2\n"
	if _, err := ParseConsole(strings.NewReader(mixed), nil); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Fatalf("two images in one log: %v", err)
	}
}

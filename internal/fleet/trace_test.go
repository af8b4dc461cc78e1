package fleet

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/nowhere-boot/nowhere/internal/chunk"
	"github.com/nowhere-boot/nowhere/internal/index"
)

func TestFromAccessLogMakesBurstsOfOverlappingRequests(t *testing.T) {
	ids := []chunk.ID{chunk.Sum([]byte("a")), chunk.Sum([]byte("b")), chunk.Sum([]byte("c")), chunk.Sum([]byte("d"))}
	ix := &index.Index{Name: "x", Size: 400}
	for i, id := range ids {
		ix.Entries = append(ix.Entries, index.Entry{Off: int64(i) * 100, Len: 100, Stored: 50, ID: id})
	}
	line := func(end string, id chunk.ID, d string) string {
		return "2026/11/25 10:00:" + end + " 10.0.2.15:4000 GET /chunks/" + id.String()[:4] + "/" + id.String() + ".cacnk 200 50 - " + d + "\n"
	}
	log := "serving ...\n" +
		line("00.010000", ids[0], "10ms") + // 0.000-0.010: burst 0
		line("00.030000", ids[1], "15ms") + // 0.015-0.030: burst 1 (started after 0 ended)
		line("00.032000", ids[2], "10ms") + // 0.022-0.032: overlaps 1: burst 1
		"2026/11/25 10:00:00.040000 10.0.2.15:4000 GET /images/x/latest 200 300 - 1ms\n" +
		line("00.100000", ids[3], "1ms") + // 0.099-0.100: burst 2
		line("01.000000", ids[0], "1ms") // after until: left out
	until, _ := time.Parse(LogTime, "2026/11/25 10:00:00.500000")
	tr, err := FromAccessLog(strings.NewReader(log), ix, until)
	if err != nil {
		t.Fatal(err)
	}
	want := [][]Read{{{0, 100}}, {{100, 100}, {200, 100}}, {{300, 100}}}
	if len(tr.Bursts) != len(want) {
		t.Fatalf("bursts %v, want %v", tr.Bursts, want)
	}
	for i := range want {
		if len(tr.Bursts[i]) != len(want[i]) || tr.Bursts[i][0] != want[i][0] {
			t.Errorf("burst %d = %v, want %v", i, tr.Bursts[i], want[i])
		}
	}
	var b bytes.Buffer
	tr.Write(&b)
	back, err := ReadTrace(&b, ix.Size)
	if err != nil || len(back.Bursts) != 3 || len(back.Bursts[1]) != 2 {
		t.Errorf("round trip: %v, %v", back, err)
	}
	if _, err := FromAccessLog(strings.NewReader(line("00.010000", chunk.Sum([]byte("zz")), "1ms")), ix, time.Time{}); err == nil {
		t.Error("a chunk the image lacks was accepted")
	}
}

func TestReadTraceRefusesBadTraces(t *testing.T) {
	for in, want := range map[string]string{
		"":                                   "first line",
		"nowhere-trace 1\n":                  "no reads",
		"nowhere-trace 1\n0 0 10\n2 10 10\n": "out of order",
		"nowhere-trace 1\n0 0 10\n0 95 10\n": "outside the image",
		"nowhere-trace 1\n0 0\n":             "BURST OFFSET LENGTH",
		"nowhere-trace 1\n0 -5 10\n":         "not a number",
		"nowhere-trace 1\n0 0 0\n":           "outside",
	} {
		_, err := ReadTrace(strings.NewReader(in), 100)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", in, err, want)
		}
	}
}

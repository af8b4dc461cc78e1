package profile

import (
	"bytes"
	"strings"
	"testing"
)

func TestTraceRoundTrip(t *testing.T) {
	p := packImage(t, testImage())
	tr, err := FromEntries(p.ix, []int{40, 3, 3, 32, 0, 64, 1}) // 32 is the zero run
	if err != nil {
		t.Fatal(err)
	}
	if len(tr.Items) != 5 || tr.Items[0].Entry != 40 || tr.Items[1].Entry != 3 || tr.Items[2].Entry != 0 {
		t.Fatalf("items %+v: want 40 3 0 64 1 (zero runs and repeats dropped)", tr.Items)
	}
	back, err := ParseTrace(bytes.NewReader(tr.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	if back.Image != "img" || back.Version != 1 || back.Boots != 1 || len(back.Items) != 5 {
		t.Fatalf("parsed %+v", back)
	}
	for i := range tr.Items {
		if back.Items[i] != tr.Items[i] {
			t.Fatalf("item %d: %+v, want %+v", i, back.Items[i], tr.Items[i])
		}
	}
	if _, err := FromEntries(p.ix, []int{65}); err == nil {
		t.Fatal("an entry beyond the index was accepted")
	}
}

func TestParseTraceRejects(t *testing.T) {
	id := strings.Repeat("ab", 32)
	head := FileMagic + "\nimage img 1\nboots 1\n"
	cases := map[string]struct{ text, want string }{
		"empty":         {"", "line 0: not a nowhere profile"},
		"magic":         {"nowhere-profile 2\n", "line 1: not a nowhere profile"},
		"no image":      {FileMagic + "\nboots 1\n", "line 2: want `image NAME VERSION`"},
		"bad name":      {FileMagic + "\nimage ../x 1\nboots 1\n", "line 2: image name"},
		"bad version":   {FileMagic + "\nimage img x\nboots 1\n", "line 2: version"},
		"bad boots":     {FileMagic + "\nimage img 1\nboots -1\n", "line 3: boots"},
		"short item":    {head + "1 2 3\n", "line 4: want `ENTRY OFFSET LENGTH CHUNK`"},
		"bad offset":    {head + "1 -2 3 " + id + "\n", "line 4: bad entry, offset or length"},
		"zero length":   {head + "1 2 0 " + id + "\n", "line 4: bad entry, offset or length"},
		"bad id":        {head + "1 2 3 abc\n", "line 4: chunk ID"},
		"twice":         {head + "1 0 4096 " + id + "\n# comment\n2 4096 4096 " + id + "\n", "line 6: chunk " + id + " listed twice"},
		"line too long": {head + strings.Repeat("1", 5000) + "\n", "line 4: line too long"},
	}
	for name, c := range cases {
		_, err := ParseTrace(strings.NewReader(c.text))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", name, err, c.want)
		}
	}
}

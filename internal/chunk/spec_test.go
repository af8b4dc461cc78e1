package chunk

import (
	"strings"
	"testing"
)

func TestParseSpecGood(t *testing.T) {
	cases := map[string]Spec{
		"fixed:64K":             {Kind: KindFixed, Min: 64 << 10, Avg: 64 << 10, Max: 64 << 10, Align: 64 << 10},
		"fixed:512":             {Kind: KindFixed, Min: 512, Avg: 512, Max: 512, Align: 512},
		"fixed:16M":             {Kind: KindFixed, Min: 16 << 20, Avg: 16 << 20, Max: 16 << 20, Align: 16 << 20},
		"fixed:4k":              {Kind: KindFixed, Min: 4096, Avg: 4096, Max: 4096, Align: 4096},
		DefaultSpec:             {Kind: KindCDC, Min: 16 << 10, Avg: 64 << 10, Max: 256 << 10},
		"cdc:16K:64K:256K:4096": {Kind: KindCDC, Min: 16 << 10, Avg: 64 << 10, Max: 256 << 10, Align: 4096},
		"cdc:16k:64k:256k:1":    {Kind: KindCDC, Min: 16 << 10, Avg: 64 << 10, Max: 256 << 10, Align: 1},
		"cdc:64:64:64":          {Kind: KindCDC, Min: 64, Avg: 64, Max: 64},
		"cdc:1M:2M:16M:64":      {Kind: KindCDC, Min: 1 << 20, Avg: 2 << 20, Max: 16 << 20, Align: 64},
	}
	for s, want := range cases {
		got, err := ParseSpec(s)
		if err != nil {
			t.Errorf("ParseSpec(%q): %v", s, err)
			continue
		}
		if got != want {
			t.Errorf("ParseSpec(%q) = %+v, want %+v", s, got, want)
		}
	}
}

func TestParseSpecBad(t *testing.T) {
	cases := map[string]string{ // spec -> part of the error
		"":                       `unknown kind ""`,
		"cdc":                    "cdc takes three or four sizes",
		"cdc:16K:64K":            "cdc takes three or four sizes",
		"cdc:1K:2K:3K:4K:5K":     "cdc takes three or four sizes",
		"fixed":                  "fixed takes one size",
		"fixed:64K:1":            "fixed takes one size",
		"fixed:100":              "size must be between 512 and",
		"fixed:17M":              `bad size "17"`,
		"fixed:0":                `bad size "0"`,
		"fixed:-4K":              `bad size "-4"`,
		"fixed:64Q":              `bad size "64Q"`,
		"fixed:":                 `bad size ""`,
		"cdc:64K:16K:256K":       "need 0 < MIN <= AVG <= MAX",
		"cdc:16K:64K:32K":        "need 0 < MIN <= AVG <= MAX",
		"cdc:32:64:128":          "MIN below 64 bytes",
		"cdc:16K:64K:17M":        `bad size "17"`,
		"cdc:16K:64K:16777217":   `bad size "16777217"`,
		"cdc:16K:64K:256K:100":   "ALIGN must be 1 or a power of two >= 64",
		"cdc:16K:64K:256K:32":    "ALIGN must be 1 or a power of two >= 64",
		"cdc:6K:64K:256K:4096":   "MIN and MAX must be multiples of ALIGN",
		"cdc:16K:64K:250K:4096":  "MIN and MAX must be multiples of ALIGN",
		"cdc:a:b:c":              `bad size "a"`,
		"zstd:1":                 `unknown kind "zstd"`,
		"CDC:16K:64K:256K":       `unknown kind "CDC"`,
		"cdc:16K:64K:256K:4096:": `bad size ""`,
	}
	for s, frag := range cases {
		_, err := ParseSpec(s)
		if err == nil {
			t.Errorf("ParseSpec(%q) accepted", s)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, frag) || !strings.Contains(msg, `"`+s+`"`) || !strings.Contains(msg, DefaultSpec) {
			t.Errorf("ParseSpec(%q): %q; want it to quote the spec, say %q and show an example", s, msg, frag)
		}
	}
}

func TestSpecNew(t *testing.T) {
	cases := []struct {
		spec string
		auto int
		want Params
	}{
		{DefaultSpec, 4096, Params{KindCDC, 16 << 10, 64 << 10, 256 << 10, 4096}},
		{DefaultSpec, 1, Params{KindCDC, 16 << 10, 64 << 10, 256 << 10, 1}},
		// Sizes off the block grid fall back to byte-level cuts rather than failing.
		{"cdc:6K:64K:250K", 4096, Params{KindCDC, 6 << 10, 64 << 10, 250 << 10, 1}},
		// An explicit alignment wins over the automatic one.
		{"cdc:16K:64K:256K:1", 4096, Params{KindCDC, 16 << 10, 64 << 10, 256 << 10, 1}},
		{"fixed:64K", 1, Params{KindFixed, 64 << 10, 64 << 10, 64 << 10, 64 << 10}},
	}
	for _, tc := range cases {
		sp, err := ParseSpec(tc.spec)
		if err != nil {
			t.Fatal(err)
		}
		c, err := sp.New(tc.auto)
		if err != nil {
			t.Fatalf("%s: %v", tc.spec, err)
		}
		if got := c.Params(); got != tc.want {
			t.Errorf("%s (auto %d): params %+v, want %+v", tc.spec, tc.auto, got, tc.want)
		}
		if c.MaxLen() != int(tc.want.Max) {
			t.Errorf("%s: MaxLen %d", tc.spec, c.MaxLen())
		}
		// An index records Params; FromParams must rebuild a chunker that cuts the same.
		c2, err := FromParams(c.Params())
		if err != nil {
			t.Fatalf("FromParams(%+v): %v", c.Params(), err)
		}
		if c2.Params() != c.Params() {
			t.Errorf("FromParams round trip: %+v, want %+v", c2.Params(), c.Params())
		}
		data := randBytes(30, 2<<20)
		a, b := splitAll(t, bytesReader(data), c), splitAll(t, bytesReader(data), c2)
		if len(a) != len(b) {
			t.Fatalf("%s: rebuilt chunker cuts %d pieces, original %d", tc.spec, len(b), len(a))
		}
		for i := range a {
			if a[i].Len != b[i].Len {
				t.Fatalf("%s: piece %d: %d vs %d bytes", tc.spec, i, a[i].Len, b[i].Len)
			}
		}
	}
	if _, err := (Spec{}).New(4096); err == nil {
		t.Error("zero Spec made a chunker")
	}
}

func TestFromParamsBad(t *testing.T) {
	for _, p := range []Params{
		{Kind: 0},
		{Kind: 3, Min: 64, Avg: 64, Max: 64, Align: 1},
		{Kind: KindFixed, Max: 100},
		{Kind: KindFixed, Max: MaxSize + 1},
		{Kind: KindCDC, Min: 16 << 10, Avg: 64 << 10, Max: 256 << 10, Align: 0},
		{Kind: KindCDC, Min: 64 << 10, Avg: 16 << 10, Max: 256 << 10, Align: 1},
		{Kind: KindCDC, Min: 16 << 10, Avg: 64 << 10, Max: 256 << 10, Align: 3},
		{Kind: KindCDC, Min: 16 << 10, Avg: 64 << 10, Max: MaxSize * 2, Align: 1},
	} {
		if c, err := FromParams(p); err == nil {
			t.Errorf("FromParams(%+v) = %+v, want an error", p, c.Params())
		}
	}
}

func TestParamsString(t *testing.T) {
	cases := map[Params]string{
		{KindFixed, 64 << 10, 64 << 10, 64 << 10, 64 << 10}: "fixed:64K",
		{KindCDC, 16 << 10, 64 << 10, 256 << 10, 4096}:      "cdc:16K:64K:256K:4096",
		{KindCDC, 1000, 1 << 20, 16 << 20, 1}:               "cdc:1000:1M:16M:1",
		{Kind: 9}:                                           "kind9",
	}
	for p, want := range cases {
		if got := p.String(); got != want {
			t.Errorf("%+v.String() = %q, want %q", p, got, want)
		}
		// What String prints (for fixed and cdc) parses back to the same chunking.
		if p.Kind == KindFixed || p.Kind == KindCDC {
			sp, err := ParseSpec(want)
			if err != nil {
				t.Fatalf("ParseSpec(%q): %v", want, err)
			}
			if c, err := sp.New(1); err != nil || c.Params() != p {
				t.Errorf("%q parses to %+v, %v", want, c, err)
			}
		}
	}
	for k, want := range map[Kind]string{KindFixed: "fixed", KindCDC: "cdc", 0: "unknown", 7: "unknown"} {
		if k.String() != want {
			t.Errorf("Kind(%d).String() = %q", k, k.String())
		}
	}
	for n, want := range map[int64]string{0: "0", 1023: "1023", 1024: "1K", 1025: "1025", 1536: "1536", 3 << 20: "3M", 1<<20 + 1024: "1025K"} {
		if got := FormatSize(n); got != want {
			t.Errorf("FormatSize(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestFixedGrid(t *testing.T) {
	const size = 64 << 10
	// Zero runs that start and end off the 64 KiB grid must not shift the blocks after them.
	data := withZeros(31, 3<<20+5, [2]int{100 << 10, 300 << 10}, [2]int{1<<20 + 4096, 1<<20 + 4096 + 70<<10})
	ps := splitAll(t, bytesReader(data), Fixed{Size: size})
	for i, p := range ps {
		if p.Zero {
			continue
		}
		end := p.Off + int64(p.Len)
		last := i == len(ps)-1
		if p.Off/size != (end-1)/size {
			t.Fatalf("piece %d [%d,%d) crosses a grid line", i, p.Off, end)
		}
		if end%size != 0 && !last && !ps[i+1].Zero {
			t.Fatalf("piece %d ends at %d: off the grid and not before a zero run", i, end)
		}
	}
	f := Fixed{Size: size}
	if f.MaxLen() != size || f.Params() != (Params{KindFixed, size, size, size, size}) {
		t.Fatalf("Fixed params %+v", f.Params())
	}
	if n := f.Cut(size*3+10, make([]byte, 1<<20), false); n != size-10 {
		t.Fatalf("Cut at 10 past the grid = %d, want %d", n, size-10)
	}
	if n := f.Cut(0, make([]byte, 100), true); n != 100 {
		t.Fatalf("Cut of a 100-byte tail = %d", n)
	}
}

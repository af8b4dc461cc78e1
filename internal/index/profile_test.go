package index

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"testing"
)

func TestProfileRoundTrip(t *testing.T) {
	for _, n := range []int{3, 100, 20000} {
		ix := withProfile(sampleIndex(n))
		got, err := Decode(mustEncode(t, ix))
		if err != nil {
			t.Fatal(err)
		}
		equalIndex(t, got, ix)
		if got.Profile.Boots != 3 || len(got.Profile.Entries) != len(ix.Profile.Entries) || len(got.Profile.Entries) == 0 {
			t.Fatalf("%d entries: profile %d boots, %d items; want 3, %d", n, got.Profile.Boots, len(got.Profile.Entries), len(ix.Profile.Entries))
		}
	}
	// Without a profile nothing is written: the file is what it was before profiles existed.
	ix := sampleIndex(10)
	body := decompress(t, bodyPart(t, mustEncode(t, ix)))
	if want := bodyOf(sectionsOf(ix)[:2]); !bytes.Equal(body, want) {
		t.Fatal("an index without a profile has more than the header and the chunk table")
	}
}

// The profile section is what docs/format.md says, byte for byte: type 3, flags 0 (not
// critical), after the chunk table; boots, count, then u32 entry indexes.
func TestProfileLayout(t *testing.T) {
	ix := withProfile(sampleIndex(9))
	body := decompress(t, bodyPart(t, mustEncode(t, ix)))
	le := binary.LittleEndian
	hl := le.Uint64(body[8:])
	c := body[16+hl:]
	cl := le.Uint64(c[8:])
	p := c[16+cl:]
	if le.Uint32(p[0:]) != 3 || le.Uint32(p[4:]) != 0 {
		t.Fatalf("profile section header %x: want type 3, flags 0", p[:8])
	}
	n := len(ix.Profile.Entries)
	if le.Uint64(p[8:]) != uint64(8+4*n) || len(p) != 16+8+4*n {
		t.Fatalf("profile payload length %d, section %d bytes; want %d", le.Uint64(p[8:]), len(p), 8+4*n)
	}
	if le.Uint32(p[16:]) != 3 || le.Uint32(p[20:]) != uint32(n) {
		t.Fatalf("boots %d, count %d", le.Uint32(p[16:]), le.Uint32(p[20:]))
	}
	for k, i := range ix.Profile.Entries {
		if got := le.Uint32(p[24+4*k:]); got != uint32(i) {
			t.Fatalf("item %d: %d, want %d", k, got, i)
		}
	}
}

// A reader that does not know profiles (any section type it does not know, without the
// critical bit) reads the rest of the index unchanged: simulated by checking that the same
// file minus the profile section decodes to the same index minus the profile.
func TestProfileIsOptional(t *testing.T) {
	ix := withProfile(sampleIndex(30))
	secs := sectionsOf(ix)
	if secs[2].flags&criticalFlag != 0 {
		t.Fatal("the profile section is marked critical")
	}
	// Moved first, a profile still decodes (sections come in any order).
	got, err := Decode(build([]rawSection{secs[2], secs[0], secs[1]}))
	if err != nil {
		t.Fatal(err)
	}
	equalIndex(t, got, ix)
	plain := *ix
	plain.Profile = Profile{}
	got, err = Decode(build(secs[:2]))
	if err != nil {
		t.Fatal(err)
	}
	equalIndex(t, got, &plain)
}

func TestProfileRejects(t *testing.T) {
	ix := sampleIndex(12) // entries 4 and 9 are zero runs
	secs := sectionsOf(ix)
	with := func(payload []byte) []byte { return build(append(secs[:2:2], rawSection{3, 0, payload})) }
	le := binary.LittleEndian
	cases := map[string][]byte{
		"short":              with([]byte{1, 0, 0, 0, 1}),
		"count one more":     with(profilePayload(1, 3, []int{0, 1})),
		"count one less":     with(profilePayload(1, 1, []int{0, 1})),
		"count 2^32-1":       with(profilePayload(1, math.MaxUint32, []int{0, 1})),
		"partial item":       with(append(profilePayload(1, 2, []int{0, 1}), 0)),
		"empty":              with(profilePayload(1, 0, nil)),
		"entry out of range": with(profilePayload(1, 2, []int{0, 12})),
		"entry 2^32-1":       with(le.AppendUint32(profilePayload(1, 2, []int{0}), math.MaxUint32)),
		"zero run":           with(profilePayload(1, 2, []int{0, 4})),
		"entry twice":        with(profilePayload(1, 3, []int{0, 1, 0})),
		"two profiles":       build(append(secs[:2:2], rawSection{3, 0, profilePayload(1, 1, []int{0})}, rawSection{3, 0, profilePayload(1, 1, []int{1})})),
	}
	if _, err := Decode(with(profilePayload(1, 2, []int{0, 1}))); err != nil {
		t.Fatalf("the test's valid profile is refused: %v", err)
	}
	for name, file := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := Decode(file)
			if err == nil || !errors.Is(err, ErrFormat) || got != nil {
				t.Fatalf("Decode = %v, %v; want ErrFormat", got != nil, err)
			}
		})
	}
	// Encode refuses what Decode would: a writer cannot publish a broken profile.
	for name, p := range map[string][]int{"out of range": {0, 12}, "zero run": {4}, "twice": {1, 1}, "negative": {-1}} {
		c := *ix
		c.Profile = Profile{Boots: 1, Entries: p}
		if _, err := Encode(&c); err == nil {
			t.Errorf("Encode with a profile %s: no error", name)
		}
	}
}

// The profile is part of the signed bytes: adding, changing or reordering it changes them.
func TestProfileIsSigned(t *testing.T) {
	ix := sampleIndex(20)
	base, _ := SignedPart(mustEncode(t, ix))
	p1 := withProfile(ix)
	one, _ := SignedPart(mustEncode(t, p1))
	p2 := withProfile(ix)
	p2.Profile.Entries = append([]int(nil), p2.Profile.Entries...)
	p2.Profile.Entries[0], p2.Profile.Entries[1] = p2.Profile.Entries[1], p2.Profile.Entries[0]
	two, _ := SignedPart(mustEncode(t, p2))
	if bytes.Equal(base, one) || bytes.Equal(one, two) {
		t.Fatal("the profile is not covered by the signed part")
	}
}

func bodyPart(t *testing.T, file []byte) []byte {
	t.Helper()
	sp, err := SignedPart(file)
	if err != nil {
		t.Fatal(err)
	}
	return sp[24:]
}

// The example in docs/format.md 3.5, byte for byte.
func TestProfileDocExample(t *testing.T) {
	ix := sampleIndex(10) // entries 2, 5 and 7 are data
	ix.Profile = Profile{Boots: 3, Entries: []int{7, 2, 5}}
	body := decompress(t, bodyPart(t, mustEncode(t, ix)))
	want := []byte{
		0x03, 0, 0, 0, 0, 0, 0, 0, 0x14, 0, 0, 0, 0, 0, 0, 0,
		0x03, 0, 0, 0, 0x03, 0, 0, 0, 0x07, 0, 0, 0, 0x02, 0, 0, 0, 0x05, 0, 0, 0,
	}
	if !bytes.HasSuffix(body, want) {
		t.Fatalf("the body does not end with the documented profile section:\n got  %x\n want %x", body[len(body)-len(want):], want)
	}
}

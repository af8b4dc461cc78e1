package chunk

import (
	"bytes"
	"errors"
	"runtime"
	"testing"

	"github.com/klauspost/compress/zstd"
)

func TestCodecRoundTrip(t *testing.T) {
	for _, n := range []int{1, 100, 4096, 64 << 10, 1 << 20, MaxSize} {
		for _, kind := range []string{"random", "zeros", "text"} {
			var plain []byte
			switch kind {
			case "random":
				plain = randBytes(uint64(n), n)
			case "zeros":
				plain = make([]byte, n)
			case "text":
				plain = bytes.Repeat([]byte("nowhere boots from anywhere. "), n/29+1)[:n]
			}
			id := Sum(plain)
			stored := Encode(nil, plain)
			if len(stored) > MaxStored(n) {
				t.Errorf("%s/%d: %d bytes stored, above MaxStored %d: indexes of real chunks would be refused", kind, n, len(stored), MaxStored(n))
			}
			if kind != "random" && len(stored) >= n && n > 100 {
				t.Errorf("%s/%d: %d bytes stored, not compressed", kind, n, len(stored))
			}
			// The stored form is one standard zstd frame: any zstd decoder reads it.
			std, err := zstd.NewReader(nil)
			if err != nil {
				t.Fatal(err)
			}
			if got, err := std.DecodeAll(stored, nil); err != nil || !bytes.Equal(got, plain) {
				t.Fatalf("%s/%d: plain zstd decode: %v", kind, n, err)
			}
			std.Close()
			prefix := []byte("prefix")
			got, err := Decode(bytes.Clone(prefix), id, n, stored)
			if err != nil {
				t.Fatalf("%s/%d: Decode: %v", kind, n, err)
			}
			if !bytes.Equal(got[:len(prefix)], prefix) || !bytes.Equal(got[len(prefix):], plain) {
				t.Fatalf("%s/%d: Decode did not append the plain bytes to dst", kind, n)
			}
			got, err = DecodeUnknown(id, stored)
			if err != nil || !bytes.Equal(got, plain) {
				t.Fatalf("%s/%d: DecodeUnknown: %v", kind, n, err)
			}
			// Encode appends too.
			if app := Encode([]byte("x"), plain); !bytes.Equal(app[1:], stored) || app[0] != 'x' {
				t.Fatalf("%s/%d: Encode does not append", kind, n)
			}
		}
	}
}

// zstdStream compresses plain as a streamed frame that does not declare its content size,
// the shape a hostile mirror would use to hide a bomb from a size check.
func zstdStream(t *testing.T, plain []byte) []byte {
	var b bytes.Buffer
	w, err := zstd.NewWriter(&b, zstd.WithEncoderLevel(zstd.SpeedFastest))
	if err != nil {
		t.Fatal(err)
	}
	for off := 0; off < len(plain); off += 1 << 20 {
		if _, err := w.Write(plain[off:min(off+1<<20, len(plain))]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestDecodeRejects(t *testing.T) {
	plain := randBytes(40, 100<<10)
	id := Sum(plain)
	stored := Encode(nil, plain)
	other := Encode(nil, randBytes(41, 100<<10))
	zeros64K := make([]byte, 64<<10)
	cases := []struct {
		name   string
		id     ID
		size   int
		stored []byte
	}{
		{"wrong id", Sum([]byte("something else")), len(plain), stored},
		{"zero id", ID{}, len(plain), stored},
		{"other chunk's bytes", id, len(plain), other},
		{"size one short", id, len(plain) - 1, stored},
		{"size one long", id, len(plain) + 1, stored},
		{"size zero", id, 0, stored},
		{"size negative", id, -1, stored},
		{"size above MaxSize", id, MaxSize + 1, stored},
		{"empty input", id, len(plain), nil},
		{"garbage", id, len(plain), randBytes(42, 1000)},
		{"truncated frame", id, len(plain), stored[:len(stored)/2]},
		{"frame plus garbage", id, len(plain), append(bytes.Clone(stored), 1, 2, 3, 4, 5, 6, 7, 8)},
		{"two frames", id, len(plain), append(bytes.Clone(stored), stored...)},
		{"flipped byte", id, len(plain), flip(stored, len(stored)/2)},
		// Bombs: a few KiB that decode far past the declared 64 KiB.
		{"bomb 16M+ with size", Sum(zeros64K), 64 << 10, Encode(nil, make([]byte, MaxSize+4096))},
		{"bomb 64M streamed", Sum(zeros64K), 64 << 10, zstdStream(t, make([]byte, 64<<20))},
		{"bomb 1M", Sum(zeros64K), 64 << 10, Encode(nil, make([]byte, 1<<20))},
	}
	for _, tc := range cases {
		got, err := Decode(nil, tc.id, tc.size, tc.stored)
		if !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: error %v, want ErrCorrupt", tc.name, err)
		}
		if got != nil {
			t.Errorf("%s: %d bytes returned with the error", tc.name, len(got))
		}
		if err != nil && !bytes.Contains([]byte(err.Error()), []byte(tc.id.String())) {
			t.Errorf("%s: error %q does not name the chunk", tc.name, err)
		}
	}
}

func flip(b []byte, i int) []byte {
	c := bytes.Clone(b)
	c[i] ^= 0x40
	return c
}

// A bomb must cost memory in proportion to what the index declares (Decode), or at worst
// a few times MaxSize (DecodeUnknown, which has no declared size), never what it would
// decompress to.
func TestDecodeBombMemory(t *testing.T) {
	bomb := zstdStream(t, make([]byte, 256<<20))
	t.Logf("256 MiB of zeros stream-compress to %d bytes", len(bomb))
	id := Sum(make([]byte, 64<<10))
	measure := func(f func() error) (uint64, error) {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		err := f()
		runtime.ReadMemStats(&after)
		return after.TotalAlloc - before.TotalAlloc, err
	}
	alloc, err := measure(func() error { _, err := Decode(nil, id, 64<<10, bomb); return err })
	t.Logf("Decode of the bomb declared as 64 KiB allocated %d KiB", alloc>>10)
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("bomb accepted: %v", err)
	}
	if alloc > 4<<20 {
		t.Errorf("Decode of a bomb declared as 64 KiB allocated %d KiB, want a bound near the declared size", alloc>>10)
	}
	alloc, err = measure(func() error { _, err := DecodeUnknown(id, bomb); return err })
	t.Logf("DecodeUnknown of the bomb allocated %d MiB", alloc>>20)
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("bomb accepted: %v", err)
	}
	if alloc > 8*MaxSize {
		t.Errorf("DecodeUnknown of a bomb allocated %d MiB, want a bound near MaxSize (%d MiB)", alloc>>20, MaxSize>>20)
	}
}

func TestDecodeUnknownRejects(t *testing.T) {
	plain := randBytes(43, 10000)
	stored := Encode(nil, plain)
	id := Sum(plain)
	cases := map[string]struct {
		id     ID
		stored []byte
	}{
		"wrong id":     {Sum([]byte("x")), stored},
		"empty chunk":  {Sum(nil), Encode(nil, nil)},
		"empty input":  {id, nil},
		"garbage":      {id, []byte("this is not zstd at all")},
		"truncated":    {id, stored[:len(stored)-3]},
		"flipped byte": {id, flip(stored, len(stored)-10)},
		"too large":    {Sum(make([]byte, MaxSize+1)), zstdStream(t, make([]byte, MaxSize+1))},
	}
	for name, tc := range cases {
		got, err := DecodeUnknown(tc.id, tc.stored)
		if !errors.Is(err, ErrCorrupt) || got != nil {
			t.Errorf("%s: %d bytes, %v; want ErrCorrupt and nothing", name, len(got), err)
		}
	}
}

func TestDecodeConcurrent(t *testing.T) {
	// One shared decoder serves every goroutine; results must not mix.
	const n = 16
	plains := make([][]byte, n)
	stored := make([][]byte, n)
	for i := range plains {
		plains[i] = randBytes(uint64(50+i), 200<<10+i)
		stored[i] = Encode(nil, plains[i])
	}
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		go func() {
			for k := 0; k < 20; k++ {
				got, err := Decode(nil, Sum(plains[i]), len(plains[i]), stored[i])
				if err != nil || !bytes.Equal(got, plains[i]) {
					errs <- errors.New("wrong bytes or error from a concurrent Decode")
					return
				}
			}
			errs <- nil
		}()
	}
	for i := 0; i < n; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/nowhere-boot/nowhere/internal/chunk"
	"github.com/nowhere-boot/nowhere/internal/index"
	"github.com/nowhere-boot/nowhere/internal/trust"
)

// indexMemBoundKiB is the peak RSS (ru_maxrss, KiB) a nowhere process may reach while it
// loads and refuses a hostile index, whatever path it takes (docs/format.md, section 3.8).
const indexMemBoundKiB = 256 << 10

// craftSection is one section of an index body: type, flags, payload length, payload.
func craftSection(typ, flags uint32, payload []byte) []byte {
	le := binary.LittleEndian
	h := le.AppendUint32(nil, typ)
	h = le.AppendUint32(h, flags)
	h = le.AppendUint64(h, uint64(len(payload)))
	return append(h, payload...)
}

// craftHeader is a header section payload for image name, version 1, of size bytes.
func craftHeader(name string, size uint64) []byte {
	le := binary.LittleEndian
	h := le.AppendUint64(nil, 1) // version
	h = le.AppendUint64(h, 0)    // created
	h = le.AppendUint64(h, 0)    // expires
	h = le.AppendUint64(h, size)
	h = append(h, byte(chunk.KindFixed), 0, 0, 0)
	for range 4 {
		h = le.AppendUint32(h, 64<<10)
	}
	h = le.AppendUint16(h, uint16(len(name)))
	return append(h, name...)
}

// craftFile wraps a compressed body into an unsigned index file.
func craftFile(zbody []byte) []byte {
	le := binary.LittleEndian
	f := append([]byte(index.Magic), 1, 0, 0, 0, 0, 0, 0, 0)
	f = le.AppendUint64(f, uint64(len(zbody)))
	f = append(f, zbody...)
	return le.AppendUint32(f, 0)
}

// zstdStream compresses what write produces, streaming (a body of hundreds of MiB never
// sits in the test's memory either).
func zstdStream(t *testing.T, write func(w *zstd.Encoder)) []byte {
	t.Helper()
	var out bytes.Buffer
	w, err := zstd.NewWriter(&out, zstd.WithEncoderLevel(zstd.SpeedBestCompression))
	if err != nil {
		t.Fatal(err)
	}
	write(w)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// craftChunkTable writes a chunk-table section declaring count entries and carrying n of
// them, entry(i) making each (49 bytes).
func craftChunkTable(w *zstd.Encoder, count, n uint64, entry func(i uint64, e []byte)) {
	le := binary.LittleEndian
	var h []byte
	h = le.AppendUint32(h, 2)
	h = le.AppendUint32(h, 1)
	h = le.AppendUint64(h, 8+49*n)
	h = le.AppendUint64(h, count)
	w.Write(h)
	buf := make([]byte, 0, 49*4096)
	e := make([]byte, 49)
	for i := range n {
		clear(e)
		entry(i, e)
		buf = append(buf, e...)
		if len(buf) == cap(buf) {
			w.Write(buf)
			buf = buf[:0]
		}
	}
	w.Write(buf)
}

// dataEntry fills e as a data entry at off of length l, with ID id.
func dataEntry(e []byte, off uint64, l uint32, id []byte) {
	le := binary.LittleEndian
	le.PutUint64(e, off)
	le.PutUint32(e[8:], l)
	le.PutUint32(e[12:], l/2+1)
	e[16] = 0
	copy(e[17:], id)
}

// hostileIndexes are the crafted index files of TestHostileIndexMemoryBound, by name, and
// a word each refusal must contain.
func hostileIndexes(t *testing.T) (files map[string][]byte, wants map[string]string) {
	files, wants = map[string][]byte{}, map[string]string{}
	id := sha256.Sum256([]byte("one chunk"))

	// A chunk table that declares 900 million entries and holds 10.
	files["count"] = craftFile(zstdStream(t, func(w *zstd.Encoder) {
		w.Write(craftSection(1, 1, craftHeader("x", 10<<16)))
		craftChunkTable(w, 900_000_000, 10, func(i uint64, e []byte) { dataEntry(e, i<<16, 1<<16, id[:]) })
	}))
	wants["count"] = "900000000"

	// A decompression bomb: tens of KiB that expand to 250 MiB of empty entries.
	const bombEntries = 250 << 20 / 49
	files["bomb"] = craftFile(zstdStream(t, func(w *zstd.Encoder) {
		w.Write(craftSection(1, 1, craftHeader("x", 1)))
		craftChunkTable(w, bombEntries, bombEntries, func(uint64, []byte) {})
	}))
	wants["bomb"] = "chunk table"

	// The same bomb, small enough for the body limit: refused at its first entry.
	const smallBomb = 32 << 20 / 49
	files["bomb-small"] = craftFile(zstdStream(t, func(w *zstd.Encoder) {
		w.Write(craftSection(1, 1, craftHeader("x", 1)))
		craftChunkTable(w, smallBomb, smallBomb, func(uint64, []byte) {})
	}))
	wants["bomb-small"] = "entry 0"

	// A few MB of well-formed, contiguous entries, 5 million of them (245 MB decompressed),
	// that do not add up to the image size the header gives: only the end shows it.
	files["crafted-5M"] = craftFile(zstdStream(t, func(w *zstd.Encoder) {
		w.Write(craftSection(1, 1, craftHeader("x", 1)))
		craftChunkTable(w, 5_000_000, 5_000_000, func(i uint64, e []byte) { dataEntry(e, i<<12, 1<<12, id[:]) })
	}))
	wants["crafted-5M"] = "chunk table"
	// The same within the body limit (1.3 million entries, 64 MB decompressed).
	files["crafted-1.3M"] = craftFile(zstdStream(t, func(w *zstd.Encoder) {
		w.Write(craftSection(1, 1, craftHeader("x", 1)))
		craftChunkTable(w, 1_300_000, 1_300_000, func(i uint64, e []byte) { dataEntry(e, i<<12, 1<<12, id[:]) })
	}))
	wants["crafted-1.3M"] = "image size"
	for k, v := range files {
		t.Logf("crafted index %s: %d bytes", k, len(v))
	}
	return files, wants
}

// rssChildEnv makes the test binary a launcher (see init): it runs the command in its
// arguments, writes the command's peak RSS to the file this variable names, and exits
// with the command's status. Linux carries the RSS of the process that calls exec into
// the new program's ru_maxrss, so a child started by this test process (hundreds of MiB
// after crafting the bombs) would report at least that: a launcher that has allocated
// nothing measures the child alone.
const rssChildEnv = "NOWHERE_E2E_MAXRSS_FILE"

func init() {
	out := os.Getenv(rssChildEnv)
	if out == "" {
		return
	}
	cmd := exec.Command(os.Args[1], os.Args[2:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = slices.DeleteFunc(os.Environ(), func(e string) bool { return strings.HasPrefix(e, rssChildEnv+"=") })
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		fmt.Fprintln(os.Stderr, "launcher:", err)
		os.Exit(125)
	}
	rss := cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss
	if err := os.WriteFile(out, []byte(strconv.FormatInt(rss, 10)), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "launcher:", err)
		os.Exit(125)
	}
	os.Exit(cmd.ProcessState.ExitCode())
}

// runMeasured runs the binary under test through the launcher and returns its result and
// its peak RSS (ru_maxrss) in KiB.
func runMeasured(t *testing.T, args ...string) (result, int64) {
	t.Helper()
	rssFile := filepath.Join(t.TempDir(), "maxrss")
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], append([]string{nowhereBin}, args...)...)
	cmd.Env = append(os.Environ(), rssChildEnv+"="+rssFile)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	default:
		t.Fatalf("nowhere %s: %v", strings.Join(args, " "), err)
	}
	if ctx.Err() != nil {
		t.Fatalf("nowhere %s: killed after %s", strings.Join(args, " "), cmdTimeout)
	}
	b, err := os.ReadFile(rssFile)
	if err != nil {
		t.Fatalf("nowhere %s: no peak RSS from the launcher (exit %d, %s): %v", strings.Join(args, " "), r.code, r.stderr, err)
	}
	rss, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return r, rss
}

// withoutWarnings drops the WARNING lines --insecure prints before the answer.
func withoutWarnings(r result) result {
	var keep []string
	for _, l := range strings.SplitAfter(r.stderr, "\n") {
		if !strings.HasPrefix(l, "nowhere: WARNING") {
			keep = append(keep, l)
		}
	}
	r.stderr = strings.Join(keep, "")
	return r
}

// indexServer serves files at their paths with a Content-Length, and streams
// /images/endless/1.index without one (chunked), as long as the client reads. A path
// under /chunked/ is the same file sent without a Content-Length, and
// [/chunked]/NAME/images/large/1.index is the file /images/large/NAME.index.
func indexServer(t *testing.T, files map[string][]byte) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/images/endless/1.index" {
			w.Header().Set("Content-Type", "application/octet-stream")
			// A preamble that declares a 1 TiB body, then zeros forever.
			pre := append([]byte(index.Magic), 1, 0, 0, 0, 0, 0, 0, 0)
			pre = binary.LittleEndian.AppendUint64(pre, 1<<40)
			if _, err := w.Write(pre); err != nil {
				return
			}
			zeros := make([]byte, 1<<20)
			for range 1 << 10 { // 1 GiB at most
				if _, err := w.Write(zeros); err != nil {
					return
				}
				w.(http.Flusher).Flush()
			}
			return
		}
		path, chunked := strings.CutPrefix(r.URL.Path, "/chunked")
		if name, ok := strings.CutSuffix(strings.TrimPrefix(path, "/"), "/images/large/1.index"); ok {
			path = "/images/large/" + name + ".index"
		}
		b, ok := files[path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		if !chunked {
			http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(b))
			return
		}
		// Flushed in pieces with no Content-Length: sent chunked.
		for len(b) > 0 {
			n := min(len(b), 1<<20)
			if _, err := w.Write(b[:n]); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			b = b[n:]
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestHostileIndexMemoryBound serves crafted indexes (a huge declared count, decompression
// bombs, a crafted table of 5 million entries, a response without a Content-Length) to
// every path that decodes an index: info verified and --insecure over HTTP, ls and verify
// of a directory. Each must fail in one line naming the file and what is wrong, and the
// process's peak RSS must stay under indexMemBoundKiB.
func TestHostileIndexMemoryBound(t *testing.T) {
	needRoot(t)
	files, wants := hostileIndexes(t)
	served := map[string][]byte{}
	for k, v := range files {
		served["/images/"+k+"/1.index"] = v
	}
	base := indexServer(t, served)
	files["endless"], wants["endless"] = nil, "larger than"

	names := []string{"count", "bomb", "bomb-small", "crafted-5M", "crafted-1.3M", "endless"}
	for _, name := range names {
		url := base + "/images/" + name + "/1"
		for _, c := range []struct {
			verb string
			args []string
			want string
		}{
			// Verified, the signature is checked first: an unsigned index is refused
			// before its body is decompressed.
			{"info", []string{"info", url, "--key", publicKey}, "not signed"},
			{"info --insecure", []string{"info", url, "--insecure"}, wants[name]},
		} {
			if name == "endless" {
				c.want = wants[name]
			}
			r, rss := runMeasured(t, c.args...)
			what := name + ": " + c.verb
			assertOneLineError(t, what, withoutWarnings(r), name+"/1.index", c.want)
			t.Logf("%s: peak RSS %d MiB", what, rss>>10)
			if rss > indexMemBoundKiB {
				t.Errorf("%s: peak RSS %d MiB, more than the %d MiB bound", what, rss>>10, indexMemBoundKiB>>10)
			}
		}
		if files[name] == nil {
			continue // the stream without a length is an HTTP case
		}
		// A directory store holding the crafted index as image x version 1.
		dir := t.TempDir()
		p := filepath.Join(dir, "images", "x", "1.index")
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, files[name], 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(dir, "chunks"), 0o755); err != nil {
			t.Fatal(err)
		}
		r, rss := runMeasured(t, "ls", filepath.Join(dir, "images", "x"))
		assertOneLineError(t, name+": ls", r, "images/x/1.index", wants[name])
		t.Logf("%s: ls: peak RSS %d MiB", name, rss>>10)
		if rss > indexMemBoundKiB {
			t.Errorf("%s: ls: peak RSS %d MiB, more than the %d MiB bound", name, rss>>10, indexMemBoundKiB>>10)
		}
		r, rss = runMeasured(t, "verify", dir)
		if r.code == 0 || !strings.Contains(r.stdout, "bad index images/x/1.index") || !strings.Contains(r.stdout, wants[name]) {
			t.Errorf("%s: verify: exit %d, want a failure naming images/x/1.index and %q\nstdout: %s\nstderr: %s",
				name, r.code, wants[name], r.stdout, r.stderr)
		}
		t.Logf("%s: verify: peak RSS %d MiB: %s", name, rss>>10, strings.TrimSpace(r.stdout))
		if rss > indexMemBoundKiB {
			t.Errorf("%s: verify: peak RSS %d MiB, more than the %d MiB bound", name, rss>>10, indexMemBoundKiB>>10)
		}
	}
}

// rawZstd wraps b in one zstd frame of stored (uncompressed) blocks: an index file as
// large as its body, the most a valid index can make a client read.
func rawZstd(b []byte) []byte {
	// Magic, frame header descriptor 0 (no content size, no checksum), window descriptor
	// 0x58 (2 MiB).
	out := []byte{0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x58}
	for {
		n := min(len(b), 128<<10-1)
		last := uint32(0)
		if n == len(b) {
			last = 1
		}
		h := uint32(n)<<3 | last
		out = append(out, byte(h), byte(h>>8), byte(h>>16))
		out = append(out, b[:n]...)
		b = b[n:]
		if last == 1 {
			return out
		}
	}
}

// maxEntries is the largest chunk table index.MaxBody leaves room for, after a header
// section for image "large".
const maxEntries = (index.MaxBody - 16 - 54 - 5 - 16 - 8) / 49

// largestIndexes are the largest valid indexes the format allows, signed: one of
// maxEntries distinct chunks stored uncompressed (its file as large as its body), and one
// of maxEntries entries naming one chunk, which compresses to a few MB.
func largestIndexes(t *testing.T) map[string][]byte {
	sk, err := trust.LoadSecretKey(secretKey, nil)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, distinct := range []bool{true, false} {
		ix := &index.Index{Name: "large", Version: 1, Size: maxEntries << 12,
			Chunking: chunk.Params{Kind: chunk.KindFixed, Min: 1 << 12, Avg: 1 << 12, Max: 1 << 12, Align: 1 << 12}}
		ix.Entries = make([]index.Entry, maxEntries)
		one := sha256.Sum256([]byte("one chunk"))
		for i := range ix.Entries {
			id := one
			if distinct {
				var b [8]byte
				binary.LittleEndian.PutUint64(b[:], uint64(i))
				id = sha256.Sum256(b[:])
			}
			ix.Entries[i] = index.Entry{Off: int64(i) << 12, Len: 1 << 12, Stored: 3000, ID: id}
		}
		file, err := index.Encode(ix)
		if err != nil {
			t.Fatal(err)
		}
		name := "largest-compressed"
		if distinct {
			// The same body in stored blocks.
			body, err := zstd.NewReader(nil)
			if err != nil {
				t.Fatal(err)
			}
			zlen := binary.LittleEndian.Uint64(file[16:])
			plain, err := body.DecodeAll(file[24:24+zlen], nil)
			body.Close()
			if err != nil {
				t.Fatal(err)
			}
			file = craftFile(rawZstd(plain))
			name = "largest-stored"
		}
		if file, _, err = sk.SignIndex(ix, file); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %d entries, file of %d bytes", name, maxEntries, len(file))
		out[name] = file
	}
	return out
}

// TestLargestIndexesStayUnderTheBound: the largest valid indexes the format allows load
// (verified and --insecure, with and without a Content-Length, and listed from a
// directory) within the same peak RSS bound as the hostile ones: a valid index cannot
// cost more than the bound either.
func TestLargestIndexesStayUnderTheBound(t *testing.T) {
	needRoot(t)
	files := largestIndexes(t)
	served := map[string][]byte{}
	for name, f := range files {
		served["/images/large/"+name+".index"] = f
	}
	base := indexServer(t, served)
	for name, f := range files {
		for _, chunked := range []bool{false, true} {
			// The store serves images/large/1.index; the server maps it to this file.
			prefix := base + "/" + name
			if chunked {
				prefix = base + "/chunked/" + name
			}
			for _, args := range [][]string{
				{"info", prefix + "/images/large/1", "--key", publicKey},
				{"info", prefix + "/images/large/1", "--insecure"},
			} {
				r, rss := runMeasured(t, args...)
				what := fmt.Sprintf("%s (chunked %v): %s", name, chunked, strings.Join(args[2:], " "))
				if r.code != 0 || !strings.Contains(r.stdout, fmt.Sprintf("chunks:    %d ", maxEntries)) {
					t.Errorf("%s: exit %d, want the index described\nstdout: %s\nstderr: %s", what, r.code, r.stdout, r.stderr)
				}
				t.Logf("%s: peak RSS %d MiB", what, rss>>10)
				if rss > indexMemBoundKiB {
					t.Errorf("%s: peak RSS %d MiB, more than the %d MiB bound", what, rss>>10, indexMemBoundKiB>>10)
				}
			}
		}
		dir := t.TempDir()
		p := filepath.Join(dir, "images", "large", "1.index")
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, f, 0o644); err != nil {
			t.Fatal(err)
		}
		r, rss := runMeasured(t, "ls", filepath.Join(dir, "images", "large"), "--key", publicKey)
		if r.code != 0 || !strings.Contains(r.stdout, "large") {
			t.Errorf("%s: ls: exit %d\nstdout: %s\nstderr: %s", name, r.code, r.stdout, r.stderr)
		}
		t.Logf("%s: ls: peak RSS %d MiB", name, rss>>10)
		if rss > indexMemBoundKiB {
			t.Errorf("%s: ls: peak RSS %d MiB, more than the %d MiB bound", name, rss>>10, indexMemBoundKiB>>10)
		}
	}
}

// TestLargeIndexLoads checks that the bound refuses nothing real: a signed index of a
// million chunks (an image of 64 GiB in 64 KiB chunks) loads verified and --insecure, and
// its peak RSS is logged.
func TestLargeIndexLoads(t *testing.T) {
	needRoot(t)
	const n = 1_000_000
	ix := &index.Index{Name: "large", Version: 1, Size: n << 16,
		Chunking: chunk.Params{Kind: chunk.KindFixed, Min: 1 << 16, Avg: 1 << 16, Max: 1 << 16, Align: 1 << 16}}
	ix.Entries = make([]index.Entry, n)
	for i := range ix.Entries {
		var b [8]byte
		binary.LittleEndian.PutUint64(b[:], uint64(i))
		ix.Entries[i] = index.Entry{Off: int64(i) << 16, Len: 1 << 16, Stored: 40000, ID: sha256.Sum256(b[:])}
	}
	file, err := index.Encode(ix)
	if err != nil {
		t.Fatal(err)
	}
	sk, err := trust.LoadSecretKey(secretKey, nil)
	if err != nil {
		t.Fatal(err)
	}
	if file, _, err = sk.SignIndex(ix, file); err != nil {
		t.Fatal(err)
	}
	ix = nil
	t.Logf("index of %d chunks: %d bytes", n, len(file))
	base := indexServer(t, map[string][]byte{"/images/large/1.index": file})
	for _, args := range [][]string{
		{"info", base + "/images/large/1", "--key", publicKey},
		{"info", base + "/images/large/1", "--insecure"},
	} {
		r, rss := runMeasured(t, args...)
		if r.code != 0 || !strings.Contains(r.stdout, "chunks:    1000000 ") {
			t.Errorf("nowhere %s: exit %d, want the index described\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
		}
		t.Logf("%s: peak RSS %d MiB", strings.Join(args[2:], " "), rss>>10)
	}
}

package image

import (
	"bytes"
	"context"
	"errors"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nowhere-boot/nowhere/internal/chunk"
	"github.com/nowhere-boot/nowhere/internal/index"
	"github.com/nowhere-boot/nowhere/internal/pack"
	"github.com/nowhere-boot/nowhere/internal/server"
	"github.com/nowhere-boot/nowhere/internal/store"
)

func TestParseLocation(t *testing.T) {
	good := map[string]Location{
		"http://127.0.0.1:8080/images/deb":           {Store: "http://127.0.0.1:8080", Name: "deb", Version: 0},
		"http://127.0.0.1:8080/images/deb/":          {Store: "http://127.0.0.1:8080", Name: "deb", Version: 0},
		"https://m.example/store/images/deb/7":       {Store: "https://m.example/store", Name: "deb", Version: 7},
		"https://m.example/store/images/deb/7.index": {Store: "https://m.example/store", Name: "deb", Version: 7},
		"https://m.example/store/images/deb/latest":  {Store: "https://m.example/store", Name: "deb", Version: 0},
		"/srv/store/images/deb-12.img":               {Store: "/srv/store", Name: "deb-12.img", Version: 0},
		"./store/images/x/3":                         {Store: "./store", Name: "x", Version: 3},
		"images/x":                                   {Store: ".", Name: "x", Version: 0},
		"/images/x/2":                                {Store: "/", Name: "x", Version: 2},
		// The last /images/ is the one that counts: a store may live under such a path.
		"/data/images/store/images/x": {Store: "/data/images/store", Name: "x", Version: 0},
	}
	for src, want := range good {
		got, err := ParseLocation(src)
		if err != nil || got != want {
			t.Errorf("ParseLocation(%q) = %+v, %v; want %+v", src, got, err, want)
		}
	}
	bad := map[string]string{
		"http://127.0.0.1/deb":               "no /images/",
		"deb":                                "no /images/",
		"":                                   "no /images/",
		"/s/images/deb/0":                    `version "0" is not a positive number`,
		"/s/images/deb/-1":                   "is not a positive number",
		"/s/images/deb/v2":                   "is not a positive number",
		"/s/images/deb/18446744073709551616": "is not a positive number",
		"/s/images/deb/1/extra":              "too many parts",
		"/s/images/../x":                     `version "x"`,
		"/s/images/..":                       "image name",
		"/s/images/.hidden":                  "image name",
		"/s/images/a b":                      "image name",
		"/s/images/":                         "no /images/",
	}
	for src, frag := range bad {
		_, err := ParseLocation(src)
		if err == nil || !strings.Contains(err.Error(), frag) || !strings.Contains(err.Error(), "STORE/images/NAME") {
			t.Errorf("ParseLocation(%q): %v; want an error saying %q and the expected form", src, err, frag)
		}
	}
	for _, l := range []Location{{Store: "http://h/s", Name: "deb", Version: 0}, {Store: "/srv/s", Name: "deb", Version: 12}, {Store: "http://h/", Name: "x", Version: 1}} {
		back, err := ParseLocation(l.String())
		if err != nil || back.Name != l.Name || back.Version != l.Version || strings.TrimSuffix(back.Store, "/") != strings.TrimSuffix(l.Store, "/") {
			t.Errorf("%+v.String() = %q parses to %+v, %v", l, l.String(), back, err)
		}
	}
}

func TestOpenStore(t *testing.T) {
	f := sharedFixture(t)
	s, err := OpenStore(f.dir.Path())
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.(*store.Dir); !ok {
		t.Fatalf("a directory opened as %T", s)
	}
	if s, err := OpenStore("http://127.0.0.1:1/store"); err != nil || s.String() != "http://127.0.0.1:1/store" {
		t.Fatalf("URL store: %v, %v", s, err)
	}
	empty := t.TempDir()
	for loc, frag := range map[string]string{
		filepath.Join(empty, "missing"): "no such file",
		empty:                           "no images/ directory: not a nowhere store",
		"ftp://h/store":                 "unsupported scheme",
		"s3://bucket":                   "unsupported scheme",
	} {
		if _, err := OpenStore(loc); err == nil || !strings.Contains(err.Error(), frag) {
			t.Errorf("OpenStore(%q): %v; want %q", loc, err, frag)
		}
	}
}

// loadFixture packs two versions of two images into a store served over HTTP.
func loadFixture(t *testing.T) (*store.Dir, store.Store, map[string][]byte) {
	t.Helper()
	d, err := store.CreateDir(filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	sp, _ := chunk.ParseSpec(chunk.DefaultSpec)
	files := map[string][]byte{}
	for _, name := range []string{"a", "b"} {
		for v := 1; v <= 2; v++ {
			res, err := pack.Run(context.Background(), bytes.NewReader(randBytes(uint64(v)+uint64(name[0]), 300<<10)), d, pack.Options{Name: name, Spec: sp})
			if err != nil {
				t.Fatal(err)
			}
			files[store.IndexPath(name, res.Index.Version)] = res.IndexFile
		}
	}
	root, err := os.OpenRoot(d.Path())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(server.Handler(root))
	t.Cleanup(func() { srv.Close(); root.Close() })
	h, err := store.NewHTTP(srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	return d, h, files
}

var quick = store.Policy{Timeout: 5 * time.Second}

func TestLoad(t *testing.T) {
	ctx := context.Background()
	_, s, files := loadFixture(t)
	ix, file, err := Load(ctx, s, Location{Name: "a"}, quick)
	if err != nil || ix.Version != 2 || ix.Name != "a" || !bytes.Equal(file, files["images/a/2.index"]) {
		t.Fatalf("Load latest: %v (version %d)", err, ix.Version)
	}
	ix, file, err = Load(ctx, s, Location{Name: "a", Version: 1}, quick)
	if err != nil || ix.Version != 1 || !bytes.Equal(file, files["images/a/1.index"]) {
		t.Fatalf("Load version 1: %v", err)
	}
}

func TestLoadRefuses(t *testing.T) {
	ctx := context.Background()
	d, s, files := loadFixture(t)
	put := func(name string, b []byte) {
		t.Helper()
		if err := d.PutFile(ctx, name, b); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		name  string
		setup func()
		loc   Location
		frag  string
	}{
		{"missing image", func() {}, Location{Name: "nope"}, `image "nope" not found in ` + s.String() + " (no images/nope/latest)"},
		{"missing version", func() {}, Location{Name: "a", Version: 9}, "image a version 9 not found in " + s.String() + " (no images/a/9.index)"},
		{"index swapped under the pointer", func() {
			// A mirror serves another index (here: b's) at the path latest names.
			put("images/a/2.index", files["images/b/2.index"])
		}, Location{Name: "a"}, "images/a/2.index: refused: does not match the sha256 that images/a/latest pins (altered or swapped)"},
		{"pointer for another image", func() {
			b, _ := d.File(ctx, "images/b/latest", 4096)
			put("images/a/latest", b)
		}, Location{Name: "a"}, `images/a/latest: refused: the pointer is for image "b", not "a" (mix-and-match)`},
		{"index for another image", func() {
			// Mix and match: b's index served as a's version 1, requested by version.
			put("images/a/1.index", files["images/b/1.index"])
		}, Location{Name: "a", Version: 1}, "images/a/1.index: refused: holds image b version 1, not a version 1 (mix-and-match)"},
		{"index with another version", func() {
			put("images/a/1.index", files["images/a/2.index"])
		}, Location{Name: "a", Version: 1}, "images/a/1.index: refused: holds image a version 2, not a version 1 (mix-and-match)"},
		{"garbage pointer", func() { put("images/a/latest", []byte("<html>404</html>")) }, Location{Name: "a"},
			"images/a/latest: latest pointer: does not start with"},
		{"garbage index", func() { put("images/a/1.index", []byte("not an index at all, just some bytes")) }, Location{Name: "a", Version: 1},
			"images/a/1.index: not a valid nowhere index"},
		{"pointer too large", func() { put("images/a/latest", bytes.Repeat([]byte("x"), index.MaxPointer+1)) }, Location{Name: "a"},
			"larger than the 4096 bytes expected"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for name, b := range files { // restore the store
				put(name, b)
			}
			for _, n := range []string{"a", "b"} {
				ix, _ := index.Decode(files[store.IndexPath(n, 2)])
				put(store.LatestPath(n), index.NewPointer(ix, files[store.IndexPath(n, 2)]).Encode())
			}
			if _, _, err := Load(ctx, s, Location{Name: "a"}, quick); err != nil {
				t.Fatalf("restored store does not load: %v", err)
			}
			c.setup()
			start := time.Now()
			ix, _, err := Load(ctx, s, c.loc, quick)
			if err == nil {
				t.Fatalf("loaded %s version %d", ix.Name, ix.Version)
			}
			if !strings.Contains(err.Error(), c.frag) {
				t.Fatalf("error %q; want it to say %q", err, c.frag)
			}
			// Refusals are immediate, not retried until the policy gives up.
			if time.Since(start) > 4*time.Second {
				t.Fatalf("refusal took %s", time.Since(start))
			}
		})
	}
}

// An unreachable store fails within the policy's timeout with the address in the message.
func TestLoadUnreachable(t *testing.T) {
	srv := httptest.NewServer(nil)
	url := srv.URL
	srv.Close() // nothing listens there any more
	s, err := store.NewHTTP(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = Load(context.Background(), s, Location{Name: "a"}, store.Policy{Timeout: 300 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), strings.TrimPrefix(url, "http://")) || !strings.Contains(err.Error(), "gave up after") {
		t.Fatalf("unreachable store: %v", err)
	}
	if errors.Is(err, store.ErrNotFound) {
		t.Fatal("unreachable reported as not found")
	}
}

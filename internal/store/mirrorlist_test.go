package store_test

import (
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/nowhere-boot/nowhere/internal/store"
)

func TestParseMirrorList(t *testing.T) {
	good := "# the mirrors of example's store\n" +
		"\n" +
		"https://a.example/nowhere/\r\n" +
		"   http://b.example:8080/store   \n" +
		"https://a.example/nowhere\n" + // duplicate after normalising
		"http://[::1]:9000/\n" +
		"  # indented comment\n"
	got, err := store.ParseMirrorList([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"https://a.example/nowhere", "http://b.example:8080/store", "http://[::1]:9000"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %q, want %q", got, want)
	}

	for _, tc := range []struct{ list, why string }{
		{"ftp://a.example/\n", "only http and https"},
		{"https://a.example/\n/srv/store\n", "line 2"},
		{"https://user:pw@a.example/\n", "credentials"},
		{"https://a.example/?x=1\n", "query or fragment"},
		{"https://a.example/#frag\n", "query or fragment"},
		{"https://a.example/ https://b.example/\n", "space"},
		{"https:///path\n", "no host"},
		{"https://a.example/\x00\n", "control"},
		{"https://ex\u00e4mple/\n", "non-ASCII"},
		{"https://a.example:http/\n", "port"},
		{"https://" + strings.Repeat("a", 3000) + "/\n", "longer than"},
		{strings.Repeat("#\n", store.MaxMirrorList), "bytes, more than"},
	} {
		if _, err := store.ParseMirrorList([]byte(tc.list)); err == nil || !strings.Contains(err.Error(), tc.why) {
			t.Errorf("%.40q: want an error about %q, got %v", tc.list, tc.why, err)
		}
	}

	var many strings.Builder
	for i := range store.MaxMirrors + 1 {
		fmt.Fprintf(&many, "http://m%d.example/\n", i)
	}
	if _, err := store.ParseMirrorList([]byte(many.String())); err == nil || !strings.Contains(err.Error(), "more than") {
		t.Errorf("%d mirrors: want an error, got %v", store.MaxMirrors+1, err)
	}
}

// FuzzParseMirrorList checks the parser of untrusted mirror lists: it never panics,
// stays within its bounds, returns only absolute http(s) URLs without credentials,
// query or fragment, and parses its own output back to the same list.
func FuzzParseMirrorList(f *testing.F) {
	for _, seed := range []string{
		"",
		"# comment only\n",
		"https://a.example/nowhere/\nhttp://b.example:8080/store\n",
		"http://[::1]:9000/\r\n\r\n",
		"ftp://a.example/\n",
		"https://user@a.example/\n",
		"http://a.example/%zz\n",
		"http://a.example/a b\n",
		"http://a.example/\x7f\n",
		"https://a.example/?q#f\n",
		"HTTP://A.EXAMPLE/\n",
		"http:opaque\n",
		"http://a.example:99999/\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		urls, err := store.ParseMirrorList(b)
		if err != nil {
			if urls != nil {
				t.Fatal("urls returned with an error")
			}
			return
		}
		if len(b) > store.MaxMirrorList || len(urls) > store.MaxMirrors {
			t.Fatalf("bounds: %d bytes, %d urls accepted", len(b), len(urls))
		}
		for _, s := range urls {
			u, err := url.Parse(s)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
				u.RawQuery != "" || u.Fragment != "" || strings.HasSuffix(s, "/") {
				t.Fatalf("accepted %q", s)
			}
		}
		again, err := store.ParseMirrorList([]byte(strings.Join(urls, "\n")))
		if err != nil || fmt.Sprint(again) != fmt.Sprint(urls) {
			t.Fatalf("own output %q parses to %q, %v", urls, again, err)
		}
	})
}

package peer

import (
	"strings"
	"testing"
)

func TestAnnouncementRoundTrip(t *testing.T) {
	for _, a := range []Announcement{
		{ID: "0123456789abcdef", Port: 7780, Image: "debian"},
		{ID: "ffffffffffffffff", Port: 1},
		{ID: "a0a0a0a0a0a0a0a0", Port: 65535, Image: "bookworm_v1.2-x"},
	} {
		got, err := ParseAnnouncement(a.Encode())
		if err != nil || got != a {
			t.Errorf("%q: got %+v, %v", a.Encode(), got, err)
		}
	}
}

func TestParseAnnouncementRefuses(t *testing.T) {
	ok := "nowhere-peer 1 id=0123456789abcdef port=7780 image=debian\n"
	if _, err := ParseAnnouncement([]byte(ok)); err != nil {
		t.Fatalf("valid announcement refused: %v", err)
	}
	for in, want := range map[string]string{
		"": "not \"nowhere-peer 1\"",
		"nowhere-peer 2 id=0123456789abcdef port=1":                                    "not \"nowhere-peer 1\"",
		"nowhere-peer 1 id=0123456789ABCDEF port=1":                                    "hex digits",
		"nowhere-peer 1 id=0123456789abcde port=1":                                     "hex digits",
		"nowhere-peer 1 port=1 id=0123456789abcdef":                                    "hex digits",
		"nowhere-peer 1 id=0123456789abcdef port=0":                                    "port=1..65535",
		"nowhere-peer 1 id=0123456789abcdef port=65536":                                "port=1..65535",
		"nowhere-peer 1 id=0123456789abcdef port=080":                                  "port=1..65535",
		"nowhere-peer 1 id=0123456789abcdef port=+80":                                  "port=1..65535",
		"nowhere-peer 1 id=0123456789abcdef port=80 image=../x":                        "image=NAME",
		"nowhere-peer 1 id=0123456789abcdef port=80 image=":                            "image=NAME",
		"nowhere-peer 1 id=0123456789abcdef port=80 host=10.0.0.1":                     "image=NAME",
		"nowhere-peer 1 id=0123456789abcdef port=80 image=a extra=1":                   "fields",
		"nowhere-peer 1 id=0123456789abcdef  port=80":                                  "port=1..65535",
		"nowhere-peer 1 id=0123456789abcdef port=80 image=" + strings.Repeat("a", 300): "bytes",
	} {
		_, err := ParseAnnouncement([]byte(in))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want an error about %q", in, err, want)
		}
	}
}

package peer

import (
	"bytes"
	"testing"
)

// FuzzParseAnnouncement: announcements come from anyone on the LAN. The parser never
// panics, accepts only what it can encode back byte for byte (bar the final newline), and
// every accepted announcement has a port and a well-formed id.
func FuzzParseAnnouncement(f *testing.F) {
	for _, s := range []string{
		"nowhere-peer 1 id=0123456789abcdef port=7780 image=debian\n",
		"nowhere-peer 1 id=0123456789abcdef port=7780",
		"nowhere-peer 1 id=ffffffffffffffff port=65535 image=a.b_c-d\n",
		"nowhere-peer 1 id=0123456789abcdef port=0\n",
		"nowhere-peer 1 id=0123456789abcdef port=99999 image=x\n",
		"nowhere-peer 1 id=zz port=1\n",
		"nowhere-peer 1 id=0123456789abcdef port=1 image=../../etc\n",
		"nowhere-peer 1 id=0123456789abcdef port=1 image=x\x00\n",
		"GET / HTTP/1.1\r\n\r\n",
		"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := ParseAnnouncement(b)
		if err != nil {
			return
		}
		if a.Port == 0 || len(a.ID) != idLen {
			t.Fatalf("accepted %q as %+v", b, a)
		}
		if enc := a.Encode(); !bytes.Equal(enc, b) && !bytes.Equal(enc[:len(enc)-1], b) {
			t.Fatalf("accepted %q, which encodes back as %q", b, enc)
		}
	})
}

package cmdline

import (
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

func TestSplitFollowsTheKernelsQuoting(t *testing.T) {
	params, rest := Split(`console=ttyS0  nowhere.debug quiet "a=b c" d="e f"g -- single "x y"`)
	want := []Param{
		{"console", "ttyS0", true}, {"nowhere.debug", "", false}, {"quiet", "", false},
		{"a", "b c", true}, {"d", "e fg", true},
	}
	if !reflect.DeepEqual(params, want) {
		t.Errorf("params = %#v, want %#v", params, want)
	}
	if !reflect.DeepEqual(rest, []string{"single", "x y"}) {
		t.Errorf("rest = %q", rest)
	}
}

func TestParseReadsEveryKey(t *testing.T) {
	c, err := Parse(Layer{"kernel command line", `console=ttyS0 nowhere.image=http://10.0.2.100:8080/s/images/debian/3
		nowhere.mirror=http://a.example/s nowhere.mirror=https://b.example nowhere.ip=10.0.0.5/24,10.0.0.1,10.0.0.53
		nowhere.cache=/dev/vdb nowhere.overlay=/dev/vdc nowhere.debug nowhere.toram nowhere.readahead=512K init=/lib/systemd/systemd
		nowhere.prefetch=16 nowhere.parallel=1 nowhere.profile=record nowhere.fetch=http://10.0.2.100/debian.squashfs
		nowhere.metrics=127.0.0.1:9100 -- emergency`})
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		Image:     "http://10.0.2.100:8080/s/images/debian/3",
		Mirrors:   []string{"http://a.example/s", "https://b.example"},
		IP:        IP{Addr: netip.MustParsePrefix("10.0.0.5/24"), Gateway: netip.MustParseAddr("10.0.0.1"), DNS: netip.MustParseAddr("10.0.0.53")},
		Cache:     "/dev/vdb",
		Overlay:   "/dev/vdc",
		Debug:     true,
		ToRAM:     true,
		ReadAhead: 512 << 10,
		Prefetch:  16, Parallel: 1, RecordProfile: true, Fetch: "http://10.0.2.100/debian.squashfs",
		Metrics:  "127.0.0.1:9100",
		Init:     "/lib/systemd/systemd",
		InitArgs: []string{"emergency"},
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("got  %+v\nwant %+v", c, want)
	}
}

// testKey is a minisign public key (made with nowhere keygen).
const testKey = "RWSkFGlbLEyM3S0mochr89AkGTTdLUAvL69uA4V7UzJMYfosEw7I4v2j"

func TestParseReadsTrustAndProxy(t *testing.T) {
	c, err := Parse(Layer{"kernel command line", "nowhere.image=http://s/images/a nowhere.key=" + testKey +
		" nowhere.key=" + testKey + " nowhere.insecure nowhere.proxy=http://proxy.example:3128"})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c.Keys, []string{testKey}) || !c.Insecure || c.Proxy != "http://proxy.example:3128" {
		t.Errorf("keys %q (want the key once), insecure %v, proxy %q", c.Keys, c.Insecure, c.Proxy)
	}
	c, err = Parse(Layer{"k", "nowhere.insecure=0 nowhere.proxy=none"})
	if err != nil || c.Insecure || c.Proxy != "" || c.Keys != nil {
		t.Errorf("defaults: %+v, %v", c, err)
	}
}

func TestParseReadsPeers(t *testing.T) {
	c, err := Parse(Layer{"k", "nowhere.share nowhere.peer=http://10.0.0.7:7780 nowhere.peer=http://[fd00::7]:7780 nowhere.peer=http://10.0.0.7:7780"})
	if err != nil {
		t.Fatal(err)
	}
	if !c.Share || !reflect.DeepEqual(c.Peers, []string{"http://10.0.0.7:7780", "http://[fd00::7]:7780"}) {
		t.Errorf("share %v, peers %q", c.Share, c.Peers)
	}
	var many []string
	for i := range 40 {
		many = append(many, fmt.Sprintf("nowhere.peer=http://10.0.0.%d:7780", i+1))
	}
	if _, err := Parse(Layer{"k", strings.Join(many, " ")}); err == nil || !strings.Contains(err.Error(), "more than 32 peers") {
		t.Errorf("40 peers: %v, want the bound named", err)
	}
}

// TestParseReadsMetrics: nowhere.metrics= takes IP:PORT (IPv4 or IPv6, loopback or not),
// kept in canonical form; "none" cancels a baked address; the default is off.
func TestParseReadsMetrics(t *testing.T) {
	for line, want := range map[string]string{
		"nowhere.metrics=127.0.0.1:9100":                      "127.0.0.1:9100",
		"nowhere.metrics=[::1]:9100":                          "[::1]:9100",
		"nowhere.metrics=[0:0::1]:9100":                       "[::1]:9100",
		"nowhere.metrics=0.0.0.0:9100":                        "0.0.0.0:9100",
		"nowhere.metrics=10.0.2.15:65535":                     "10.0.2.15:65535",
		"console=ttyS0":                                       "",
		"nowhere.metrics=127.0.0.1:9100 nowhere.metrics=none": "",
	} {
		c, err := Parse(Layer{"kernel command line", line})
		if err != nil || c.Metrics != want {
			t.Errorf("%s: metrics %q, %v; want %q", line, c.Metrics, err, want)
		}
	}
	baked := Layer{"initramfs defaults", "nowhere.metrics=127.0.0.1:9100"}
	if c, err := Parse(baked, Layer{"kernel command line", ""}); err != nil || c.Metrics != "127.0.0.1:9100" {
		t.Errorf("baked metrics: %q, %v", c.Metrics, err)
	}
	if c, err := Parse(baked, Layer{"kernel command line", "nowhere.metrics=none"}); err != nil || c.Metrics != "" {
		t.Errorf("baked metrics cancelled on the kernel command line: %q, %v", c.Metrics, err)
	}
}

func TestKernelCommandLineOverridesBakedDefaults(t *testing.T) {
	baked := Layer{"initramfs defaults", "nowhere.image=http://srv/images/a nowhere.mirror=http://m1 nowhere.mirror=http://m2 nowhere.ip=10.1.1.1/8"}
	c, err := Parse(baked, Layer{"kernel command line", "nowhere.image=http://srv/images/b nowhere.mirror=http://m3"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Image != "http://srv/images/b" {
		t.Errorf("image = %q, want the kernel's", c.Image)
	}
	if !reflect.DeepEqual(c.Mirrors, []string{"http://m3"}) {
		t.Errorf("mirrors = %q, want the kernel's list replacing the baked one", c.Mirrors)
	}
	if c.IP.DHCP || c.IP.Addr.String() != "10.1.1.1/8" {
		t.Errorf("ip = %v, want the baked static address", c.IP)
	}
	// An empty kernel command line boots with the baked values.
	c, err = Parse(baked, Layer{"kernel command line", ""})
	if err != nil || c.Image != "http://srv/images/a" || len(c.Mirrors) != 2 {
		t.Errorf("empty command line: %+v, %v", c, err)
	}
}

func TestDefaults(t *testing.T) {
	c, err := Parse(Layer{"kernel command line", "console=ttyS0 panic=-1"})
	if err != nil {
		t.Fatal(err)
	}
	if !c.IP.DHCP || c.Overlay != "tmpfs" || c.Debug || c.Image != "" || c.ReadAhead != -1 || c.Prefetch != -1 || c.Parallel != 0 || c.RecordProfile || c.Fetch != "" {
		t.Errorf("defaults: %+v", c)
	}
	if err := c.CheckBootable(); err == nil || !strings.Contains(err.Error(), "nowhere.image=") {
		t.Errorf("CheckBootable without an image = %v, want a hint naming nowhere.image", err)
	}
}

func TestFetchNeedsInsecure(t *testing.T) {
	c, err := Parse(Layer{"k", "nowhere.fetch=http://10.0.2.100/debian.squashfs"})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.CheckBootable(); err == nil || !strings.Contains(err.Error(), "nowhere.insecure") {
		t.Errorf("fetch without insecure: %v, want a refusal naming nowhere.insecure", err)
	}
	c.Insecure = true
	if err := c.CheckBootable(); err != nil {
		t.Errorf("fetch with insecure (no nowhere.image): %v", err)
	}
}

func TestParseRejectsBadValuesNamingThem(t *testing.T) {
	for _, tc := range []struct{ line, want string }{
		{"nowhere.image=ftp://x/images/a", "nowhere.image"},
		{"nowhere.image=http://x/debian", "no /images/"},
		{"nowhere.image=/srv/store/images/a", "http"},
		{"nowhere.image=http://x/images/a/0", "version"},
		{"nowhere.image=http://x/images/../a", "image"},
		{"nowhere.image", "needs a value"},
		{"nowhere.mirror=http://m/images/a", "base URL"},
		{"nowhere.mirror=http://user:pw@m/", "no user"},
		{"nowhere.mirror=http://m:port/", "URL"},
		{"nowhere.ip=10.0.0.5", "ADDR/PREFIX"},
		{"nowhere.ip=10.0.0.5/24,10.1.0.1", "not in 10.0.0.0/24"},
		{"nowhere.ip=10.0.0.5/24,fe80::1", "family"},
		{"nowhere.ip=0.0.0.0/0", "cannot be"},
		{"nowhere.ip=dhcp,1,2,3", "too many"},
		{"nowhere.cache=sda", "block device"},
		{"nowhere.cache=/dev/../etc/shadow", "block device"},
		{"nowhere.overlay=disk", "tmpfs"},
		{"nowhere.debug=maybe", "want 1 or 0"},
		{"init=sbin/init", "absolute"},
		{"nowhere.readahead=lots", "size"},
		{"nowhere.readahead=-5", "size"},
		{"nowhere.image=http://x/images/" + strings.Repeat("a", 3000), "longer than"},
		{"nowhere.key=RWQnotakey", "not a minisign public key"},
		{"nowhere.key=" + testKey[:40], "not a minisign public key"},
		{"nowhere.key", "needs a value"},
		{"nowhere.key=/etc/nowhere/trusted.pub", "base64 key line"},
		{"nowhere.insecure=perhaps", "want 1 or 0"},
		{"nowhere.proxy=proxy:3128", "proxy URL"},
		{"nowhere.proxy=socks5://p:1080", "proxy URL"},
		{"nowhere.proxy=http://p:3128/path", "no path"},
		{"nowhere.proxy=http://p:x/", "proxy URL"},
		{"nowhere.prefetch=-1", "from 0"},
		{"nowhere.prefetch=many", "from 0"},
		{"nowhere.parallel=2000", "from 0"},
		{"nowhere.profile=yes", "record or off"},
		{"nowhere.fetch=ftp://x/a.img", "URL of an image file"},
		{"nowhere.fetch=http://x/", "URL of an image file"},
		{"nowhere.fetch=http://u:p@x/a", "no user"},
		{"nowhere.share=sometimes", "want 1 or 0"},
		{"nowhere.peer=https://p:7780", "want a peer"},
		{"nowhere.peer=http://p:7780/chunks", "want a peer"},
		{"nowhere.peer=p:7780", "want a peer"},
		{"nowhere.peer=http://p:x", "want a peer"},
		{"nowhere.peer", "needs a value"},
		{"nowhere.metrics", "needs a value"},
		{"nowhere.metrics=9100", "want IP:PORT"},
		{"nowhere.metrics=:9100", "want IP:PORT"},
		{"nowhere.metrics=127.0.0.1", "want IP:PORT"},
		{"nowhere.metrics=localhost:9100", "want IP:PORT"},
		{"nowhere.metrics=http://127.0.0.1:9100", "want IP:PORT"},
		{"nowhere.metrics=127.0.0.1:9100/metrics", "want IP:PORT"},
		{"nowhere.metrics=127.0.0.1:99999", "want IP:PORT"},
		{"nowhere.metrics=127.0.0.1:http", "want IP:PORT"},
		{"nowhere.metrics=::1:9100", "want IP:PORT"},
		{"nowhere.metrics=127.0.0.1:0", "port 0"},
		{"nowhere.metrics=[fe80::1%eth0]:9100", "zone"},
		{"nowhere.metrics=224.0.0.1:9100", "multicast"},
	} {
		_, err := Parse(Layer{"kernel command line", tc.line})
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "kernel command line") {
			t.Errorf("%s: err = %v, want one naming %q", tc.line, err, tc.want)
		}
	}
}

func TestUnknownNowhereKeysWarn(t *testing.T) {
	c, err := Parse(Layer{"kernel command line", "nowhere.imgae=http://x/images/a systemd.unit=rescue.target"})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Warnings) != 1 || !strings.Contains(c.Warnings[0], "nowhere.imgae") {
		t.Errorf("warnings = %q, want one about the misspelt key only", c.Warnings)
	}
}

func TestEncodeRoundTrips(t *testing.T) {
	c, err := Parse(Layer{"k", `nowhere.image=http://s/images/a nowhere.mirror=http://m nowhere.ip=fd00::5/64,fd00::1 nowhere.cache=/dev/vdb nowhere.debug=1 nowhere.key=` + testKey + ` nowhere.insecure nowhere.proxy=http://u:p@proxy:3128 nowhere.share nowhere.peer=http://10.0.0.7:7780 nowhere.metrics=[::1]:9100 init=/bin/sh -- "a b" c`})
	if err != nil {
		t.Fatal(err)
	}
	back, err := Parse(Layer{"k", c.Encode()})
	if err != nil {
		t.Fatalf("Parse(Encode()) = %v (encoded %q)", err, c.Encode())
	}
	if !reflect.DeepEqual(c, back) {
		t.Errorf("round trip:\n%+v\n%+v", c, back)
	}
}

package cmdline

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"github.com/nowhere-boot/nowhere/internal/image"
	"github.com/nowhere-boot/nowhere/internal/trust"
	"github.com/nowhere-boot/nowhere/internal/units"
)

// Config is what the boot needs to know. The zero value is not bootable (no image);
// Parse fills in the defaults.
type Config struct {
	// Image is STORE/images/NAME[/VERSION], STORE being an http(s) URL.
	Image string
	// Mirrors are more base URLs of the same store, tried when the image's store does
	// not answer (and, with a mirror set, used at once).
	Mirrors []string
	IP      IP
	// Cache is a block device with a filesystem that keeps fetched chunks across boots
	// ("" = none).
	Cache string
	// Overlay is where writes go: "tmpfs" (lost at power-off) or a block device.
	Overlay string
	Debug   bool
	// ToRAM copies the whole image into memory before booting from the copy (like
	// live-boot's toram): the system then runs without the network.
	ToRAM bool
	// ReadAhead is the most bytes the root daemon fetches ahead of a sequential reader
	// (-1 = the default, 0 = none).
	ReadAhead int64
	// Prefetch is how many chunks of the image's boot profile the root daemon fetches at
	// once in the background (-1 = the default, 0 = none).
	Prefetch int
	// Parallel bounds the root daemon's chunk fetches in flight (0 = no bound; 1 = one at
	// a time, the 2005 baseline of the boot benchmark).
	Parallel int
	// RecordProfile makes the root daemon print the chunks it serves on the console, in
	// the order of their first read (nowhere profile record --console).
	RecordProfile bool
	// Fetch downloads the whole image file from this URL with one plain HTTP GET into
	// memory and boots from the copy, without nowhere's store (what dracut's
	// root=live:http and live-boot's fetch= do: the download-first baseline). Nothing is
	// verified, so it needs Insecure.
	Fetch string
	// Keys are publisher keys to trust besides those baked into the initramfs: minisign
	// public keys, base64 (the second line of a .pub file).
	Keys []string
	// Insecure boots images that fail verification (unsigned, another key, expired,
	// older), after a loud warning.
	Insecure bool
	// Proxy is an HTTP proxy for every request to the mirrors ("" = none, or HTTP_PROXY
	// and friends from init's environment).
	Proxy string
	// Share serves the chunk cache to LAN peers and announces it (internal/peer).
	Share bool
	// Peers are LAN peers sharing their caches (http://HOST:PORT), asked before the
	// mirrors; announced peers are found without them.
	Peers []string
	// Metrics is the address (IP:PORT) the root daemon serves Prometheus metrics on, at
	// /metrics, as `nowhere mount --metrics` does ("" = none).
	Metrics string
	// Init is the program to run in the image ("" = the kernel's list: /sbin/init,
	// /etc/init, /bin/init, /bin/sh).
	Init string
	// InitArgs are the words after "--", given to init.
	InitArgs []string
	// Warnings are parameters that were ignored (unknown nowhere.* keys).
	Warnings []string
}

// IP is the network configuration: DHCP, or a static address.
type IP struct {
	DHCP    bool
	Addr    netip.Prefix // static address and prefix length
	Gateway netip.Addr   // optional
	DNS     netip.Addr   // optional
}

func (ip IP) String() string {
	if ip.DHCP {
		return "dhcp"
	}
	s := ip.Addr.String()
	if ip.Gateway.IsValid() || ip.DNS.IsValid() {
		s += "," + addrOrEmpty(ip.Gateway)
	}
	if ip.DNS.IsValid() {
		s += "," + ip.DNS.String()
	}
	return s
}

func addrOrEmpty(a netip.Addr) string {
	if a.IsValid() {
		return a.String()
	}
	return ""
}

// Limits on untrusted values: the command line can come from a boot prompt, a PXE menu or
// a file baked by someone else.
const (
	maxValue   = 2048
	maxMirrors = 32
	maxKeys    = 16
	maxPeers   = 32
)

// Prefix starts every parameter nowhere reads itself.
const Prefix = "nowhere."

// key handles one parameter. repeat marks keys that may be given more than once (their
// values accumulate); for the others the last value wins.
type key struct {
	repeat bool
	flag   bool // may be given without a value
	set    func(c *Config, v string, hasValue bool) error
	reset  func(c *Config) // forget values from a lower layer before the first repeat
}

// keys is the table of everything nowhere reads from the command line. Adding a
// parameter (a trusted key, a proxy) is one entry here plus a field in Config.
var keys = map[string]key{
	"nowhere.image": {set: func(c *Config, v string, _ bool) error {
		if err := checkImage(v); err != nil {
			return err
		}
		c.Image = v
		return nil
	}},
	"nowhere.mirror": {repeat: true, reset: func(c *Config) { c.Mirrors = nil }, set: func(c *Config, v string, _ bool) error {
		if err := checkStoreURL(v); err != nil {
			return err
		}
		if len(c.Mirrors) >= maxMirrors {
			return fmt.Errorf("more than %d mirrors", maxMirrors)
		}
		if !slices.Contains(c.Mirrors, v) {
			c.Mirrors = append(c.Mirrors, v)
		}
		return nil
	}},
	"nowhere.ip": {set: func(c *Config, v string, _ bool) error {
		ip, err := ParseIP(v)
		if err != nil {
			return err
		}
		c.IP = ip
		return nil
	}},
	"nowhere.cache": {set: func(c *Config, v string, _ bool) error {
		if v == "" || v == "none" {
			c.Cache = ""
			return nil
		}
		if err := checkDevice(v); err != nil {
			return err
		}
		c.Cache = v
		return nil
	}},
	"nowhere.overlay": {set: func(c *Config, v string, _ bool) error {
		if v != "tmpfs" {
			if err := checkDevice(v); err != nil {
				return fmt.Errorf("%v (or tmpfs)", err)
			}
		}
		c.Overlay = v
		return nil
	}},
	"nowhere.debug": {flag: true, set: func(c *Config, v string, hasValue bool) error {
		if !hasValue {
			c.Debug = true
			return nil
		}
		b, err := parseBool(v)
		c.Debug = b
		return err
	}},
	"nowhere.toram": {flag: true, set: func(c *Config, v string, hasValue bool) error {
		if !hasValue {
			c.ToRAM = true
			return nil
		}
		b, err := parseBool(v)
		c.ToRAM = b
		return err
	}},
	"nowhere.readahead": {set: func(c *Config, v string, _ bool) error {
		n, err := units.ParseBytes(v)
		if err != nil || n < 0 || n > 1<<30 {
			return errors.New("want a size such as 512K or 0 (at most 1G)")
		}
		c.ReadAhead = n
		return nil
	}},
	"nowhere.prefetch": {set: func(c *Config, v string, _ bool) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > 256 {
			return errors.New("want a number of chunks from 0 (no prefetching) to 256")
		}
		c.Prefetch = n
		return nil
	}},
	"nowhere.parallel": {set: func(c *Config, v string, _ bool) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > 1024 {
			return errors.New("want a number of fetches from 0 (no bound) to 1024")
		}
		c.Parallel = n
		return nil
	}},
	"nowhere.profile": {set: func(c *Config, v string, _ bool) error {
		switch v {
		case "record":
			c.RecordProfile = true
		case "off":
			c.RecordProfile = false
		default:
			return errors.New("want record or off")
		}
		return nil
	}},
	"nowhere.fetch": {set: func(c *Config, v string, _ bool) error {
		if v == "" || v == "none" {
			c.Fetch = ""
			return nil
		}
		if err := checkFileURL(v); err != nil {
			return err
		}
		c.Fetch = v
		return nil
	}},
	"nowhere.key": {repeat: true, reset: func(c *Config) { c.Keys = nil }, set: func(c *Config, v string, _ bool) error {
		k, err := trust.ParsePublicKey([]byte(v))
		if err != nil || strings.ContainsFunc(v, badRune) {
			return errors.New("not a minisign public key (want the base64 key line of the publisher's .pub file, RW...)")
		}
		if len(c.Keys) >= maxKeys {
			return fmt.Errorf("more than %d keys", maxKeys)
		}
		if !slices.Contains(c.Keys, k.String()) {
			c.Keys = append(c.Keys, k.String())
		}
		return nil
	}},
	"nowhere.insecure": {flag: true, set: func(c *Config, v string, hasValue bool) error {
		if !hasValue {
			c.Insecure = true
			return nil
		}
		b, err := parseBool(v)
		c.Insecure = b
		return err
	}},
	"nowhere.proxy": {set: func(c *Config, v string, _ bool) error {
		if v == "" || v == "none" {
			c.Proxy = ""
			return nil
		}
		if err := checkProxyURL(v); err != nil {
			return err
		}
		c.Proxy = v
		return nil
	}},
	"nowhere.share": {flag: true, set: func(c *Config, v string, hasValue bool) error {
		if !hasValue {
			c.Share = true
			return nil
		}
		b, err := parseBool(v)
		c.Share = b
		return err
	}},
	"nowhere.peer": {repeat: true, reset: func(c *Config) { c.Peers = nil }, set: func(c *Config, v string, _ bool) error {
		if err := checkPeerURL(v); err != nil {
			return err
		}
		if len(c.Peers) >= maxPeers {
			return fmt.Errorf("more than %d peers", maxPeers)
		}
		if !slices.Contains(c.Peers, v) {
			c.Peers = append(c.Peers, v)
		}
		return nil
	}},
	"nowhere.metrics": {set: func(c *Config, v string, _ bool) error {
		if v == "" || v == "none" {
			c.Metrics = ""
			return nil
		}
		a, err := checkListenAddr(v)
		if err != nil {
			return err
		}
		c.Metrics = a
		return nil
	}},
	"init": {set: func(c *Config, v string, _ bool) error {
		if !strings.HasPrefix(v, "/") || len(v) > 255 || strings.ContainsFunc(v, badRune) {
			return errors.New("want an absolute path")
		}
		c.Init = v
		return nil
	}},
}

// Defaults returns the configuration before any command line: DHCP and a tmpfs overlay.
func Defaults() Config {
	return Config{IP: IP{DHCP: true}, Overlay: "tmpfs", ReadAhead: -1, Prefetch: -1}
}

// Layer is one source of parameters, named for error messages.
type Layer struct {
	Name string // "initramfs defaults", "kernel command line"
	Text string
}

// Parse applies the layers in order over Defaults: a later layer's value replaces an
// earlier one's (for a repeated key such as nowhere.mirror, the later layer's list
// replaces the earlier list). It fails on the first invalid value, naming the layer, the
// parameter and what is wrong. The words after "--" in the last layer that has them go to
// init.
func Parse(layers ...Layer) (Config, error) {
	c := Defaults()
	for _, l := range layers {
		if len(l.Text) > MaxLen {
			return Config{}, fmt.Errorf("%s: longer than %d bytes", l.Name, MaxLen)
		}
		params, rest := Split(l.Text)
		if rest != nil {
			c.InitArgs = rest
		}
		seen := map[string]bool{}
		for _, p := range params {
			k, ok := keys[p.Key]
			if !ok {
				if strings.HasPrefix(p.Key, Prefix) {
					c.Warnings = append(c.Warnings, fmt.Sprintf("%s: unknown parameter %s ignored", l.Name, p.Key))
				}
				continue // the kernel's, systemd's or someone else's
			}
			fail := func(err error) (Config, error) {
				return Config{}, fmt.Errorf("%s: %s=%q: %v", l.Name, p.Key, p.Value, err)
			}
			if !p.HasValue && !k.flag {
				return fail(errors.New("needs a value"))
			}
			if len(p.Value) > maxValue {
				return fail(fmt.Errorf("longer than %d bytes", maxValue))
			}
			if k.repeat && !seen[p.Key] && k.reset != nil {
				k.reset(&c)
			}
			seen[p.Key] = true
			if err := k.set(&c, p.Value, p.HasValue); err != nil {
				return fail(err)
			}
		}
	}
	return c, nil
}

// CheckBootable reports what is missing for a boot: the image.
func (c Config) CheckBootable() error {
	if c.Fetch != "" {
		if !c.Insecure {
			return errors.New("nowhere.fetch= downloads an image nothing verifies: it needs nowhere.insecure (it is the download-first baseline of the boot benchmark; boot signed images with nowhere.image=)")
		}
		return nil
	}
	if c.Image == "" {
		return errors.New("no image to boot: give nowhere.image=http://SERVER/PATH/images/NAME on the kernel command line, or bake one in with `nowhere initramfs --image`")
	}
	return nil
}

// Encode writes c as a command line that Parse reads back to the same Config (used to bake
// defaults into an initramfs). Only values that differ from Defaults are written.
func (c Config) Encode() string {
	var w []string
	add := func(k, v string) {
		if strings.ContainsAny(v, " \t\n\r\v\f") {
			v = `"` + v + `"`
		}
		w = append(w, k+"="+v)
	}
	d := Defaults()
	if c.Image != "" {
		add("nowhere.image", c.Image)
	}
	for _, m := range c.Mirrors {
		add("nowhere.mirror", m)
	}
	if c.IP != d.IP {
		add("nowhere.ip", c.IP.String())
	}
	if c.Cache != "" {
		add("nowhere.cache", c.Cache)
	}
	if c.Overlay != d.Overlay && c.Overlay != "" {
		add("nowhere.overlay", c.Overlay)
	}
	if c.Debug {
		w = append(w, "nowhere.debug")
	}
	if c.ToRAM {
		w = append(w, "nowhere.toram")
	}
	if c.ReadAhead >= 0 {
		add("nowhere.readahead", strconv.FormatInt(c.ReadAhead, 10))
	}
	if c.Prefetch >= 0 {
		add("nowhere.prefetch", strconv.Itoa(c.Prefetch))
	}
	if c.Parallel > 0 {
		add("nowhere.parallel", strconv.Itoa(c.Parallel))
	}
	if c.RecordProfile {
		add("nowhere.profile", "record")
	}
	if c.Fetch != "" {
		add("nowhere.fetch", c.Fetch)
	}
	for _, k := range c.Keys {
		add("nowhere.key", k)
	}
	if c.Insecure {
		w = append(w, "nowhere.insecure")
	}
	if c.Proxy != "" {
		add("nowhere.proxy", c.Proxy)
	}
	if c.Share {
		w = append(w, "nowhere.share")
	}
	for _, p := range c.Peers {
		add("nowhere.peer", p)
	}
	if c.Metrics != "" {
		add("nowhere.metrics", c.Metrics)
	}
	if c.Init != "" {
		add("init", c.Init)
	}
	if len(c.InitArgs) > 0 {
		w = append(w, "--")
		for _, a := range c.InitArgs {
			if a == "" || strings.ContainsAny(a, " \t\n\r\v\f") {
				a = `"` + a + `"`
			}
			w = append(w, a)
		}
	}
	return strings.Join(w, " ")
}

// ParseIP reads "dhcp" or "ADDR/PREFIX[,GATEWAY[,DNS]]".
func ParseIP(v string) (IP, error) {
	bad := func(why string) (IP, error) {
		return IP{}, fmt.Errorf("%s (want dhcp or ADDR/PREFIX[,GATEWAY[,DNS]], e.g. 192.168.1.20/24,192.168.1.1)", why)
	}
	if v == "dhcp" {
		return IP{DHCP: true}, nil
	}
	parts := strings.Split(v, ",")
	if len(parts) > 3 {
		return bad("too many fields")
	}
	pfx, err := netip.ParsePrefix(parts[0])
	if err != nil {
		return bad(fmt.Sprintf("address %q is not ADDR/PREFIX", parts[0]))
	}
	if a := pfx.Addr(); a.IsUnspecified() || a.IsMulticast() || a.IsLoopback() || a.Zone() != "" {
		return bad(fmt.Sprintf("address %s cannot be a host's address", a))
	}
	ip := IP{Addr: pfx}
	same := func(what, s string) (netip.Addr, error) {
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return netip.Addr{}, fmt.Errorf("%s %q is not an IP address", what, s)
		}
		if a.Is4() != pfx.Addr().Is4() {
			return netip.Addr{}, fmt.Errorf("%s %s is not of the address's family", what, a)
		}
		return a, nil
	}
	if len(parts) > 1 && parts[1] != "" {
		if ip.Gateway, err = same("gateway", parts[1]); err != nil {
			return bad(err.Error())
		}
		if !pfx.Masked().Contains(ip.Gateway) {
			return bad(fmt.Sprintf("gateway %s is not in %s", ip.Gateway, pfx.Masked()))
		}
	}
	if len(parts) > 2 {
		if ip.DNS, err = same("DNS server", parts[2]); err != nil {
			return bad(err.Error())
		}
	}
	return ip, nil
}

func checkImage(v string) error {
	if strings.ContainsFunc(v, badRune) {
		return errors.New("contains spaces or control characters")
	}
	loc, err := image.ParseLocation(v)
	if err != nil {
		return err
	}
	return checkStoreURL(loc.Store)
}

// checkStoreURL accepts the base URL of a store: http or https, a host, nothing else.
func checkStoreURL(v string) error {
	if strings.ContainsFunc(v, badRune) {
		return errors.New("contains spaces or control characters")
	}
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Opaque != "" {
		return errors.New("want an http:// or https:// URL with a host")
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return errors.New("a store URL has no user, query or fragment")
	}
	if _, err := strconv.Atoi(u.Port()); u.Port() != "" && err != nil {
		return fmt.Errorf("port %q is not a number", u.Port())
	}
	if strings.Contains(u.Path+"/", "/images/") {
		return errors.New("give the store's base URL, without /images/")
	}
	return nil
}

// checkFileURL accepts the URL of a file: http or https, a host, a path, nothing else.
func checkFileURL(v string) error {
	if strings.ContainsFunc(v, badRune) {
		return errors.New("contains spaces or control characters")
	}
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Opaque != "" || u.Path == "" || strings.HasSuffix(u.Path, "/") {
		return errors.New("want the http:// or https:// URL of an image file")
	}
	if u.User != nil || u.Fragment != "" {
		return errors.New("a file URL has no user or fragment")
	}
	if _, err := strconv.Atoi(u.Port()); u.Port() != "" && err != nil {
		return fmt.Errorf("port %q is not a number", u.Port())
	}
	return nil
}

// checkProxyURL accepts an HTTP proxy: http or https, a host, an optional port and user,
// no path.
func checkProxyURL(v string) error {
	if strings.ContainsFunc(v, badRune) {
		return errors.New("contains spaces or control characters")
	}
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Opaque != "" {
		return errors.New("want a proxy URL such as http://proxy.example:3128")
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return errors.New("a proxy URL has no path, query or fragment")
	}
	if _, err := strconv.Atoi(u.Port()); u.Port() != "" && err != nil {
		return fmt.Errorf("port %q is not a number", u.Port())
	}
	return nil
}

// checkPeerURL accepts a LAN peer: http://HOST:PORT with nothing after it.
func checkPeerURL(v string) error {
	if strings.ContainsFunc(v, badRune) {
		return errors.New("contains spaces or control characters")
	}
	u, err := url.Parse(v)
	if err != nil || u.Scheme != "http" || u.Host == "" || u.Opaque != "" || u.User != nil ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return errors.New("want a peer such as http://192.168.1.20:7780")
	}
	if _, err := strconv.Atoi(u.Port()); u.Port() != "" && err != nil {
		return fmt.Errorf("port %q is not a number", u.Port())
	}
	return nil
}

// checkListenAddr accepts an address to listen on: an IP literal (no host name: there is
// nothing to resolve it with at boot) and a port other than 0 (nobody could find it). It
// returns the address in its canonical form.
func checkListenAddr(v string) (string, error) {
	bad := errors.New("want IP:PORT such as 127.0.0.1:9100 or [::1]:9100 (0.0.0.0:9100 for every interface)")
	if strings.ContainsFunc(v, badRune) {
		return "", bad
	}
	ap, err := netip.ParseAddrPort(v)
	if err != nil {
		return "", bad
	}
	switch a := ap.Addr(); {
	case a.Zone() != "":
		return "", fmt.Errorf("address %s has a zone: give a loopback or global address", a)
	case a.IsMulticast():
		return "", fmt.Errorf("address %s is a multicast address: give a loopback or interface address", a)
	case ap.Port() == 0:
		return "", errors.New("port 0: give the port to scrape, such as 127.0.0.1:9100")
	}
	return ap.String(), nil
}

// checkDevice accepts a block device path under /dev.
func checkDevice(v string) error {
	if !strings.HasPrefix(v, "/dev/") || len(v) > 255 || strings.Contains(v, "/../") ||
		strings.HasSuffix(v, "/..") || strings.ContainsFunc(v, badRune) {
		return errors.New("want a block device such as /dev/vdb")
	}
	return nil
}

func parseBool(v string) (bool, error) {
	switch strings.ToLower(v) {
	case "1", "y", "yes", "true", "on":
		return true, nil
	case "0", "n", "no", "false", "off":
		return false, nil
	}
	return false, errors.New("want 1 or 0")
}

func badRune(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) || r == '"' }

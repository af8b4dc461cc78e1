package store

import (
	"bytes"
	"fmt"
	"net/url"
	"strings"
)

// The mirror list a store may publish: MirrorListPath, one base URL per line, blank
// lines and lines starting with '#' ignored. It comes from mirrors, which are untrusted,
// so it is parsed strictly and within fixed bounds: a list that breaks a rule is refused
// whole (with the line that broke it), never half-used.
const (
	MirrorListPath = "mirrors"
	MaxMirrorList  = 64 << 10 // bytes
	MaxMirrors     = 64       // URLs in one list
	maxMirrorURL   = 2048     // bytes in one URL
)

// ParseMirrorList returns the base URLs of a mirror list, normalised (no trailing
// slash), without duplicates, in the order given.
func ParseMirrorList(b []byte) ([]string, error) {
	if len(b) > MaxMirrorList {
		return nil, fmt.Errorf("mirror list: %d bytes, more than the %d allowed", len(b), MaxMirrorList)
	}
	var out []string
	seen := map[string]bool{}
	for n, line := range bytes.Split(b, []byte("\n")) {
		lineNo := n + 1
		s := strings.TrimSpace(strings.TrimSuffix(string(line), "\r"))
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		u, err := parseMirrorURL(s)
		if err != nil {
			return nil, fmt.Errorf("mirror list line %d: %w", lineNo, err)
		}
		if seen[u] {
			continue
		}
		if len(out) == MaxMirrors {
			return nil, fmt.Errorf("mirror list line %d: more than %d mirrors", lineNo, MaxMirrors)
		}
		seen[u] = true
		out = append(out, u)
	}
	return out, nil
}

// parseMirrorURL accepts an absolute http or https URL with a host and nothing that
// a base URL has no use for (credentials, query, fragment, spaces, control bytes).
func parseMirrorURL(s string) (string, error) {
	if len(s) > maxMirrorURL {
		return "", fmt.Errorf("URL longer than %d bytes", maxMirrorURL)
	}
	for _, c := range []byte(s) {
		if c <= ' ' || c >= 0x7f {
			return "", fmt.Errorf("%q: URL with a space, control or non-ASCII byte", s)
		}
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", fmt.Errorf("%q: %v", s, err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return "", fmt.Errorf("%q: only http and https mirrors", s)
	case u.Host == "" || u.Opaque != "":
		return "", fmt.Errorf("%q: no host", s)
	case u.User != nil:
		return "", fmt.Errorf("%q: credentials in a mirror URL", s)
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.Contains(s, "#"):
		return "", fmt.Errorf("%q: query or fragment in a mirror URL", s)
	case u.Port() != "" && !allDigits(u.Port()):
		return "", fmt.Errorf("%q: bad port", s)
	}
	return strings.TrimRight(u.String(), "/"), nil
}

func allDigits(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return len(s) <= 5
}

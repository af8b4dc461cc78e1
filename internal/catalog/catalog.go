// Package catalog describes what a store holds, for clients that cannot list it: HTTP has
// no directory listings (by design: any static server, CDN or proxy must do), so pack
// publishes two small text files beside the images (docs/format.md, section 6):
//
//   - images/NAME/versions: every version of image NAME with its size, times, chunk counts,
//     stored bytes and the SHA-256 of its index file; signed like the latest pointer.
//   - images/catalog: the names of the store's images. Unsigned: it is a hint like the
//     mirrors file. A lying catalogue can only hide images (which a mirror can always do,
//     by answering 404) or name images whose files then fail verification.
package catalog

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nowhere-boot/nowhere/internal/index"
	"github.com/nowhere-boot/nowhere/internal/trust"
)

// Paths and limits of the catalogue files.
const (
	NamesPath   = "images/catalog"
	MaxNames    = 1 << 20 // bytes of images/catalog
	MaxVersions = 1 << 20 // bytes of images/NAME/versions

	namesMagic    = "nowhere-catalog 1"
	versionsMagic = "nowhere-versions 1"
)

// VersionsPath is the versions file of image name.
func VersionsPath(name string) string { return "images/" + name + "/versions" }

// Version describes one published version of an image.
type Version struct {
	Version  uint64
	SHA256   [32]byte // of the index file as published (signature block included)
	Size     int64    // image size
	Created  time.Time
	Expires  time.Time // zero: never
	Chunks   int       // data entries
	Unique   int       // distinct chunks
	Stored   int64     // compressed bytes of the distinct chunks
	Chunking string    // as `nowhere info` prints it
	Signed   bool      // the index carries a signature
	Arch     string    // the machine architecture the index records ("": any)
}

// Describe summarises an index file as a Version (ix is file decoded, or the index file
// was encoded from, before signing).
func Describe(ix *index.Index, file []byte) Version {
	st := ix.Stats()
	_, sig, _ := trust.SplitIndex(file)
	return Version{
		Version: ix.Version, SHA256: sha256.Sum256(file), Size: ix.Size, Created: ix.Created,
		Expires: ix.Expires, Chunks: st.Chunks, Unique: st.Unique, Stored: st.StoredBytes,
		Chunking: ix.Chunking.String(), Signed: len(sig) > 0, Arch: ix.Arch,
	}
}

// Versions is the content of images/NAME/versions, oldest version first.
type Versions struct {
	Name     string
	Versions []Version
}

// Find returns version v, if listed.
func (vs *Versions) Find(v uint64) (Version, bool) {
	i, ok := slices.BinarySearchFunc(vs.Versions, v, func(x Version, v uint64) int { return cmpU64(x.Version, v) })
	if !ok {
		return Version{}, false
	}
	return vs.Versions[i], true
}

// Put adds or replaces a version, keeping the list sorted.
func (vs *Versions) Put(v Version) {
	i, ok := slices.BinarySearchFunc(vs.Versions, v.Version, func(x Version, v uint64) int { return cmpU64(x.Version, v) })
	if ok {
		vs.Versions[i] = v
		return
	}
	vs.Versions = slices.Insert(vs.Versions, i, v)
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func parseTime(s string) (time.Time, error) {
	if s == "-" {
		return time.Time{}, nil
	}
	return time.Parse(time.RFC3339, s)
}

// Encode returns the versions file's text (unsigned).
func (vs *Versions) Encode() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s\nname %s\n", versionsMagic, vs.Name)
	for _, v := range vs.Versions {
		signed := "no"
		if v.Signed {
			signed = "yes"
		}
		fmt.Fprintf(&b, "version %d size %d created %s expires %s chunks %d unique %d stored %d chunking %s signed %s sha256 %x",
			v.Version, v.Size, formatTime(v.Created), formatTime(v.Expires), v.Chunks, v.Unique, v.Stored,
			v.Chunking, signed, v.SHA256)
		if v.Arch != "" {
			fmt.Fprintf(&b, " arch %s", v.Arch) // older readers ignore the key
		}
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// ParseVersions parses a versions file's text (without a signature). Unknown keys on a
// version line and unknown lines are ignored, so later versions of the format can add them.
func ParseVersions(b []byte) (*Versions, error) {
	bad := func(line int, format string, args ...any) (*Versions, error) {
		return nil, fmt.Errorf("versions file line %d: %s", line, fmt.Sprintf(format, args...))
	}
	if len(b) > MaxVersions {
		return nil, fmt.Errorf("versions file: %d bytes, larger than %d", len(b), MaxVersions)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, MaxVersions)
	if !sc.Scan() || strings.TrimSuffix(sc.Text(), "\r") != versionsMagic {
		return nil, fmt.Errorf("versions file: does not start with %q", versionsMagic)
	}
	vs := &Versions{}
	for n := 2; sc.Scan(); n++ {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "name":
			if len(f) != 2 {
				return bad(n, "want: name NAME")
			}
			if err := index.ValidName(f[1]); err != nil {
				return bad(n, "%v", err)
			}
			vs.Name = f[1]
		case "version":
			v, err := parseVersionLine(f)
			if err != nil {
				return bad(n, "%v", err)
			}
			if k := len(vs.Versions); k > 0 && vs.Versions[k-1].Version >= v.Version {
				return bad(n, "version %d does not follow %d", v.Version, vs.Versions[k-1].Version)
			}
			vs.Versions = append(vs.Versions, v)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("versions file: %w", err)
	}
	if vs.Name == "" {
		return nil, fmt.Errorf("versions file: no name line")
	}
	return vs, nil
}

func parseVersionLine(f []string) (Version, error) {
	var v Version
	if len(f)%2 != 0 {
		return v, errors.New("want: version V KEY VALUE")
	}
	var err error
	if v.Version, err = strconv.ParseUint(f[1], 10, 64); err != nil || v.Version == 0 {
		return v, fmt.Errorf("bad version %q", f[1])
	}
	have := map[string]bool{}
	for i := 2; i < len(f); i += 2 {
		key, val := f[i], f[i+1]
		have[key] = true
		switch key {
		case "size":
			v.Size, err = strconv.ParseInt(val, 10, 64)
		case "created":
			v.Created, err = parseTime(val)
		case "expires":
			v.Expires, err = parseTime(val)
		case "chunks":
			v.Chunks, err = strconv.Atoi(val)
		case "unique":
			v.Unique, err = strconv.Atoi(val)
		case "stored":
			v.Stored, err = strconv.ParseInt(val, 10, 64)
		case "chunking":
			v.Chunking = val
		case "signed":
			v.Signed = val == "yes"
		case "arch":
			if index.ValidArch(val) != nil || val == "" {
				err = fmt.Errorf("unknown architecture")
			}
			v.Arch = val
		case "sha256":
			var s []byte
			s, err = hex.DecodeString(val)
			if err == nil && len(s) != 32 {
				err = fmt.Errorf("not 32 bytes")
			}
			copy(v.SHA256[:], s)
		}
		if err != nil {
			return v, fmt.Errorf("version %d: bad %s %q", v.Version, key, val)
		}
	}
	if !have["sha256"] || !have["size"] {
		return v, fmt.Errorf("version %d: missing size or sha256", v.Version)
	}
	return v, nil
}

// EncodeNames returns the text of images/catalog for these image names.
func EncodeNames(names []string) []byte {
	var b bytes.Buffer
	b.WriteString(namesMagic + "\n")
	for _, n := range names {
		fmt.Fprintf(&b, "image %s\n", n)
	}
	return b.Bytes()
}

// ParseNames parses images/catalog: the image names, sorted, without repeats.
func ParseNames(b []byte) ([]string, error) {
	if len(b) > MaxNames {
		return nil, fmt.Errorf("catalog: %d bytes, larger than %d", len(b), MaxNames)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	if !sc.Scan() || strings.TrimSuffix(sc.Text(), "\r") != namesMagic {
		return nil, fmt.Errorf("catalog: does not start with %q", namesMagic)
	}
	var names []string
	for n := 2; sc.Scan(); n++ {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || f[0] != "image" {
			continue
		}
		if len(f) != 2 {
			return nil, fmt.Errorf("catalog line %d: want: image NAME", n)
		}
		if err := index.ValidName(f[1]); err != nil {
			return nil, fmt.Errorf("catalog line %d: %v", n, err)
		}
		names = append(names, f[1])
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("catalog: %w", err)
	}
	slices.Sort(names)
	return slices.Compact(names), nil
}

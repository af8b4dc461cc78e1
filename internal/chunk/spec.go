package chunk

import (
	"fmt"
	"strconv"
	"strings"
)

// DefaultSpec is the chunking used when none is given: content-defined, 64 KiB average.
const DefaultSpec = "cdc:16K:64K:256K"

// BlockAlign is the alignment used for block filesystems and raw disks: ext4 and erofs
// place file data in 4 KiB blocks.
const BlockAlign = 4096

// Spec is a parsed --chunking value. Align 0 means "decide from the image": byte-level for
// squashfs, BlockAlign for everything else.
type Spec struct {
	Kind          Kind
	Min, Avg, Max int
	Align         int
}

// ParseSpec parses "fixed:SIZE" or "cdc:MIN:AVG:MAX[:ALIGN]". Sizes take K and M suffixes
// (powers of 1024).
func ParseSpec(s string) (Spec, error) {
	parts := strings.Split(s, ":")
	bad := func(why string) (Spec, error) {
		return Spec{}, fmt.Errorf("chunking %q: %s (want fixed:SIZE or cdc:MIN:AVG:MAX[:ALIGN], e.g. %s)", s, why, DefaultSpec)
	}
	nums := make([]int, 0, 4)
	for _, p := range parts[1:] {
		n, err := parseSize(p)
		if err != nil {
			return bad(err.Error())
		}
		nums = append(nums, n)
	}
	switch parts[0] {
	case "fixed":
		if len(nums) != 1 {
			return bad("fixed takes one size")
		}
		if nums[0] < 512 || nums[0] > MaxSize {
			return bad(fmt.Sprintf("size must be between 512 and %d", MaxSize))
		}
		return Spec{Kind: KindFixed, Min: nums[0], Avg: nums[0], Max: nums[0], Align: nums[0]}, nil
	case "cdc":
		if len(nums) != 3 && len(nums) != 4 {
			return bad("cdc takes three or four sizes")
		}
		sp := Spec{Kind: KindCDC, Min: nums[0], Avg: nums[1], Max: nums[2]}
		if len(nums) == 4 {
			sp.Align = nums[3]
		}
		if err := sp.check(); err != nil {
			return bad(err.Error())
		}
		return sp, nil
	}
	return bad(fmt.Sprintf("unknown kind %q", parts[0]))
}

func (sp Spec) check() error {
	switch {
	case !(0 < sp.Min && sp.Min <= sp.Avg && sp.Avg <= sp.Max):
		return fmt.Errorf("need 0 < MIN <= AVG <= MAX")
	case sp.Max > MaxSize:
		return fmt.Errorf("MAX above %d", MaxSize)
	case sp.Min < 64:
		return fmt.Errorf("MIN below 64 bytes")
	case sp.Align != 0 && sp.Align != 1 && (sp.Align < 64 || sp.Align&(sp.Align-1) != 0):
		return fmt.Errorf("ALIGN must be 1 or a power of two >= 64")
	case sp.Align > 1 && (sp.Min%sp.Align != 0 || sp.Max%sp.Align != 0):
		return fmt.Errorf("MIN and MAX must be multiples of ALIGN")
	}
	return nil
}

// New returns the chunker for this spec. autoAlign is used when the spec leaves Align open.
func (sp Spec) New(autoAlign int) (Chunker, error) {
	if sp.Kind == KindFixed {
		return Fixed{Size: sp.Max}, nil
	}
	if sp.Align == 0 {
		sp.Align = autoAlign
		if sp.Align > 1 && (sp.Min%sp.Align != 0 || sp.Max%sp.Align != 0) {
			sp.Align = 1 // sizes the user chose do not fit the block grid: cut anywhere
		}
	}
	if err := sp.check(); err != nil {
		return nil, err
	}
	return NewCDC(sp.Min, sp.Avg, sp.Max, sp.Align), nil
}

// FromParams rebuilds the chunker an index was packed with (for seeds and diffs).
func FromParams(p Params) (Chunker, error) {
	sp := Spec{Kind: p.Kind, Min: int(p.Min), Avg: int(p.Avg), Max: int(p.Max), Align: int(p.Align)}
	switch p.Kind {
	case KindFixed:
		if sp.Max < 512 || sp.Max > MaxSize {
			return nil, fmt.Errorf("fixed chunk size %d out of range", sp.Max)
		}
		return Fixed{Size: sp.Max}, nil
	case KindCDC:
		if sp.Align == 0 {
			return nil, fmt.Errorf("cdc alignment 0")
		}
		return sp.New(sp.Align)
	case KindFS:
		return nil, fmt.Errorf("fs chunking needs the image's own metadata, not just its parameters")
	}
	return nil, fmt.Errorf("unknown chunking kind %d", p.Kind)
}

func (p Params) String() string {
	switch p.Kind {
	case KindFixed:
		return "fixed:" + FormatSize(int64(p.Max))
	case KindCDC, KindFS:
		return fmt.Sprintf("%s:%s:%s:%s:%d", p.Kind, FormatSize(int64(p.Min)), FormatSize(int64(p.Avg)), FormatSize(int64(p.Max)), p.Align)
	}
	return fmt.Sprintf("kind%d", p.Kind)
}

func parseSize(s string) (int, error) {
	mult := 1
	switch {
	case strings.HasSuffix(s, "K"), strings.HasSuffix(s, "k"):
		mult, s = 1<<10, s[:len(s)-1]
	case strings.HasSuffix(s, "M"), strings.HasSuffix(s, "m"):
		mult, s = 1<<20, s[:len(s)-1]
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 || n > MaxSize/mult {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return n * mult, nil
}

// FormatSize writes n with a K or M suffix when it is an exact multiple.
func FormatSize(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return strconv.FormatInt(n>>20, 10) + "M"
	case n >= 1<<10 && n%(1<<10) == 0:
		return strconv.FormatInt(n>>10, 10) + "K"
	}
	return strconv.FormatInt(n, 10)
}

package bootdisk

import (
	"context"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
)

// File is one file to put on the media: from Src, or Data when Src is "".
type File struct {
	Dst  string // path on the media, with '/' separators, without a leading '/'
	Src  string
	Data []byte
}

func (f File) size() (int64, error) {
	if f.Src == "" {
		return int64(len(f.Data)), nil
	}
	st, err := os.Stat(f.Src)
	if err != nil {
		return 0, err
	}
	return st.Size(), nil
}

// fatSize is a FAT filesystem size that holds files with a little room to spare: every
// file rounded up to 32 KiB (the largest cluster mkfs.vfat picks for these sizes), 1 MiB
// for the FATs and directories, 1 MiB or 5% more, whichever is more, rounded up to a MiB.
func fatSize(files []File) (int64, error) {
	var n int64
	for _, f := range files {
		s, err := f.size()
		if err != nil {
			return 0, err
		}
		n += (s + 32<<10 - 1) &^ (32<<10 - 1)
	}
	n += 1 << 20
	n += max(1<<20, n/20)
	return (n + 1<<20 - 1) &^ (1<<20 - 1), nil
}

// MakeFAT makes a FAT filesystem of size bytes in the new file file, labelled label,
// holding files, with mkfs.vfat and mtools (no mount). hidden is the number of sectors
// before the filesystem on its disk (its partition's start), recorded in its boot sector.
func MakeFAT(ctx context.Context, file string, size int64, label string, hidden int64, files []File) error {
	if size%1024 != 0 {
		return fmt.Errorf("FAT size %d: not a whole number of KiB", size)
	}
	if err := run(ctx, "mkfs.vfat", "-C", "-n", label, "-h", strconv.FormatInt(hidden, 10), file, strconv.FormatInt(size/1024, 10)); err != nil {
		return err
	}
	var dirs []string
	for _, f := range files {
		for d := path.Dir(f.Dst); d != "." && d != "/"; d = path.Dir(d) {
			if !slices.Contains(dirs, d) {
				dirs = append(dirs, d)
			}
		}
	}
	slices.SortFunc(dirs, func(a, b string) int { return len(a) - len(b) }) // parents first
	if len(dirs) > 0 {
		args := []string{"-i", file}
		for _, d := range dirs {
			args = append(args, "::/"+d)
		}
		if err := run(ctx, "mmd", args...); err != nil {
			return err
		}
	}
	tmp, err := os.MkdirTemp(filepath.Dir(file), ".data-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	for i, f := range files {
		src := f.Src
		if src == "" {
			src = filepath.Join(tmp, strconv.Itoa(i))
			if err := os.WriteFile(src, f.Data, 0o644); err != nil {
				return err
			}
		}
		if err := run(ctx, "mcopy", "-i", file, "-o", src, "::/"+f.Dst); err != nil {
			return err
		}
	}
	return nil
}

// Package kmod picks the kernel modules a boot needs and loads them. At build time it
// reads a kernel's /lib/modules/VERSION (modules.dep, modules.alias, modules.builtin) and
// resolves the closure of the wanted modules; at boot it loads them in order with their
// dependencies (u-root's kmodule reads the trimmed modules.dep in the initramfs), then the
// drivers whose aliases match the hardware that is present, like udev's coldplug.
package kmod

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// Tree is a kernel's module directory.
type Tree struct {
	Dir     string // /lib/modules/VERSION
	Version string

	paths   map[string]string   // module name -> path relative to Dir
	deps    map[string][]string // module name -> names it depends on
	builtin map[string]bool
	aliases []Alias
}

// Alias is one line of modules.alias: devices whose modalias matches Pattern are driven
// by Module.
type Alias struct {
	Pattern string
	Module  string
}

// Name turns a module file name or a name with dashes into the kernel's module name
// (crc-t10dif.ko.xz -> crc_t10dif).
func Name(s string) string {
	s = path.Base(s)
	for _, ext := range []string{".xz", ".gz", ".zst"} {
		s = strings.TrimSuffix(s, ext)
	}
	s = strings.TrimSuffix(s, ".ko")
	return strings.ReplaceAll(s, "-", "_")
}

// OpenTree reads the module directory of one kernel. It needs modules.dep (Debian's
// linux-image packages ship none: run `depmod -b ROOT VERSION` first).
func OpenTree(dir string) (*Tree, error) {
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return nil, fmt.Errorf("modules %s: %w", dir, errors.Unwrap(err))
	}
	t := &Tree{Dir: real, Version: filepath.Base(real), paths: map[string]string{},
		deps: map[string][]string{}, builtin: map[string]bool{}}
	err = eachLine(filepath.Join(real, "modules.dep"), func(line string) error {
		mod, deps, ok := strings.Cut(line, ":")
		if !ok {
			return fmt.Errorf("line %q has no ':'", line)
		}
		name := Name(mod)
		t.paths[name] = mod
		for _, d := range strings.Fields(deps) {
			t.deps[name] = append(t.deps[name], Name(d))
		}
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("modules %s: no modules.dep (run depmod -b ROOT %s, as scripts/fetch-kernel.sh does)", dir, t.Version)
	}
	if err != nil {
		return nil, err
	}
	if err := eachLine(filepath.Join(real, "modules.builtin"), func(line string) error {
		t.builtin[Name(line)] = true
		return nil
	}); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if err := eachLine(filepath.Join(real, "modules.alias"), func(line string) error {
		f := strings.Fields(line)
		if len(f) == 3 && f[0] == "alias" {
			t.aliases = append(t.aliases, Alias{Pattern: f[1], Module: Name(f[2])})
		}
		return nil
	}); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	return t, nil
}

// Has reports whether the kernel has the module, as a file or built in.
func (t *Tree) Has(name string) (file, builtin bool) {
	name = Name(name)
	_, file = t.paths[name]
	return file, t.builtin[name]
}

// Path returns the module's file relative to Dir.
func (t *Tree) Path(name string) string { return t.paths[Name(name)] }

// Closure returns the modules names need, dependencies first, each once.
func (t *Tree) Closure(names []string) ([]string, error) {
	var out []string
	state := map[string]int{} // 1 visiting, 2 done
	var visit func(n string, chain []string) error
	visit = func(n string, chain []string) error {
		switch state[n] {
		case 2:
			return nil
		case 1:
			return fmt.Errorf("modules.dep: dependency cycle %s", strings.Join(append(chain, n), " -> "))
		}
		if _, ok := t.paths[n]; !ok {
			return fmt.Errorf("module %s is not in %s/modules.dep", n, t.Dir)
		}
		state[n] = 1
		// modules.dep lists a module's dependencies so that the last must load first.
		deps := slices.Clone(t.deps[n])
		slices.Reverse(deps)
		for _, d := range deps {
			if err := visit(d, append(chain, n)); err != nil {
				return err
			}
		}
		state[n] = 2
		out = append(out, n)
		return nil
	}
	for _, n := range names {
		if err := visit(Name(n), nil); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// AliasesOf returns the aliases of the given modules.
func (t *Tree) AliasesOf(names []string) []Alias {
	want := map[string]bool{}
	for _, n := range names {
		want[Name(n)] = true
	}
	var out []Alias
	for _, a := range t.aliases {
		if want[a.Module] {
			out = append(out, a)
		}
	}
	return out
}

func eachLine(file string, fn func(string) error) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if err := fn(line); err != nil {
			return fmt.Errorf("%s:%d: %w", file, n, err)
		}
	}
	return sc.Err()
}

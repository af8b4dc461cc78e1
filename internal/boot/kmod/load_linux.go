package kmod

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/u-root/u-root/pkg/kmodule"
	"golang.org/x/sys/unix"
)

// PlanFile is where an initramfs keeps its Plan.
const PlanFile = "/etc/nowhere/modules"

// Loaded is what a lane loaded.
type Loaded struct {
	Modules []string // from the plan's bus or load list
	Drivers []string // drivers whose devices were found
	Failed  []string // "name: reason"
}

// Loader loads a Plan's modules from the initramfs (/lib/modules/VERSION, whose trimmed
// modules.dep u-root's kmodule resolves dependencies from). A module that fails to load
// is reported and skipped: the boot goes on and fails later, with a precise reason, only
// if it needed that module. Its two lanes may run at the same time.
type Loader struct {
	plan   Plan
	prober *kmodule.Prober
	debugf func(string, ...any)
}

// NewLoader checks that the plan is for the running kernel.
func NewLoader(p Plan, debugf func(string, ...any)) (*Loader, error) {
	if debugf == nil {
		debugf = func(string, ...any) {}
	}
	if rel := release(); rel != p.Kernel {
		return nil, fmt.Errorf("the initramfs has modules for kernel %s but this is kernel %s (build it with --modules /lib/modules/%s)", p.Kernel, rel, rel)
	}
	prober, err := kmodule.NewProber(kmodule.ProbeOpts{})
	if err != nil {
		return nil, fmt.Errorf("modules: %w", err)
	}
	return &Loader{plan: p, prober: prober, debugf: debugf}, nil
}

func (l *Loader) probe(n string, res *Loaded) bool {
	start := time.Now()
	err := l.prober.Probe(n, "")
	l.debugf("module %s (with dependencies): %s", n, time.Since(start).Round(time.Millisecond))
	if err != nil {
		res.Failed = append(res.Failed, fmt.Sprintf("%s: %v", n, err))
		return false
	}
	return true
}

// Features loads the plan's load list, in order.
func (l *Loader) Features() Loaded {
	var res Loaded
	for _, n := range l.plan.Load {
		if l.probe(n, &res) {
			res.Modules = append(res.Modules, n)
		}
	}
	return res
}

// Hardware loads the buses, then, in rounds, the drivers whose aliases match a device in
// /sys/bus/*/devices (like udev's coldplug): a driver can reveal new devices (a disk
// controller its disks), so it looks again until nothing new loads.
func (l *Loader) Hardware() Loaded {
	var res Loaded
	for _, n := range l.plan.Buses {
		if l.probe(n, &res) {
			res.Modules = append(res.Modules, n)
		}
	}
	aliases, err := readAliases(filepath.Join("/lib/modules", l.plan.Kernel, "modules.alias"))
	if err != nil {
		res.Failed = append(res.Failed, err.Error())
		return res
	}
	tried := map[string]bool{}
	for round := 0; round < 4; round++ {
		present := Modaliases("/sys/bus")
		loadedAny := false
		for _, d := range l.plan.Drivers {
			if tried[d] || !Matches(aliases, d, present) {
				continue
			}
			tried[d] = true
			if l.probe(d, &res) {
				res.Drivers = append(res.Drivers, d)
				loadedAny = true
			}
		}
		if !loadedAny {
			break
		}
	}
	return res
}

func release() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "unknown"
	}
	return unix.ByteSliceToString(u.Release[:])
}

// Modaliases returns the modalias of every device under sysBus (/sys/bus).
func Modaliases(sysBus string) []string {
	files, _ := filepath.Glob(filepath.Join(sysBus, "*", "devices", "*", "modalias"))
	var out []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if s := strings.TrimSpace(string(b)); s != "" && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// Matches reports whether one of module's aliases matches one of the devices' modaliases
// (shell patterns, as modprobe uses them).
func Matches(aliases []Alias, module string, modaliases []string) bool {
	for _, a := range aliases {
		if a.Module != module {
			continue
		}
		for _, m := range modaliases {
			if ok, err := path.Match(a.Pattern, m); err == nil && ok {
				return true
			}
		}
	}
	return false
}

func readAliases(file string) ([]Alias, error) {
	var out []Alias
	err := eachLine(file, func(line string) error {
		f := strings.Fields(line)
		if len(f) == 3 && f[0] == "alias" {
			out = append(out, Alias{Pattern: f[1], Module: Name(f[2])})
		}
		return nil
	})
	if os.IsNotExist(err) {
		return nil, nil
	}
	return out, err
}

package kmod

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/u-root/u-root/pkg/kmodule"
	"golang.org/x/sys/unix"
)

// PlanFile is where an initramfs keeps its Plan.
const PlanFile = "/etc/nowhere/modules"

// Loaded is what Load did.
type Loaded struct {
	Modules []string // from the plan's load list
	Drivers []string // drivers whose devices were found
	Failed  []string // "name: reason"
}

// Load loads p's modules (with their dependencies, from the initramfs' modules.dep), then,
// in rounds, the drivers whose aliases match a device in /sys/bus/*/devices: a driver can
// reveal new devices (a disk controller its disks), so it looks again until nothing new
// loads. A module that fails to load is reported and skipped: the boot goes on and fails
// later, with a precise reason, only if it needed that module.
func Load(p Plan) (Loaded, error) {
	var res Loaded
	if len(p.Load) == 0 && len(p.Drivers) == 0 {
		return res, nil
	}
	if rel := release(); rel != p.Kernel {
		return res, fmt.Errorf("the initramfs has modules for kernel %s but this is kernel %s (build it with --modules /lib/modules/%s)", p.Kernel, rel, rel)
	}
	prober, err := kmodule.NewProber(kmodule.ProbeOpts{})
	if err != nil {
		return res, fmt.Errorf("modules: %w", err)
	}
	probe := func(n string) bool {
		if err := prober.Probe(n, ""); err != nil {
			res.Failed = append(res.Failed, fmt.Sprintf("%s: %v", n, err))
			return false
		}
		return true
	}
	for _, n := range p.Load {
		if probe(n) {
			res.Modules = append(res.Modules, n)
		}
	}
	aliases, err := readAliases(filepath.Join("/lib/modules", p.Kernel, "modules.alias"))
	if err != nil {
		return res, err
	}
	tried := map[string]bool{}
	for round := 0; round < 4; round++ {
		present := Modaliases("/sys/bus")
		loadedAny := false
		for _, d := range p.Drivers {
			if tried[d] || !Matches(aliases, d, present) {
				continue
			}
			tried[d] = true
			if probe(d) {
				res.Drivers = append(res.Drivers, d)
				loadedAny = true
			}
		}
		if !loadedAny {
			break
		}
	}
	return res, nil
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

package main

import (
	"github.com/nowhere-boot/nowhere/internal/units"
	"github.com/spf13/pflag"
)

// sizeVar defines a size flag ("128M", "4G", "64KiB", "4096": units.ParseBytes) that
// refuses a malformed size when the command line is parsed, as a usage error naming the
// flag, like durationVar for durations. The value stays the text given (what the verbs
// pass to units.ParseBytes, which then cannot fail), and --help shows its kind as "size".
func sizeVar(f *pflag.FlagSet, p *string, name, value, usage string) {
	*p = value
	f.Var((*sizeValue)(p), name, usage)
}

type sizeValue string

func (s *sizeValue) String() string { return string(*s) }

func (s *sizeValue) Type() string { return "size" }

func (s *sizeValue) Set(v string) error {
	if _, err := units.ParseBytes(v); err != nil {
		return err // says what a size looks like
	}
	*s = sizeValue(v)
	return nil
}

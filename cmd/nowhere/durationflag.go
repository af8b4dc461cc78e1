package main

import (
	"errors"
	"time"

	"github.com/spf13/pflag"
)

// durationVar defines a duration flag that refuses negative values when the command line
// is parsed. Below the CLI, a negative timeout or grace period means "no limit" (or worse,
// a wait forever), which nobody asks for by typing -5s: the flag's parse error names it,
// as for any malformed value.
func durationVar(f *pflag.FlagSet, p *time.Duration, name string, value time.Duration, usage string) {
	*p = value
	f.Var((*nonNegativeDuration)(p), name, usage)
	if value == 0 {
		f.Lookup(name).DefValue = "0" // what pflag's help leaves out as a zero default
	}
}

type nonNegativeDuration time.Duration

func (d *nonNegativeDuration) String() string { return time.Duration(*d).String() }

// Type is what --help shows as the value's kind, as for pflag's own durations.
func (d *nonNegativeDuration) Type() string { return "duration" }

func (d *nonNegativeDuration) Set(s string) error {
	v, err := time.ParseDuration(s)
	if err != nil {
		return errors.New("want a duration such as 90s, 10m or 1h")
	}
	if v < 0 {
		return errors.New("must not be negative")
	}
	*d = nonNegativeDuration(v)
	return nil
}

package main

import (
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// TestEveryDurationFlagRefusesNegativeValues walks every verb's flags: each duration flag
// is one that refuses a negative value with an error naming the flag, so a negative
// --timeout cannot silently mean "wait forever".
func TestEveryDurationFlagRefusesNegativeValues(t *testing.T) {
	var walk func(c *cobra.Command)
	seen := 0
	walk = func(c *cobra.Command) {
		c.Flags().VisitAll(func(fl *pflag.Flag) {
			if fl.Value.Type() != "duration" {
				return
			}
			seen++
			where := c.CommandPath() + " --" + fl.Name
			if _, ok := fl.Value.(*nonNegativeDuration); !ok {
				t.Errorf("%s is a plain duration flag: define it with durationVar", where)
				return
			}
			before := fl.Value.String()
			if err := fl.Value.Set("-5s"); err == nil || !strings.Contains(err.Error(), "negative") {
				t.Errorf("%s accepts -5s (err %v)", where, err)
			}
			if fl.Value.String() != before {
				t.Errorf("%s changed to %s on a refused value", where, fl.Value.String())
			}
			if err := fl.Value.Set("0"); err != nil {
				t.Errorf("%s refuses 0: %v", where, err)
			}
		})
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(newRootCommand())
	if seen < 8 {
		t.Errorf("found %d duration flags; expected at least the 8 of extract, mount, gc, serve, vm, profile", seen)
	}
}

// TestNegativeTimeoutIsOneClearError runs the verbs with a negative duration: the command
// fails before doing anything, with an error that names the flag.
func TestNegativeTimeoutIsOneClearError(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{
		{"extract", dir + "/images/x", dir + "/out.img", "--timeout", "-1s"},
		{"extract", dir + "/images/x", dir + "/out.img", "--http-timeout", "-1m"},
		{"mount", dir + "/images/x", dir, "--timeout", "-1s"},
		{"mount", dir + "/images/x", dir, "--http-timeout", "-2s"},
		{"info", dir + "/images/x", "--http-timeout", "-2s"},
		{"gc", dir, "--keep", "1", "--grace", "-1h"},
	} {
		cmd := newRootCommand()
		cmd.SetArgs(args)
		cmd.SetOut(new(strings.Builder))
		cmd.SetErr(new(strings.Builder))
		err := cmd.Execute()
		flag := args[len(args)-2]
		if err == nil || !strings.Contains(err.Error(), `"`+flag+`"`) || !strings.Contains(err.Error(), "must not be negative") {
			t.Errorf("nowhere %s: %v, want an error naming %s as negative", strings.Join(args, " "), err, flag)
		}
	}
}

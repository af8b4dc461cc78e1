package main

import (
	"errors"
	"strings"
	"testing"
)

// TestUsageErrorsExitTwo: an unknown command, an unknown flag, a bad flag value and a
// wrong number of arguments exit with status 2, each in one line naming the command and
// where its help is; cobra's suggestions come out as one readable clause, not mangled.
func TestUsageErrorsExitTwo(t *testing.T) {
	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{"mont"}, []string{`unknown command "mont"`, "(did you mean mount or umount?)", "nowhere --help"}},
		{[]string{"mount", "--bogus"}, []string{"mount: unknown flag: --bogus", "see nowhere mount --help"}},
		{[]string{"mount", "only-one"}, []string{"mount: accepts 2 arg(s), received 1", "see nowhere mount --help"}},
		{[]string{"gc", "a", "b"}, []string{"gc: accepts 1 arg(s), received 2"}},
		{[]string{"serve", "dir", "--max-conns", "many"}, []string{"serve: invalid argument", "--max-conns"}},
	} {
		cmd := newRootCommand()
		cmd.SetArgs(c.args)
		cmd.SetOut(new(strings.Builder))
		cmd.SetErr(new(strings.Builder))
		err := unknownCommand(cmd.Execute())
		var ee exitError
		if !errors.As(err, &ee) || ee.code != usageExit {
			t.Errorf("nowhere %s: %v, want a usage error (exit %d)", strings.Join(c.args, " "), err, usageExit)
			continue
		}
		msg := oneLine(err)
		for _, w := range c.want {
			if !strings.Contains(msg, w) {
				t.Errorf("nowhere %s: %q lacks %q", strings.Join(c.args, " "), msg, w)
			}
		}
		if strings.Contains(msg, "; ;") || strings.Contains(msg, "Did you mean this?") {
			t.Errorf("nowhere %s: mangled: %q", strings.Join(c.args, " "), msg)
		}
	}
}

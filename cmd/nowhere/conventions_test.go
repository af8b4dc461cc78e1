package main

import (
	"errors"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// verbs returns every runnable command of the tree, by its path without "nowhere ".
func verbs(root *cobra.Command) map[string]*cobra.Command {
	all := map[string]*cobra.Command{}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Runnable() && c != root {
			all[strings.TrimPrefix(c.CommandPath(), "nowhere ")] = c
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	return all
}

// TestFlagConventions walks every verb and checks that a flag name means one thing
// (issue 14): drift in a new verb or flag fails here.
func TestFlagConventions(t *testing.T) {
	// The verbs that write a store or sign: their key is a secret key, --sign-key.
	writers := map[string]bool{"pack": true, "gc": true, "profile apply": true}
	// The verbs that print a table or a summary a script may want: --json.
	tables := []string{"ls", "diff", "info", "cache stats", "verify", "gc", "mirrors", "status"}
	// The flags that take a size.
	sizeFlags := map[string]bool{"mem-cache": true, "cache-size": true, "min-rate": true, "to": true, "readahead": true}
	all := verbs(newRootCommand())
	for _, w := range append(tables, "pack", "gc", "profile apply", "initramfs", "vm") {
		if all[w] == nil {
			t.Fatalf("no verb %q in the command tree", w)
		}
	}
	for name, c := range all {
		c.Flags().VisitAll(func(f *pflag.Flag) {
			alias := f.Annotations[deprecatedAnnotation]
			if alias != nil && !f.Hidden {
				t.Errorf("%s --%s: a deprecated alias must be hidden", name, f.Name)
			}
			switch {
			case f.Name == "key" && writers[name] && alias == nil:
				t.Errorf("%s --key: a writing verb signs with --sign-key (--key only as its hidden, deprecated alias)", name)
			case f.Name == "workers" && alias == nil:
				t.Errorf("%s --workers: the name is --parallel", name)
			case sizeFlags[f.Name] && f.Value.Type() != "size":
				t.Errorf("%s --%s: a size flag is the typed kind (sizeVar), not %s", name, f.Name, f.Value.Type())
			case f.Name == "cache" && alias == nil && strings.Contains(f.Usage, "block device"):
				t.Errorf("%s --cache: a block device is --cache-disk; --cache is a chunk cache directory", name)
			}
		})
	}
	for _, name := range tables {
		if all[name].Flags().Lookup("json") == nil {
			t.Errorf("%s prints a table but has no --json", name)
		}
	}
}

// TestDeprecatedAliasesSetTheNewFlag: the old names keep working.
func TestDeprecatedAliasesSetTheNewFlag(t *testing.T) {
	for _, c := range []struct{ verb, old, new string }{
		{"pack", "key", "sign-key"}, {"pack", "workers", "parallel"}, {"gc", "key", "sign-key"},
		{"profile apply", "key", "sign-key"}, {"initramfs", "cache", "cache-disk"},
	} {
		cmd := verbs(newRootCommand())[c.verb]
		f := cmd.Flags()
		if f.Lookup(c.old) == nil {
			t.Errorf("%s: no alias --%s", c.verb, c.old)
			continue
		}
		if err := f.Set(c.old, "3"); err != nil {
			t.Errorf("%s --%s 3: %v", c.verb, c.old, err)
			continue
		}
		if got := f.Lookup(c.new).Value.String(); got != "3" {
			t.Errorf("%s --%s 3 set --%s to %q", c.verb, c.old, c.new, got)
		}
	}
}

// TestExitCodes: a command line nowhere cannot take exits 2 on every verb; a failure
// exits 1 (main's default for an error that is not an exitError).
func TestExitCodes(t *testing.T) {
	for name := range verbs(newRootCommand()) {
		root := newRootCommand()
		root.SetArgs(append(strings.Fields(name), "--no-such-flag"))
		err := root.Execute()
		var ee exitError
		if !errors.As(err, &ee) || ee.code != usageExit {
			t.Errorf("%s --no-such-flag: %v, want a usage error (exit %d)", name, err, usageExit)
		}
	}
	root := newRootCommand()
	root.SetArgs([]string{"info", t.TempDir() + "/no-such-store/images/x"})
	err := root.Execute()
	var ee exitError
	if err == nil || errors.As(err, &ee) {
		t.Errorf("info of a missing store: %v, want a plain failure (exit 1)", err)
	}
}

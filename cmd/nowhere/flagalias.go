package main

import (
	"fmt"
	"os"

	"github.com/spf13/pflag"
)

// deprecatedAlias adds old as a hidden alias of the flag newName of verb: it sets the
// same value, and says once on stderr that it is deprecated. Old scripts keep working
// while --help shows one name per meaning.
func deprecatedAlias(f *pflag.FlagSet, verb, old, newName string) {
	nf := f.Lookup(newName)
	if nf == nil { // a programming error: TestFlagConventions finds the alias missing
		return
	}
	f.Var(&aliasValue{Value: nf.Value, verb: verb, old: old, newName: newName}, old, "deprecated: use --"+newName)
	af := f.Lookup(old)
	af.Hidden = true
	af.NoOptDefVal = nf.NoOptDefVal
	af.Annotations = map[string][]string{deprecatedAnnotation: {newName}}
}

// deprecatedAnnotation marks a flag as the deprecated alias of the flag it names, for
// the convention tests (TestFlagConventions).
const deprecatedAnnotation = "nowhere_deprecated_alias_of"

type aliasValue struct {
	pflag.Value
	verb, old, newName string
	warned             bool
}

func (a *aliasValue) Set(s string) error {
	if !a.warned {
		a.warned = true
		fmt.Fprintf(os.Stderr, "nowhere: --%s is deprecated for %s, use --%s\n", a.old, a.verb, a.newName)
	}
	return a.Value.Set(s)
}

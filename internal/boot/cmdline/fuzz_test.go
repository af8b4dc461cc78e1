package cmdline

import (
	"reflect"
	"testing"
)

// FuzzParse feeds arbitrary command lines to the parser: it must never panic, and whatever
// it accepts must encode to a command line that parses back to the same configuration
// (that is how defaults are baked into an initramfs).
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"",
		"console=ttyS0 panic=-1 nowhere.image=http://10.0.2.100/images/debian",
		`nowhere.image="http://s/images/a" nowhere.mirror=http://m -- single "x y"`,
		"nowhere.ip=10.0.0.5/24,10.0.0.1,10.0.0.53 nowhere.debug nowhere.cache=/dev/vdb",
		"nowhere.ip=fd00::5/64,fd00::1 nowhere.overlay=tmpfs init=/sbin/init",
		`"nowhere.image=http://a b/images/x"`,
		"nowhere.key=RWSkFGlbLEyM3S0mochr89AkGTTdLUAvL69uA4V7UzJMYfosEw7I4v2j nowhere.insecure=0 nowhere.proxy=http://p:3128",
		"nowhere.prefetch=0 nowhere.parallel=1 nowhere.profile=record nowhere.fetch=http://10.0.2.100/d.squashfs nowhere.insecure",
		"nowhere.metrics=127.0.0.1:9100 nowhere.metrics=[::1]:9100 nowhere.metrics=none",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		c, err := Parse(Layer{"fuzz", line})
		if err != nil {
			return
		}
		back, err := Parse(Layer{"fuzz", c.Encode()})
		if err != nil {
			t.Fatalf("accepted %q but not its encoding %q: %v", line, c.Encode(), err)
		}
		c.Warnings, back.Warnings = nil, nil
		if !reflect.DeepEqual(c, back) {
			t.Fatalf("%q: round trip changed the config:\n%+v\n%+v", line, c, back)
		}
	})
}

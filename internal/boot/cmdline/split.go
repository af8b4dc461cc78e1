// Package cmdline reads the boot configuration from the kernel command line: the
// nowhere.* parameters, init=, and what the kernel passes on to init. The same syntax
// holds the defaults baked into an initramfs, so a machine can boot with an empty command
// line and a person can still override any value at the boot prompt.
package cmdline

import "strings"

// Param is one word of a command line: Key, and Value after the first '=' when HasValue.
type Param struct {
	Key      string
	Value    string
	HasValue bool
}

// MaxLen bounds a command line (the kernel's COMMAND_LINE_SIZE on x86 is 2048; baked
// defaults get some room beyond it).
const MaxLen = 16 << 10

// Split cuts a command line into parameters the way the kernel does (lib/cmdline.c,
// next_arg): words are separated by whitespace, double quotes group a word or a value
// (`key="a b"`, `"key=a b"`) and are removed. The words after a lone "--" are returned
// separately: the kernel gives them to init untouched.
func Split(s string) (params []Param, rest []string) {
	afterDashes := false
	for _, w := range words(s) {
		if afterDashes {
			rest = append(rest, w)
			continue
		}
		if w == "--" {
			afterDashes = true
			continue
		}
		k, v, ok := strings.Cut(w, "=")
		params = append(params, Param{Key: k, Value: v, HasValue: ok})
	}
	return params, rest
}

// words splits on whitespace outside double quotes and drops the quotes.
func words(s string) []string {
	var out []string
	var b strings.Builder
	inWord, quoted := false, false
	for _, r := range s {
		switch {
		case r == '"':
			quoted = !quoted
			inWord = true
		case !quoted && isSpace(r):
			if inWord {
				out = append(out, b.String())
				b.Reset()
				inWord = false
			}
		default:
			b.WriteRune(r)
			inWord = true
		}
	}
	if inWord {
		out = append(out, b.String())
	}
	return out
}

func isSpace(r rune) bool {
	return r == ' ' || r == '\t' || r == '\n' || r == '\r' || r == '\v' || r == '\f'
}

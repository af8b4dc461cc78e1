// Command nowhere packs disk images into content-addressed chunk stores, serves them over
// plain HTTP, mounts them on demand and boots Linux from them.
package main

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

func main() {
	if runBootRole() {
		return
	}
	cmd := newRootCommand()
	if err := cmd.Execute(); err != nil {
		err = unknownCommand(err)
		fmt.Fprintln(os.Stderr, "nowhere: "+oneLine(err))
		var ee exitError
		if errors.As(err, &ee) {
			os.Exit(ee.code)
		}
		os.Exit(1)
	}
}

// unknownCommand turns cobra's "unknown command" error, whose suggestions are laid out
// for a terminal ("\n\nDid you mean this?\n\tmount\n\tumount\n"), into one line and
// a usage exit status; other errors pass unchanged.
func unknownCommand(err error) error {
	msg := err.Error()
	if !strings.HasPrefix(msg, "unknown command") {
		return err
	}
	head, tail, found := strings.Cut(msg, "\n\nDid you mean this?\n")
	head = strings.TrimSpace(head)
	if found {
		head += " (did you mean " + strings.Join(strings.Fields(tail), " or ") + "?)"
	}
	return exitError{usageExit, errors.New(head + "; nowhere --help lists the commands")}
}

// exitError carries a specific exit status (e.g. verify found problems: 1; usage: 2).
type exitError struct {
	code int
	err  error
}

func (e exitError) Error() string { return e.err.Error() }
func (e exitError) Unwrap() error { return e.err }

// oneLine keeps user-facing errors on one line: multi-line causes (from libraries) are
// joined so a script or a console log shows the whole reason.
func oneLine(err error) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(err.Error(), "\n", "; ")), " ")
}

// logf prints a diagnostic line to stderr.
func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "nowhere: "+format+"\n", args...)
}

// interrupted returns a channel that receives SIGINT and SIGTERM.
func interrupted() chan os.Signal {
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM)
	return ch
}

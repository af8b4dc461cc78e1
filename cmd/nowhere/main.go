// Command nowhere packs disk images into content-addressed chunk stores, serves them over
// plain HTTP, mounts them on demand and boots Linux from them.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
)

func main() {
	if runBootRole() {
		return
	}
	ctx, stop := rootContext()
	cmd := newRootCommand()
	err := cmd.ExecuteContext(ctx)
	stop()
	if err != nil {
		err = unknownCommand(err)
		msg := oneLine(err)
		if sig, ok := signalled(ctx); ok && errors.Is(err, context.Canceled) {
			// What a signal cancelled says so, not the "context canceled" of the call
			// that noticed it.
			msg = strings.ReplaceAll(msg, context.Canceled.Error(), "interrupted by "+signalName(sig))
		}
		fmt.Fprintln(os.Stderr, "nowhere: "+msg)
		var ee exitError
		if errors.As(err, &ee) {
			os.Exit(ee.code)
		}
		// A verb a signal stopped fails with the status a shell gives one the signal
		// killed, whatever its error says (often "context canceled" from deep down).
		if sig, ok := signalled(ctx); ok {
			os.Exit(signalExit(sig))
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

// Package bootlog prints the boot's progress to the console: one line per step, stamped
// with the time since the kernel started (the clock the kernel's own messages use), so a
// serial log shows where the seconds go.
package bootlog

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Log writes stamped lines. Safe for concurrent use.
type Log struct {
	mu    sync.Mutex
	w     io.Writer
	name  string
	debug bool
}

// New returns a Log writing to w with lines like "[   1.234] name: message".
func New(w io.Writer, name string) *Log { return &Log{w: w, name: name} }

// Console is the log of /init and the root daemon: stderr, which the kernel connects to
// /dev/console.
var Console = New(os.Stderr, "nowhere")

// SetDebug turns Debugf lines on or off.
func (l *Log) SetDebug(on bool) { l.mu.Lock(); l.debug = on; l.mu.Unlock() }

// Named returns a Log writing to the same place under another name.
func (l *Log) Named(name string) *Log {
	l.mu.Lock()
	defer l.mu.Unlock()
	return &Log{w: l.w, name: name, debug: l.debug}
}

// Printf prints one line (newlines in the message are flattened: one step, one line).
func (l *Log) Printf(format string, args ...any) {
	msg := strings.TrimRight(fmt.Sprintf(format, args...), "\n")
	msg = strings.ReplaceAll(msg, "\n", "; ")
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(l.w, "[%s] %s: %s\n", Stamp(Uptime()), l.name, msg)
}

// Debugf prints only with nowhere.debug.
func (l *Log) Debugf(format string, args ...any) {
	l.mu.Lock()
	on := l.debug
	l.mu.Unlock()
	if on {
		l.Printf(format, args...)
	}
}

// Write lets libraries that log through the standard log package print stamped lines.
func (l *Log) Write(p []byte) (int, error) {
	for _, line := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		l.Printf("%s", line)
	}
	return len(p), nil
}

// Uptime is the time since the kernel started (CLOCK_BOOTTIME).
func Uptime() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}

// Stamp formats d like the kernel's printk times: "%5d.%03d" seconds.
func Stamp(d time.Duration) string {
	ms := d.Milliseconds()
	return fmt.Sprintf("%5d.%03d", ms/1000, ms%1000)
}

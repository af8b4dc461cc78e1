package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
)

// The --daemon handshake: the parent re-executes itself without --daemon, in a new session,
// with a pipe on fd 3. The child writes "ok" once it serves, or "error: ..." if it failed;
// the parent prints that and exits, so `nowhere mount --daemon` returns only when the
// mount is usable (or with the reason it is not).
const readyEnv = "NOWHERE_READY_FD"

// quietEnv tells a child started without --log that its output so far went to a file
// only the parent reads (for the reason of a failed start): once ready, it sends its
// output to /dev/null, so a long-running daemon never fills a file nobody sees.
const quietEnv = "NOWHERE_DAEMON_QUIET"

// startupOutput bounds what the parent reads of a failed child's output.
const startupOutput = 64 << 10

func daemonize(logFile string) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	args := slices.DeleteFunc(slices.Clone(os.Args[1:]), func(a string) bool {
		return a == "--daemon" || a == "--daemon=true"
	})
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	// The child's output: the --log file, or an unlinked temporary file that only this
	// process can read back; either way, what the child said before it failed.
	env := append(os.Environ(), readyEnv+"=3")
	var out *os.File
	var from int64
	if logFile != "" {
		if out, err = os.OpenFile(logFile, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o644); err != nil {
			return fmt.Errorf("--log: %w", err)
		}
		if st, err := out.Stat(); err == nil {
			from = st.Size()
		}
	} else {
		if out, err = os.CreateTemp("", "nowhere-daemon-*.log"); err != nil {
			return err
		}
		os.Remove(out.Name())
		env = append(env, quietEnv+"=1")
	}
	defer out.Close()
	cmd := exec.Command(exe, args...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.ExtraFiles = []*os.File{w}
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	w.Close()
	line, _ := bufio.NewReader(r).ReadString('\n')
	line = strings.TrimSpace(line)
	switch {
	case line == "ok":
		fmt.Printf("running in the background as pid %d\n", cmd.Process.Pid)
		return nil
	case strings.HasPrefix(line, "error: "):
		_ = cmd.Wait()
		return errors.New(strings.TrimPrefix(line, "error: "))
	}
	err = cmd.Wait()
	if said := lastLine(out, from); said != "" {
		return fmt.Errorf("background process exited before it was ready (%v): %s", err, said)
	}
	return fmt.Errorf("background process exited before it was ready (%v), saying nothing", err)
}

// lastLine is the last non-empty line f holds after offset from (at most startupOutput
// bytes of it are read): the child's own last word.
func lastLine(f *os.File, from int64) string {
	st, err := f.Stat()
	if err != nil || st.Size() <= from {
		return ""
	}
	start := max(from, st.Size()-startupOutput)
	b := make([]byte, st.Size()-start)
	n, _ := f.ReadAt(b, start)
	lines := strings.Split(strings.TrimSpace(string(b[:n])), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

func readyPipe() *os.File {
	if os.Getenv(readyEnv) != "3" {
		return nil
	}
	os.Unsetenv(readyEnv)
	return os.NewFile(3, "ready")
}

var ready = readyPipe()

// notifyReady tells a waiting parent that the mount is up.
func notifyReady() {
	if ready != nil {
		fmt.Fprintln(ready, "ok")
		ready.Close()
		ready = nil
		if os.Getenv(quietEnv) == "1" {
			os.Unsetenv(quietEnv)
			if null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0); err == nil {
				_ = syscall.Dup3(int(null.Fd()), 1, 0)
				_ = syscall.Dup3(int(null.Fd()), 2, 0)
				null.Close()
			}
		}
	}
}

// notifyFailure passes err to a waiting parent and returns it.
func notifyFailure(err error) error {
	if ready != nil {
		fmt.Fprintln(ready, "error: "+oneLine(err))
		ready.Close()
		ready = nil
	}
	return err
}

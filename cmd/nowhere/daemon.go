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
	out, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if logFile != "" {
		out, err = os.OpenFile(logFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	}
	if err != nil {
		return fmt.Errorf("--log: %w", err)
	}
	cmd := exec.Command(exe, args...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.ExtraFiles = []*os.File{w}
	cmd.Env = append(os.Environ(), readyEnv+"=3")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	w.Close()
	out.Close()
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
	return fmt.Errorf("background process exited before it was ready (%v)", err)
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

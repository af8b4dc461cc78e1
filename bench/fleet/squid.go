package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"time"

	"github.com/nowhere-boot/nowhere/internal/testnet"
)

func runtimeNumCPU() int { return runtime.NumCPU() }

// startSquid runs squid (Debian's, not its service) in the LAN host on 127.0.0.1:3128 with
// a configuration of its own: a memory cache, and collapsed forwarding, so the requests of
// many clients for one chunk that is not cached yet become one request to the origin.
func startSquid(h *testnet.Host, work string) (stop func(), err error) {
	bin, err := exec.LookPath("squid")
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(work, "squid")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	userLine := ""
	if os.Geteuid() == 0 {
		u, err := user.Lookup("proxy")
		if err != nil {
			return nil, fmt.Errorf("no proxy user for squid: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			return nil, err
		}
		userLine = "cache_effective_user proxy\n"
	}
	conf := fmt.Sprintf(`http_port 127.0.0.1:3128
pid_filename %[1]s/squid.pid
access_log none
cache_log %[1]s/cache.log
cache_store_log none
coredump_dir %[1]s
netdb_filename none
pinger_enable off
logfile_rotate 0
dns_nameservers 127.0.0.1
cache_mem 512 MB
maximum_object_size_in_memory 8 MB
maximum_object_size 8 MB
collapsed_forwarding on
shutdown_lifetime 0 seconds
max_filedescriptors 65536
client_persistent_connections on
server_persistent_connections on
http_access allow all
%[2]s`, dir, userLine)
	cf := filepath.Join(dir, "squid.conf")
	if err := os.WriteFile(cf, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	cmd := h.Command(context.Background(), bin, "-N", "-f", cf)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, _ := os.Create(filepath.Join(dir, "squid.out"))
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	children.Store(cmd.Process.Pid, true)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	return func() {
		children.Delete(cmd.Process.Pid)
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
		}
		out.Close()
	}, nil
}

package boot

import (
	"fmt"
	"net"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/nowhere-boot/nowhere/internal/boot/netup"
	"github.com/nowhere-boot/nowhere/internal/boot/rootd"
)

// SharePort is where a booted machine serves its chunk cache to LAN peers (nowhere.share).
const SharePort = 7780

// ramCacheDir holds the chunks a diskless machine shares: a tmpfs of its own, so the
// deletion of the initramfs' files at switch_root leaves it alone.
const ramCacheDir = "/.nowhere-share"

// shareLAN fills in the spec's LAN peer settings: the peers named on the command line,
// and with nowhere.share the address on the boot interface to share the cache on. A
// machine without a cache disk shares a RAM cache (a tmpfs bounded to ramCache bytes).
func shareLAN(spec *rootd.Spec, share bool, peers []string, nr netup.Result) {
	spec.Peers = peers
	if !share {
		return
	}
	if !nr.Addr.IsValid() {
		log.Printf("nowhere.share: no address on the boot interface: not sharing")
		return
	}
	spec.Share = net.JoinHostPort(nr.Addr.Addr().String(), strconv.Itoa(SharePort))
	if spec.CacheDir != "" {
		return
	}
	size := 2 * memCache()
	if err := tmpfsOfSize(ramCacheDir, size); err != nil {
		log.Printf("nowhere.share: %v: reading from peers without sharing", err)
		spec.Share = ""
		return
	}
	spec.CacheDir, spec.CacheQuota = ramCacheDir, size/10*9
	log.Printf("nowhere.share: sharing a RAM cache of %d MiB on %s", size>>20, spec.Share)
}

func tmpfsOfSize(dir string, size int64) error {
	if err := unix.Mkdir(dir, 0o755); err != nil && err != unix.EEXIST {
		return fmt.Errorf("mkdir %s: %w", dir, err)
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, fmt.Sprintf("mode=0755,size=%d", size)); err != nil {
		return fmt.Errorf("mount tmpfs on %s: %w", dir, err)
	}
	return nil
}

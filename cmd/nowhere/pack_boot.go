package main

import (
	"context"
	"runtime"

	"github.com/nowhere-boot/nowhere/internal/bootprofile"
	"github.com/nowhere-boot/nowhere/internal/index"
	"github.com/nowhere-boot/nowhere/internal/profile"
)

// packBootProfile boots the image about to be packed in a container (--profile-boot) and
// returns its reads, or nil, having said why in one line: a pack publishes anyway, only
// without the container's profile. It runs before packing, so a refusal comes in seconds.
func packBootProfile(ctx context.Context, image string, o packOptions) *bootprofile.Reads {
	if !o.profileBoot {
		return nil
	}
	if o.arch != "" && o.arch != "any" && o.arch != runtime.GOARCH {
		logf("--profile-boot: an %s image does not boot in a container on this %s machine: publishing without a boot profile", o.arch, runtime.GOARCH)
		return nil
	}
	if image == "-" {
		logf("--profile-boot: an image on standard input cannot be read twice (pack a file): publishing without a boot profile")
		return nil
	}
	res, err := bootprofile.BootFile(ctx, image, bootprofile.Options{Until: o.profileUntil, Timeout: o.profileTimeout, Log: logf})
	if err != nil {
		logf("--profile-boot: %s: %v: publishing without a boot profile", image, err)
		return nil
	}
	return res.Reads
}

// withBootProfile adds the container's boot to the --profile files' merged trace (nil:
// none), once the index maps its reads onto chunks. The files come first: on a tie in
// average position, a real boot's order wins.
func withBootProfile(ix *index.Index, booted *bootprofile.Reads, files *profile.Trace) *profile.Trace {
	if booted == nil {
		return files
	}
	tr := booted.Trace(ix)
	if files == nil {
		return tr
	}
	return profile.Merge(files, tr)
}

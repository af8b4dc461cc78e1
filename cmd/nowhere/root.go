package main

import (
	"fmt"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// version is set at build time (-ldflags "-X main.version=..."); otherwise it comes from
// the module's VCS stamp.
var version = ""

func versionString() string {
	if version != "" {
		return version
	}
	v := "dev"
	if bi, ok := debug.ReadBuildInfo(); ok {
		var rev, dirty string
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				if s.Value == "true" {
					dirty = "-dirty"
				}
			}
		}
		if len(rev) > 12 {
			rev = rev[:12]
		}
		if rev != "" {
			v += "+" + rev + dirty
		}
	}
	return v
}

func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "nowhere",
		Short: "Boot and run Linux from disk images streamed over plain HTTP",
		Long: `nowhere cuts a disk image into content-addressed chunks that any web server,
mirror, CDN or caching proxy can hold, and mounts or boots the image from them,
fetching only the chunks that are read.`,
		Example: `  nowhere pack debian.squashfs --store ./store --name debian
  nowhere serve ./store --listen 127.0.0.1:8080
  nowhere mount http://127.0.0.1:8080/images/debian /mnt/nowhere
  mount -o loop,ro /mnt/nowhere/debian.img /mnt/root`,
		Version:       versionString(),
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&s3Endpoint, "s3-endpoint", "", "URL of the S3-compatible service s3:// stores live on (default: $AWS_ENDPOINT_URL, else AWS)")
	root.SetVersionTemplate(fmt.Sprintf("nowhere %s\n", versionString()))
	root.AddCommand(
		newPackCommand(),
		newServeCommand(),
		newMountCommand(),
		newUmountCommand(),
		newExtractCommand(),
		newVerifyCommand(),
		newInfoCommand(),
		newLsCommand(),
		newDiffCommand(),
		newSyncCommand(),
		newGCCommand(),
		newMirrorsCommand(),
		newCacheCommand(),
		newStatusCommand(),
		newKeygenCommand(),
		newInitramfsCommand(),
		newBootdiskCommand(),
		newVMCommand(),
		newProfileCommand(),
		newUKICommand(),
	)
	markUsageErrors(root)
	return root
}

// usageExit is the exit status of a command line nowhere cannot take (an unknown command
// or flag, a missing or extra argument), as for most Unix tools.
const usageExit = 2

// markUsageErrors makes the errors of a wrong command line exit with usageExit: bad flags
// (through cobra's flag error hook, which subcommands inherit) and wrong arguments (each
// command's Args check, wrapped).
func markUsageErrors(root *cobra.Command) {
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return exitError{usageExit, fmt.Errorf("%s: %w (see %s --help)", c.Name(), err, c.CommandPath())}
	})
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if args := c.Args; args != nil {
			c.Args = func(cmd *cobra.Command, a []string) error {
				if err := args(cmd, a); err != nil {
					return exitError{usageExit, fmt.Errorf("%s: %w (see %s --help)", cmd.Name(), err, cmd.CommandPath())}
				}
				return nil
			}
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}

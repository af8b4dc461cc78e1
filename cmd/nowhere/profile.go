package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"time"

	"github.com/spf13/cobra"

	"github.com/nowhere-boot/nowhere/internal/bootprofile"
	"github.com/nowhere-boot/nowhere/internal/image"
	"github.com/nowhere-boot/nowhere/internal/index"
	"github.com/nowhere-boot/nowhere/internal/pack"
	"github.com/nowhere-boot/nowhere/internal/profile"
	"github.com/nowhere-boot/nowhere/internal/store"
	"github.com/nowhere-boot/nowhere/internal/trust"
	"github.com/nowhere-boot/nowhere/internal/units"
)

func newProfileCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "profile",
		Short: "Record, merge and publish boot profiles: the chunks a boot reads, prefetched at start",
		Long: `A boot profile is the list of chunks a boot reads, in the order it first reads them.
Published in the image's signed index, it lets every client fetch those chunks in the
background from the start, many at once, instead of one round trip per read: on a
distant mirror that is the difference between a boot paced by latency and one paced by
bandwidth (docs/boot.md, "Boot profile").

  record    from a mount (MOUNTPOINT/.profile) or from a boot's console (nowhere.profile=record)
  merge     several recorded boots into one profile
  apply     publish an image's index again, as the next version, with the profile in it
  show      the profile an image carries
  coverage  how much of a recorded boot a profile covers`,
	}
	cmd.AddCommand(newProfileRecordCommand(), newProfileMergeCommand(), newProfileApplyCommand(),
		newProfileShowCommand(), newProfileCoverageCommand())
	return cmd
}

type profileRecordOptions struct {
	out, console, image, until string
	wait, idle                 time.Duration
	trust                      trustOptions

	container, unit string        // --container SOURCE: record a container boot (profile_container.go)
	bootTimeout     time.Duration // how long it may take
}

func newProfileRecordCommand() *cobra.Command {
	var o profileRecordOptions
	cmd := &cobra.Command{
		Use:   "record {MOUNTPOINT | --console LOG --image SOURCE | --container SOURCE} -o FILE",
		Short: "Save the chunks a mount or a boot has read, in the order of their first read",
		Long: `From a mount: copies MOUNTPOINT/.profile, the chunks read since the mount started, once
--wait has passed and no new chunk was read for --idle (so run the workload, then this).

From a boot: a kernel command line with nowhere.profile=record makes the root daemon
print the chunks it serves on the console as they are first read ("profile NAME VERSION
@N: ..."); --console reads them from a saved console log up to the first line matching
--until (the login prompt, by default) and --image names the image they refer to.

From a container: --container SOURCE boots the image in systemd-nspawn (read-only, writes
to a tmpfs, no network; needs root and the systemd-container package) until --unit is
reached, a few seconds for a Debian root, and records the chunks its boot read.`,
		Example: `  nowhere profile record /mnt/nowhere -o boot1.profile --idle 5s
  nowhere vm ... --append nowhere.profile=record --log console.log --expect 'login: *$'
  nowhere profile record --console console.log --image ./store/images/debian --insecure -o boot1.profile
  nowhere profile record --container ./store/images/debian --key publisher.pub -o container.profile`,
		Args: func(cmd *cobra.Command, args []string) error {
			if o.console != "" || o.container != "" {
				return cobra.NoArgs(cmd, args)
			}
			return cobra.ExactArgs(1)(cmd, args)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.container != "" {
				return recordFromContainer(cmd.Context(), o)
			}
			if o.console != "" {
				return recordFromConsole(cmd.Context(), o)
			}
			return recordFromMount(args[0], o)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.out, "output", "o", "", "write the profile to this file")
	f.StringVar(&o.console, "console", "", "read a boot's profile lines from this console log")
	f.StringVar(&o.image, "image", "", "with --console: the image the boot ran (STORE/images/NAME; the version comes from the log)")
	f.StringVar(&o.until, "until", "login: ", "with --console: stop at the first line matching this regular expression")
	durationVar(f, &o.wait, "wait", 0, "from a mount: wait this long first")
	durationVar(f, &o.idle, "idle", 0, "from a mount: then wait until no new chunk was read for this long")
	f.StringVar(&o.container, "container", "", "boot this image (STORE/images/NAME[/VERSION]) in systemd-nspawn and record what its boot reads")
	f.StringVar(&o.unit, "unit", bootprofile.DefaultUntil, "with --container: record until this systemd unit is reached")
	durationVar(f, &o.bootTimeout, "boot-timeout", bootprofile.DefaultTimeout, "with --container: give up on the boot after this long")
	o.trust.addFlags(f)
	_ = cmd.MarkFlagRequired("output")
	return cmd
}

func recordFromMount(mnt string, o profileRecordOptions) error {
	file := filepath.Join(mnt, profileName)
	read := func() (*profile.Trace, error) {
		b, err := os.ReadFile(file)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("%s: no %s: not a nowhere mount", mnt, profileName)
			}
			return nil, fmt.Errorf("%s: %w", file, unwrapPathError(err))
		}
		return profile.ParseTrace(bytes.NewReader(b))
	}
	// A path that is not a nowhere mount fails now, not after the wait.
	if _, err := read(); err != nil {
		return err
	}
	time.Sleep(o.wait)
	var tr *profile.Trace
	var err error
	if o.idle > 0 {
		for n := -1; ; {
			if tr, err = read(); err != nil {
				return err
			}
			if len(tr.Items) == n {
				break
			}
			n = len(tr.Items)
			time.Sleep(o.idle)
		}
	} else if tr, err = read(); err != nil {
		return err
	}
	if len(tr.Items) == 0 {
		return fmt.Errorf("%s: nothing has been read yet", mnt)
	}
	return saveTrace(o.out, tr)
}

func recordFromConsole(ctx context.Context, o profileRecordOptions) error {
	if o.image == "" {
		return errors.New("--console needs --image SOURCE (the image the boot ran)")
	}
	until, err := regexp.Compile(o.until)
	if err != nil {
		return fmt.Errorf("--until %q: %w", o.until, err)
	}
	f, err := os.Open(o.console)
	if err != nil {
		return fmt.Errorf("--console: %w", unwrapPathError(err))
	}
	defer f.Close()
	rec, err := profile.ParseConsole(f, until)
	if err != nil {
		return fmt.Errorf("--console %s: %w", o.console, err)
	}
	for _, g := range rec.Gaps {
		logf("warning: %s: %s", o.console, g)
	}
	loc, err := image.ParseLocation(o.image)
	if err != nil {
		return err
	}
	if loc.Name != rec.Image {
		return fmt.Errorf("--console %s records image %s, --image names %s", o.console, rec.Image, loc.Name)
	}
	loc.Version = rec.Version
	so := &sourceOptions{timeout: time.Minute, noList: true}
	img, err := openImageSource(ctx, loc.String(), so, &o.trust)
	defer so.close()
	if err != nil {
		return err
	}
	tr, err := profile.FromEntries(img.index, rec.Entries)
	if err != nil {
		return fmt.Errorf("--console %s: %w", o.console, err)
	}
	return saveTrace(o.out, tr)
}

func saveTrace(path string, tr *profile.Trace) error {
	if err := writeFileAtomic(path, tr.Encode(), 0o644); err != nil {
		return err
	}
	fmt.Printf("recorded %s (%s) of %s version %d in %s\n", units.Count(len(tr.Items), "chunk"), units.Bytes(tr.Bytes()), tr.Image, tr.Version, path)
	return nil
}

func loadTraces(files []string) ([]*profile.Trace, error) {
	var out []*profile.Trace
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			return nil, fmt.Errorf("profile %s: %w", name, unwrapPathError(err))
		}
		tr, err := profile.ParseTrace(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("profile %s: %w", name, err)
		}
		out = append(out, tr)
	}
	return out, nil
}

func newProfileMergeCommand() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "merge FILE... -o OUT",
		Short: "Merge recorded boots into one profile (every chunk any of them read, by average position)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			trs, err := loadTraces(args)
			if err != nil {
				return err
			}
			m := profile.Merge(trs...)
			if err := writeFileAtomic(out, m.Encode(), 0o644); err != nil {
				return err
			}
			fmt.Printf("merged %s: %s (%s) in %s\n", units.Count(m.Boots, "boot"), units.Count(len(m.Items), "chunk"), units.Bytes(m.Bytes()), out)
			return nil
		},
	}
	cmd.Flags().StringVarP(&out, "output", "o", "", "write the merged profile here")
	_ = cmd.MarkFlagRequired("output")
	return cmd
}

type profileApplyOptions struct {
	key, password, expires string
}

func newProfileApplyCommand() *cobra.Command {
	var o profileApplyOptions
	cmd := &cobra.Command{
		Use:   "apply STORE/images/NAME[/VERSION] FILE... --sign-key SECRET",
		Short: "Publish an image again, as the next version, with a boot profile in its signed index",
		Long: `Apply merges the profile FILEs, maps their chunks onto the image's index (by chunk ID, so a
profile recorded on an older version applies to the chunks a newer one still shares) and
publishes the same image as the next version: same chunks, the new profile (replacing any
the index had), a new signature, and the latest pointer moved to it.

A new version rather than a rewrite in place: a versioned index is immutable for caches and
proxies, clients remember the highest version they accepted (so version N+1 is taken, and
nothing needs to go back), and version N stays published, to return to if the profile
disappoints. STORE must be a directory (the publisher's store).`,
		Example: `  nowhere profile apply ./store/images/debian boot1.profile boot2.profile --sign-key publisher.key`,
		Args:    cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runProfileApply(cmd.Context(), args[0], args[1:], o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.key, "sign-key", "", "sign with this minisign secret key file (without it the new version is unsigned)")
	deprecatedAlias(f, "profile apply", "key", "sign-key")
	f.StringVar(&o.password, "password-file", "", "the secret key's password is the first line of this file")
	f.StringVar(&o.expires, "expires", "", "the new version expires after this long (default: when the old one does)")
	return cmd
}

func runProfileApply(ctx context.Context, src string, files []string, o profileApplyOptions) error {
	if ctx == nil {
		ctx = context.Background()
	}
	loc, err := image.ParseLocation(src)
	if err != nil {
		return err
	}
	trs, err := loadTraces(files)
	if err != nil {
		return err
	}
	var signer pack.Signer
	if o.key != "" {
		k, err := trust.LoadSecretKey(o.key, func() (string, error) {
			return readPassword(o.password, "password for "+o.key+": ")
		})
		if err != nil {
			return fmt.Errorf("--sign-key: %w", err)
		}
		signer = k
	}
	if st, err := os.Stat(loc.Store); err != nil || !st.IsDir() {
		return fmt.Errorf("%s: apply publishes into a store directory (the publisher's store), not %q", src, loc.Store)
	}
	w, err := store.OpenDir(loc.Store)
	if err != nil {
		return err
	}
	defer w.Close()
	old, _, err := image.Load(ctx, w, loc, store.Policy{Attempts: 1})
	if err != nil {
		return err
	}
	merged := profile.Merge(trs...)
	res := profile.Apply(old, merged)
	if len(res.Profile.Entries) == 0 {
		return fmt.Errorf("none of the %d chunks in the profile is in %s version %d (recorded on another image?)", len(merged.Items), old.Name, old.Version)
	}
	next, err := pack.NextVersion(ctx, w, old.Name)
	if err != nil {
		return err
	}
	ix := *old
	ix.Version, ix.Created, ix.Profile = next, time.Now().UTC().Truncate(time.Second), res.Profile
	ix.Signature, ix.Signed = nil, nil
	if o.expires != "" {
		d, err := units.ParseDuration(o.expires)
		if err != nil {
			return fmt.Errorf("--expires: %w", err)
		}
		ix.Expires = time.Now().Add(d).UTC().Truncate(time.Second)
	}
	file, err := index.Encode(&ix)
	if err != nil {
		return err
	}
	if _, err := pack.PublishSigned(ctx, w, &ix, file, signer); err != nil {
		return err
	}
	prof := profile.FromIndex(&ix)
	fmt.Printf("published %s version %d: version %d with a profile of %s (%s) from %s\n",
		ix.Name, ix.Version, old.Version, units.Count(len(prof.Items), "chunk"), units.Bytes(prof.Bytes()), units.Count(prof.Boots, "boot"))
	if res.Missing > 0 {
		logf("warning: %d chunks of the profile are not in %s version %d (recorded on another version): left out", res.Missing, old.Name, old.Version)
	}
	if signer == nil {
		fmt.Printf("  signed: no (clients will need --insecure; sign with --sign-key)\n")
	}
	return nil
}

func newProfileShowCommand() *cobra.Command {
	so := &sourceOptions{timeout: time.Minute}
	var t trustOptions
	var out string
	cmd := &cobra.Command{
		Use:   "show SOURCE [-o FILE]",
		Short: "Describe the boot profile an image carries (and save it as a profile file)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			img, err := openImageSource(cmd.Context(), args[0], so, &t)
			defer so.close()
			if err != nil {
				return err
			}
			ix := img.index
			if len(ix.Profile.Entries) == 0 {
				return fmt.Errorf("%s version %d has no boot profile (nowhere profile apply)", ix.Name, ix.Version)
			}
			tr := profile.FromIndex(ix)
			var stored int64
			for _, i := range ix.Profile.Entries {
				stored += int64(ix.Entries[i].Stored)
			}
			fmt.Printf("%s version %d: profile of %s from %s, %s (%s to fetch), %.1f%% of the image\n",
				ix.Name, ix.Version, units.Count(len(tr.Items), "chunk"), units.Count(tr.Boots, "boot"), units.Bytes(tr.Bytes()), units.Bytes(stored),
				100*float64(tr.Bytes())/float64(max(ix.Size, 1)))
			if out != "" {
				return writeFileAtomic(out, tr.Encode(), 0o644)
			}
			return nil
		},
	}
	so.addFlags(cmd.Flags(), false)
	t.addFlags(cmd.Flags())
	cmd.Flags().StringVarP(&out, "output", "o", "", "also write the profile to this file")
	return cmd
}

func newProfileCoverageCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "coverage PROFILE BOOT...",
		Short: "How much of each recorded boot a profile covers (chunks and bytes)",
		Args:  cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			trs, err := loadTraces(args)
			if err != nil {
				return err
			}
			for i, boot := range trs[1:] {
				c := profile.Measure(trs[0], boot)
				fmt.Printf("%s: %d of %d chunks (%.1f%%), %s of %s (%.1f%%) in the profile\n", args[i+1], c.Covered, c.Chunks,
					100*c.Fraction(), units.Bytes(c.CovBytes), units.Bytes(c.Bytes), 100*float64(c.CovBytes)/float64(max(c.Bytes, 1)))
			}
			return nil
		},
	}
}

package main

import (
	"context"
	"fmt"
	"time"

	"github.com/nowhere-boot/nowhere/internal/bootprofile"
	"github.com/nowhere-boot/nowhere/internal/image"
)

// recordFromContainer boots the published image SOURCE in a container (systemd-nspawn),
// its chunks fetched through the store as a mount fetches them, and saves the chunks the
// boot read until --unit as a one-boot profile (then: nowhere profile apply).
func recordFromContainer(ctx context.Context, o profileRecordOptions) error {
	so := &sourceOptions{timeout: time.Minute, noList: true}
	img, err := openImageSource(ctx, o.container, so, &o.trust)
	defer so.close()
	if err != nil {
		return err
	}
	r := image.NewReader(img.index, so.fetcher(), image.Options{FailMemory: 10 * time.Second})
	res, err := bootprofile.Boot(ctx, r, bootprofile.Options{Until: o.unit, Timeout: o.bootTimeout, Log: logf})
	if err != nil {
		return fmt.Errorf("--container %s: %w", o.container, err)
	}
	return saveTrace(o.out, res.Reads.Trace(img.index))
}

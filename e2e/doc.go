// Package e2e holds the end-to-end tests of nowhere: they build the real binary, pack real
// ext4, squashfs and erofs images, serve them with `nowhere serve` and with nginx on
// loopback, mount them through FUSE, loop-mount the mounted file and compare what comes
// back with the tree the images were made from. They need root, /dev/fuse and loop
// devices (CI has all three); `go test -short` skips them.
package e2e

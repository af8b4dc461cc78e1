package main

import (
	"os"
	"path/filepath"
	"strings"

	"github.com/nowhere-boot/nowhere/internal/boot"
	"github.com/nowhere-boot/nowhere/internal/boot/rootd"
)

// runBootRole runs the binary's two roles in a boot, chosen by how it was started rather
// than by a verb: the kernel runs it as /init (PID 1), and /init re-executes it as the
// root daemon with argv[0] = "@nowhere" (the '@' is what systemd's shutdown spares).
// It reports false when neither applies.
func runBootRole() bool {
	switch {
	case strings.HasPrefix(os.Args[0], "@"):
		rootd.Main()
		os.Exit(1) // Main returns only when the FUSE mount is gone
	case os.Getpid() == 1 && filepath.Base(os.Args[0]) == "init":
		boot.Init(versionString()) // never returns
	}
	return false
}

# nowhere: two commands matter. `make demo` runs the main job, `make test` runs the tests.
# Both install what is missing first (Debian packages via apt, Go modules via the proxy).

# Go >= go.mod's version: the one on the PATH, /usr/local/go, or one scripts/check-go.sh
# bootstraps into .cache/go (through Debian's golang-go and the Go module proxy). Evaluated
# once, before any target, so `make demo` on a Debian without Go never stops at `go: not found`.
ifeq ($(origin GO),undefined)
GO := $(shell scripts/check-go.sh --print)
ifeq ($(GO),)
$(error scripts/check-go.sh found no usable Go (see its message above))
endif
endif
# Tests that build the binary run `go` themselves: the same one.
export PATH := $(dir $(GO)):$(PATH)
BIN      := bin/nowhere
VERSION  := $(shell git describe --always --dirty 2>/dev/null || echo dev)
GOFLAGS_BUILD := -trimpath -ldflags '-s -w -X main.version=$(VERSION)'
FUZZTIME ?= 10s
# go test through gotestsum (a tool of go.mod): one line per package as each finishes, and
# the output of the tests that failed, where plain go test prints nothing for minutes.
GOTEST   := $(GO) tool gotestsum --format pkgname-and-test-fails --format-icons text --

TEST_FUZZTIME ?= 20000x

.PHONY: all check-go build deps kernel test test-short test-e2e demo bench fuzz clean

all: build

# bin/nowhere runs here; bin/nowhere-amd64 and bin/nowhere-arm64 are what `nowhere
# initramfs` puts in a machine's /init, picked by the kernel's architecture.
ARCHES := amd64 arm64

check-go:
	@scripts/check-go.sh

build:
	CGO_ENABLED=0 $(GO) build $(GOFLAGS_BUILD) -o $(BIN) ./cmd/nowhere
	for a in $(ARCHES); do CGO_ENABLED=0 GOARCH=$$a $(GO) build $(GOFLAGS_BUILD) -o $(BIN)-$$a ./cmd/nowhere || exit 1; done

deps:
	scripts/install-deps.sh test

# Debian's kernels and modules (amd64, and arm64 with its loaders), cached in
# .cache/kernel/VERSION: packages test in parallel, so the ones that need them (uki,
# bootdisk, the boots) find them there from the start.
kernel:
	for a in $(ARCHES); do scripts/fetch-kernel.sh $$a >/dev/null || exit 1; done

# The whole test suite: unit tests, real FUSE mounts, loop-mounted ext4/squashfs/erofs,
# nowhere serve and nginx on loopback, qemu boots; then every fuzz target briefly
# (TEST_FUZZTIME executions each: a count, not a duration, see scripts/fuzz.sh).
# Before them vet and staticcheck (a tool of go.mod); after them the packages' own tests
# again under the race detector (-short: without the FUSE and VM tests, which run the
# binary in other processes the detector cannot see into). Needs root (CI runs as root).
test: check-go deps build kernel
	$(GO) vet ./...
	$(GO) tool staticcheck ./...
	$(GOTEST) -count=1 -timeout 40m ./...
	$(GOTEST) -race -short -count=1 -timeout 20m ./internal/... ./cmd/...
	GO=$(GO) FUZZTIME=$(TEST_FUZZTIME) scripts/fuzz.sh

# Only the end-to-end tests (e2e/): the real binary, nowhere serve and nginx, FUSE and
# loop-mounted ext4/squashfs/erofs images. Needs root.
test-e2e: deps
	$(GO) test -count=1 -timeout 15m ./e2e/

# Unit tests only (no root, no FUSE).
test-short:
	$(GO) test -short -count=1 ./...

# Every fuzz target of the module, FUZZTIME each (default 10s): make fuzz FUZZTIME=10m
fuzz:
	GO=$(GO) FUZZTIME=$(FUZZTIME) scripts/fuzz.sh

# make demo ARCH=arm64: an arm64 machine booting the arm64 Debian image (scripts/demo.sh).
ARCH ?= amd64
demo: check-go build
	DEMO_ARCH=$(ARCH) scripts/demo.sh

bench: build
	scripts/install-deps.sh bench
	bench/run.sh

clean:
	rm -rf bin

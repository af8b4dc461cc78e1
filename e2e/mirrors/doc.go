// Package mirrors holds the end-to-end tests of nowhere's mirror sets, caching proxies and
// disk cache with real processes: `nowhere serve` and nginx mirrors, hostile mirrors and
// a TCP delay line (internal/testnet) in process, squid as a caching proxy, and `nowhere
// mount` reading through a real FUSE mount. Every server runs on loopback, is started by the test with
// its own configuration, and is killed by the test's cleanup.
package mirrors

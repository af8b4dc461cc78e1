// Package peers holds the end-to-end test of LAN peers: real `nowhere serve` and
// `nowhere mount --share` processes on hosts in network namespaces joined by a bridge
// (internal/testnet), finding each other by multicast announcements, with a real FUSE
// mount per client. The test creates the namespaces and removes them, and kills every
// process it started, even on failure.
package peers

// nowhere-fleet simulates a room of machines booting one image at the same moment
// (issue 8): N clients replay a recorded boot's reads against one origin behind a slow
// link, directly, through a caching proxy (squid), or as LAN peers, and it reports what
// the origin served and how long the clients took.
//
//	nowhere-fleet run --store DIR --image NAME --key PUB --trace FILE [--n 1,10,50,200] [--modes direct,proxy,peers] [--per-process 25]
//	nowhere-fleet trace --log ACCESS_LOG --store DIR --image NAME -o FILE
//
// `run` builds the network (internal/testnet): an origin host whose link to the LAN is
// limited with tc tbf and whose server answers each request after --delay (the round
// trip to a distant mirror), and a LAN host for the clients and the proxy. It starts this
// binary as the origin server (`origin`) and as the clients (`clients`, --per-process
// clients to a process, all released at the same moment) inside those hosts, and squid
// for the proxy runs. The other subcommands are its parts.
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: nowhere-fleet run|trace|origin|clients [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "run":
		err = runCmd(os.Args[2:])
	case "trace":
		err = traceCmd(os.Args[2:])
	case "origin":
		err = originCmd(os.Args[2:])
	case "clients":
		err = clientsCmd(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q (want run, trace, origin or clients)", os.Args[1])
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "nowhere-fleet: %v\n", err)
		os.Exit(1)
	}
}

// Command benchtool holds the helpers bench/run.sh needs that are not `nowhere` verbs:
//
//	benchtool nonzero IMAGE OUT            write IMAGE's non-zero 4 KiB blocks to OUT (its data, densely)
//	benchtool updatecost OLD.index NEW.index
//	                                       chunks and compressed bytes in NEW that OLD lacks
//	benchtool entries INDEX                print an index's table (to diff two packs' cuts)
//	benchtool packprof [-cpuprofile F] [-chunking SPEC] [-runs N] IMAGE
//	                                       pack into fresh temporary stores, with a CPU profile
//	benchtool fetchall [-p N] SOURCE       fetch and verify every chunk, N in parallel
//	benchtool mountstats SOURCE MNT        mount like nowhere mount; on SIGTERM print reader stats
//	benchtool readprof [-cpuprofile F] STORE/images/NAME MNT
//	                                       read the mounted image through FUSE from a warm memory cache
//
// It is a benchmark helper, not part of the product: errors are one line and exit 1.
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "nonzero":
		err = nonzero(os.Args[2:])
	case "updatecost":
		err = updateCost(os.Args[2:])
	case "entries":
		err = entries(os.Args[2:])
	case "packprof":
		err = packProf(os.Args[2:])
	case "fetchall":
		err = fetchAll(os.Args[2:])
	case "mountstats":
		err = mountStats(os.Args[2:])
	case "readprof":
		err = readProf(os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchtool:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: benchtool nonzero IMAGE OUT | updatecost OLD.index NEW.index | entries INDEX | packprof [flags] IMAGE | readprof [flags] STORE/images/NAME MNT")
	os.Exit(2)
}

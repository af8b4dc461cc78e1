package peer

import (
	"encoding/binary"
	"hash/fnv"

	"github.com/nowhere-boot/nowhere/internal/chunk"
)

// home picks, among candidates (base URLs), the one responsible for fetching chunk id
// from the mirrors for everyone: rendezvous (highest random weight) hashing. Every client
// that knows the same peers picks the same home for a chunk, so a fleet booting at once
// sends each chunk's request to one peer, which fetches it once; when a peer comes or
// goes only the chunks it was home for move. "" when there is no candidate.
func home(id chunk.ID, candidates []string) string {
	best, bestScore := "", uint64(0)
	for _, c := range candidates {
		if s := score(c, id); best == "" || s > bestScore || (s == bestScore && c < best) {
			best, bestScore = c, s
		}
	}
	return best
}

func score(peer string, id chunk.ID) uint64 {
	h := fnv.New64a()
	h.Write([]byte(peer))
	x := h.Sum64() ^ binary.LittleEndian.Uint64(id[:8])
	// splitmix64's finaliser: every bit of both inputs moves every bit of the score.
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

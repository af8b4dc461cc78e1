package trust

import (
	"crypto/sha256"
	"encoding/binary"
	"testing"
	"time"

	"github.com/nowhere-boot/nowhere/internal/chunk"
	"github.com/nowhere-boot/nowhere/internal/index"
)

// BenchmarkVerifyIndex measures what verification adds to opening an image: decoding a
// realistic index (32768 chunks of 64 KiB: a 2 GiB image) is the baseline, measured in the
// same loop; "verified" is trust.Verifier.Index on the same file (signature check on the
// raw bytes, then the same decode, then the policy without a state file).
func BenchmarkVerifyIndex(b *testing.B) {
	k := seededKey(b, "bench")
	const n = 32768
	ix := &index.Index{
		Name: "bench", Version: 1, Created: time.Unix(1795600000, 0).UTC(),
		Size:     n * 65536,
		Chunking: chunk.Params{Kind: chunk.KindFixed, Min: 65536, Avg: 65536, Max: 65536, Align: 1},
	}
	for i := 0; i < n; i++ {
		var seed [8]byte
		binary.LittleEndian.PutUint64(seed[:], uint64(i))
		ix.Entries = append(ix.Entries, index.Entry{Off: int64(i) * 65536, Len: 65536, Stored: 30000, ID: chunk.ID(sha256.Sum256(seed[:]))})
	}
	file, err := index.Encode(ix)
	if err != nil {
		b.Fatal(err)
	}
	if file, _, err = k.SignIndex(ix, file); err != nil {
		b.Fatal(err)
	}
	v := mustVerifier(b, Policy{Keys: []PublicKey{k.Public()}})
	var decode, verified time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if _, err := index.Decode(file); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if _, err := v.Index("bench", 0, file); err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		decode += t1.Sub(t0)
		verified += t2.Sub(t1)
	}
	b.ReportMetric(float64(len(file)), "index-bytes")
	b.ReportMetric(float64(decode.Microseconds())/float64(b.N), "decode-µs/op")
	b.ReportMetric(float64(verified.Microseconds())/float64(b.N), "verified-µs/op")
	b.ReportMetric(float64(verified)/float64(decode), "verified/decode")
}

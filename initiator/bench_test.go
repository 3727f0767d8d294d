package initiator_test

import (
	"context"
	"runtime"
	"testing"

	"github.com/hitkit/hitkit/initiator"
	"github.com/hitkit/hitkit/internal/peer"
)

// The read path, measured against tgtd on a tmpfs LUN with 32 commands in
// flight. Run with -benchmem: a steady-state read allocates nothing.
func BenchmarkRead4k(b *testing.B)   { benchmarkRead(b, 4<<10) }
func BenchmarkRead128k(b *testing.B) { benchmarkRead(b, 128<<10) }

func benchmarkRead(b *testing.B, size int) {
	tg := peer.StartTgtd(b, peer.Options{SizeBytes: 256 << 20})
	ctx := context.Background()
	s, err := initiator.Dial(ctx, config(tg))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	lu, err := initiator.OpenLogicalUnit(ctx, s, tg.LUN)
	if err != nil {
		b.Fatal(err)
	}
	blocks := lu.Size() / int64(size)
	b.SetBytes(int64(size))
	b.SetParallelism(max(1, 32/runtime.GOMAXPROCS(0)))
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		buf := make([]byte, size)
		var i int64
		for pb.Next() {
			i = (i*7919 + 1) % blocks
			if _, err := lu.ReadAt(buf, i*int64(size)); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

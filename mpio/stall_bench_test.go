package mpio

import (
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hitkit/hitkit/array"
)

// The failover stall: the longest 4 KiB random read latency, under a
// queue depth of 16, while a fault hits the port of a busy path. Reported
// as stall_ms; the goals are under 1 s for a port down and under
// 3 s for a blackhole, with the default settings.
//
//	go test -run '^$' -bench Stall -benchtime 1x ./mpio
func BenchmarkStallPortDown(b *testing.B) {
	benchmarkStall(b, func(on PathStatus) array.FaultRequest {
		return array.FaultRequest{Kind: array.FaultPortDown, Port: on.Remote}
	})
}

func BenchmarkStallBlackhole(b *testing.B) {
	benchmarkStall(b, func(on PathStatus) array.FaultRequest {
		return array.FaultRequest{Kind: array.FaultBlackhole, Port: on.Remote}
	})
}

func BenchmarkStallControlModuleFailover(b *testing.B) {
	benchmarkStall(b, func(on PathStatus) array.FaultRequest {
		return array.FaultRequest{Kind: array.FaultFailover, Member: member(b, on.Remote), Duration: array.Duration(2 * time.Second)}
	})
}

func benchmarkStall(b *testing.B, fault func(PathStatus) array.FaultRequest) {
	var worst time.Duration
	for range b.N {
		cfg := labConfig(b)
		cfg.Log = testLog(b)
		d := openDevice(b, cfg) // default check interval and timeout
		worst = max(worst, stallUnder(b, d, fault))
		d.Close()
		clearFaults(b)
	}
	b.ReportMetric(float64(worst.Microseconds())/1000, "stall_ms")
}

// stallUnder runs QD 16 random reads for 4 s, injects the fault after 1 s,
// and returns the longest read latency seen from then on.
func stallUnder(b *testing.B, d *Device, fault func(PathStatus) array.FaultRequest) time.Duration {
	var slowest atomic.Int64
	var faulted atomic.Bool
	stop := time.Now().Add(4 * time.Second)
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 16))
			buf := make([]byte, 4096)
			for time.Now().Before(stop) {
				t0 := time.Now()
				if _, err := d.ReadAt(buf, rng.Int64N(labVolumeSize/4096)*4096); err != nil {
					b.Error(err)
					return
				}
				if lat := int64(time.Since(t0)); faulted.Load() {
					for old := slowest.Load(); lat > old && !slowest.CompareAndSwap(old, lat); old = slowest.Load() {
					}
				}
			}
		}()
	}
	time.Sleep(time.Second)
	faulted.Store(true)
	inject(b, fault(activePath(b, d)))
	wg.Wait()
	return time.Duration(slowest.Load())
}

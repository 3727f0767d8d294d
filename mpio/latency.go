package mpio

import (
	"sync"
	"sync/atomic"
	"time"
)

// Latency statistics of a path, for Status and the health check's outlier
// test: a moving average of the per-second mean, and the slowest
// completion of the last few seconds.
const (
	latencyAlpha     = 0.3 // weight of the newest second in the average
	latencyWindow    = 10  // seconds the maximum looks back
	latencyForgetAft = 30  // idle seconds after which the average is forgotten
)

// latencyStats collects a path's command latencies. add runs on the I/O
// path and only touches atomics; sample runs once a second on the
// device's sampler and folds them into what Status reports.
type latencyStats struct {
	sum   atomic.Int64 // ns of the completions since the last sample
	count atomic.Int64
	peak  atomic.Int64 // the slowest of them, ns

	mu    sync.Mutex
	avg   time.Duration // 0 when the path has had no completion lately
	n     uint64        // completions folded into avg
	maxes [latencyWindow]time.Duration
	next  int
	idle  int // samples in a row without a completion
}

func (l *latencyStats) add(d time.Duration) {
	l.sum.Add(int64(d))
	l.count.Add(1)
	for {
		old := l.peak.Load()
		if int64(d) <= old || l.peak.CompareAndSwap(old, int64(d)) {
			return
		}
	}
}

// sample closes one second of completions. An idle path keeps its
// average for a while (a policy may leave a slow path idle), then forgets
// it, so that an old figure is not taken for a current one.
func (l *latencyStats) sample() {
	n, sum, peak := l.count.Swap(0), l.sum.Swap(0), l.peak.Swap(0)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.maxes[l.next] = time.Duration(peak)
	l.next = (l.next + 1) % latencyWindow
	if n == 0 {
		if l.idle++; l.idle >= latencyForgetAft {
			l.avg, l.n = 0, 0
		}
		return
	}
	l.idle = 0
	l.n += uint64(n)
	mean := time.Duration(sum / n)
	if l.avg == 0 {
		l.avg = mean
	} else {
		l.avg = time.Duration(latencyAlpha*float64(mean) + (1-latencyAlpha)*float64(l.avg))
	}
}

// report returns the average, how many completions it stands on, and the
// slowest completion of the last latencyWindow seconds, including the
// second in progress.
func (l *latencyStats) report() (avg time.Duration, samples uint64, slowest time.Duration) {
	slowest = time.Duration(l.peak.Load())
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, m := range l.maxes {
		slowest = max(slowest, m)
	}
	return l.avg, l.n, slowest
}

// Package bench runs I/O workloads against a block device and reports
// IOPS, throughput and latency percentiles. hitkit bench uses it against a
// logical unit or a multipathed volume.
package bench

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Device is the block device a workload runs on.
type Device interface {
	ReadAt(p []byte, off int64) (int, error)
	WriteAt(p []byte, off int64) (int, error)
	Size() int64
	BlockSize() int
}

// Pattern is the shape of a workload.
type Pattern string

const (
	SeqRead   Pattern = "seqread"
	RandRead  Pattern = "randread"
	SeqWrite  Pattern = "seqwrite"
	RandWrite Pattern = "randwrite"
	// Verify writes a checksummed pattern over the area, reads it back and
	// checks every block.
	Verify Pattern = "verify"
)

// ParsePattern checks a pattern name.
func ParsePattern(s string) (Pattern, error) {
	switch p := Pattern(s); p {
	case SeqRead, RandRead, SeqWrite, RandWrite, Verify:
		return p, nil
	}
	return "", fmt.Errorf("unknown pattern %q: use seqread, randread, seqwrite, randwrite or verify", s)
}

// Writes reports whether the pattern modifies the device.
func (p Pattern) Writes() bool { return p == SeqWrite || p == RandWrite || p == Verify }

// Spec is one workload.
type Spec struct {
	Pattern    Pattern
	BlockSize  int           // bytes per I/O
	QueueDepth int           // I/Os in flight
	Duration   time.Duration // for the timed patterns; Verify runs one pass
	// Span limits the I/O to the first Span bytes of the device (0: all).
	Span int64
}

// Report is what a workload measured.
type Report struct {
	Pattern  Pattern       `json:"pattern"`
	IOs      int64         `json:"ios"`
	Bytes    int64         `json:"bytes"`
	Elapsed  time.Duration `json:"-"`
	IOPS     float64       `json:"iops"`
	MBps     float64       `json:"mbps"`
	LatP50us float64       `json:"lat_p50_us"`
	LatP99us float64       `json:"lat_p99_us"`
	LatMaxus float64       `json:"lat_max_us"`
	Verified int64         `json:"verified_blocks,omitempty"`
}

// ErrMismatch is a verify pass that read back something other than what it wrote.
var ErrMismatch = errors.New("verify: data read back differs from data written")

// Run executes spec against dev.
func Run(ctx context.Context, dev Device, spec Spec) (Report, error) {
	if err := spec.check(dev); err != nil {
		return Report{}, err
	}
	if spec.Pattern == Verify {
		return runVerify(ctx, dev, spec)
	}
	ctx, cancel := context.WithTimeout(ctx, spec.Duration)
	defer cancel()
	return runTimed(ctx, dev, spec)
}

func (s *Spec) check(dev Device) error {
	bs := dev.BlockSize()
	if s.BlockSize <= 0 || s.BlockSize%bs != 0 {
		return fmt.Errorf("block size %d is not a multiple of the device's %d-byte blocks", s.BlockSize, bs)
	}
	if s.QueueDepth < 1 || s.QueueDepth > 1024 {
		return fmt.Errorf("queue depth %d is outside 1..1024", s.QueueDepth)
	}
	if s.Span <= 0 || s.Span > dev.Size() {
		s.Span = dev.Size()
	}
	s.Span -= s.Span % int64(s.BlockSize)
	if s.Span < int64(s.BlockSize) {
		return fmt.Errorf("the device (%d bytes) is smaller than one %d-byte I/O", dev.Size(), s.BlockSize)
	}
	if s.Pattern != Verify && s.Duration <= 0 {
		return fmt.Errorf("duration must be positive")
	}
	return nil
}

// runTimed keeps QueueDepth workers busy until ctx ends.
func runTimed(ctx context.Context, dev Device, spec Spec) (Report, error) {
	slots := spec.Span / int64(spec.BlockSize)
	var next atomic.Int64 // sequential position, shared so workers stream
	rec := newRecorder(spec.QueueDepth)
	start := time.Now()
	err := workers(spec.QueueDepth, func(w int) error {
		buf := make([]byte, spec.BlockSize)
		rng := rand.New(rand.NewPCG(uint64(w), uint64(start.UnixNano())))
		fillRandom(buf, rng)
		lat := rec.worker(w)
		for ctx.Err() == nil {
			var slot int64
			switch spec.Pattern {
			case RandRead, RandWrite:
				slot = rng.Int64N(slots)
			default:
				slot = (next.Add(1) - 1) % slots
			}
			off := slot * int64(spec.BlockSize)
			t0 := time.Now()
			var err error
			if spec.Pattern.Writes() {
				_, err = dev.WriteAt(buf, off)
			} else {
				_, err = dev.ReadAt(buf, off)
			}
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("%s at offset %d: %w", spec.Pattern, off, err)
			}
			*lat = append(*lat, time.Since(t0))
		}
		return nil
	})
	return rec.report(spec, time.Since(start)), err
}

// runVerify writes every block of the span with a pattern that names its
// offset and a checksum, then reads everything back and checks it.
func runVerify(ctx context.Context, dev Device, spec Spec) (Report, error) {
	slots := spec.Span / int64(spec.BlockSize)
	seed := uint64(time.Now().UnixNano())
	rec := newRecorder(spec.QueueDepth)
	start := time.Now()
	pass := func(write bool) error {
		var next atomic.Int64
		return workers(spec.QueueDepth, func(w int) error {
			buf := make([]byte, spec.BlockSize)
			want := make([]byte, spec.BlockSize)
			lat := rec.worker(w)
			for {
				slot := next.Add(1) - 1
				if slot >= slots || ctx.Err() != nil {
					return ctx.Err()
				}
				off := slot * int64(spec.BlockSize)
				verifyBlock(want, off, seed)
				t0 := time.Now()
				if write {
					if _, err := dev.WriteAt(want, off); err != nil {
						return fmt.Errorf("verify: write at offset %d: %w", off, err)
					}
				} else {
					if _, err := dev.ReadAt(buf, off); err != nil {
						return fmt.Errorf("verify: read at offset %d: %w", off, err)
					}
					if !slices.Equal(buf, want) {
						return fmt.Errorf("%w at offset %d", ErrMismatch, off)
					}
				}
				*lat = append(*lat, time.Since(t0))
			}
		})
	}
	if err := pass(true); err != nil {
		return rec.report(spec, time.Since(start)), err
	}
	err := pass(false)
	r := rec.report(spec, time.Since(start))
	if err == nil {
		r.Verified = slots
	}
	return r, err
}

// verifyBlock fills b with data derived from its offset and the run's seed,
// ending in a SHA-256 of the rest, so a misplaced or torn block is caught.
func verifyBlock(b []byte, off int64, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, uint64(off)))
	body := b[:len(b)-sha256.Size]
	binary.BigEndian.PutUint64(body, uint64(off))
	fillRandom(body[8:], rng)
	sum := sha256.Sum256(body)
	copy(b[len(body):], sum[:])
}

func fillRandom(b []byte, rng *rand.Rand) {
	for i := 0; i+8 <= len(b); i += 8 {
		binary.LittleEndian.PutUint64(b[i:], rng.Uint64())
	}
}

// workers runs n copies of f and returns the first error.
func workers(n int, f func(w int) error) error {
	var wg sync.WaitGroup
	errs := make([]error, n)
	for w := range n {
		wg.Add(1)
		go func() { defer wg.Done(); errs[w] = f(w) }()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// recorder keeps each worker's latencies apart, so recording takes no lock.
type recorder struct{ lats [][]time.Duration }

func newRecorder(n int) *recorder { return &recorder{lats: make([][]time.Duration, n)} }

func (r *recorder) worker(w int) *[]time.Duration {
	if r.lats[w] == nil {
		r.lats[w] = make([]time.Duration, 0, 1<<16)
	}
	return &r.lats[w]
}

func (r *recorder) report(spec Spec, elapsed time.Duration) Report {
	var all []time.Duration
	for _, l := range r.lats {
		all = append(all, l...)
	}
	slices.Sort(all)
	rep := Report{Pattern: spec.Pattern, IOs: int64(len(all)), Elapsed: elapsed}
	rep.Bytes = rep.IOs * int64(spec.BlockSize)
	if secs := elapsed.Seconds(); secs > 0 {
		rep.IOPS = float64(rep.IOs) / secs
		rep.MBps = float64(rep.Bytes) / secs / 1e6
	}
	if n := len(all); n > 0 {
		us := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }
		rep.LatP50us = us(all[n*50/100])
		rep.LatP99us = us(all[min(n-1, n*99/100)])
		rep.LatMaxus = us(all[n-1])
	}
	return rep
}

package bench

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// memDevice is a RAM disk; flip, when set, corrupts one byte of reads at
// that offset, standing in for a device that returns bad data.
type memDevice struct {
	mu   sync.Mutex
	data []byte
	flip int64
}

func (m *memDevice) ReadAt(p []byte, off int64) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := copy(p, m.data[off:])
	if m.flip >= off && m.flip < off+int64(n) {
		p[m.flip-off] ^= 0xff
	}
	return n, nil
}

func (m *memDevice) WriteAt(p []byte, off int64) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return copy(m.data[off:], p), nil
}

func (m *memDevice) Size() int64    { return int64(len(m.data)) }
func (m *memDevice) BlockSize() int { return 512 }

func TestVerifyPassesOnAGoodDevice(t *testing.T) {
	dev := &memDevice{data: make([]byte, 4<<20), flip: -1}
	r, err := Run(context.Background(), dev, Spec{Pattern: Verify, BlockSize: 4096, QueueDepth: 8})
	if err != nil {
		t.Fatal(err)
	}
	if r.Verified != 1024 || r.IOs != 2048 {
		t.Fatalf("verified %d blocks in %d I/Os, want 1024 in 2048", r.Verified, r.IOs)
	}
}

func TestVerifyCatchesCorruption(t *testing.T) {
	dev := &memDevice{data: make([]byte, 1<<20), flip: 300000}
	_, err := Run(context.Background(), dev, Spec{Pattern: Verify, BlockSize: 8192, QueueDepth: 4})
	if !errors.Is(err, ErrMismatch) {
		t.Fatalf("err = %v, want ErrMismatch", err)
	}
}

func TestVerifyCatchesMisplacedWrites(t *testing.T) {
	// A device that writes every block one block too far: each block's
	// content is valid on its own, only its place is wrong.
	dev := &shiftDevice{memDevice{data: make([]byte, 1<<20), flip: -1}}
	_, err := Run(context.Background(), dev, Spec{Pattern: Verify, BlockSize: 4096, QueueDepth: 1})
	if !errors.Is(err, ErrMismatch) {
		t.Fatalf("err = %v, want ErrMismatch", err)
	}
}

type shiftDevice struct{ memDevice }

func (s *shiftDevice) WriteAt(p []byte, off int64) (int, error) {
	return s.memDevice.WriteAt(p, (off+int64(len(p)))%s.Size())
}

func TestTimedPatterns(t *testing.T) {
	dev := &memDevice{data: make([]byte, 1<<20), flip: -1}
	for _, p := range []Pattern{SeqRead, RandRead, SeqWrite, RandWrite} {
		r, err := Run(context.Background(), dev, Spec{Pattern: p, BlockSize: 4096, QueueDepth: 4, Duration: 50 * time.Millisecond})
		if err != nil {
			t.Fatal(p, err)
		}
		if r.IOs == 0 || r.IOPS <= 0 || r.LatMaxus < r.LatP50us {
			t.Fatalf("%s: implausible report %+v", p, r)
		}
	}
}

func TestSpecErrors(t *testing.T) {
	dev := &memDevice{data: make([]byte, 8192), flip: -1}
	for _, s := range []Spec{
		{Pattern: SeqRead, BlockSize: 1000, QueueDepth: 1, Duration: time.Second},
		{Pattern: SeqRead, BlockSize: 512, QueueDepth: 0, Duration: time.Second},
		{Pattern: SeqRead, BlockSize: 16384, QueueDepth: 1, Duration: time.Second},
		{Pattern: SeqRead, BlockSize: 512, QueueDepth: 1},
	} {
		if _, err := Run(context.Background(), dev, s); err == nil {
			t.Errorf("%+v: no error", s)
		}
	}
	if _, err := ParsePattern("randrw"); err == nil {
		t.Error("unknown pattern accepted")
	}
}

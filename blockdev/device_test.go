package blockdev

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// memDevice is a Device in memory that counts what reaches it and can be
// made read-only, failing or slow.
type memDevice struct {
	mu       sync.RWMutex
	data     []byte
	bs       int
	readOnly bool
	fail     atomic.Bool  // every call fails with EIO-worthy errors
	delay    atomic.Int64 // nanoseconds each call sleeps first
	misuse   atomic.Value // first contract violation seen (string)
	reads    atomic.Int64 // ReadAt calls
	writes   atomic.Int64 // WriteAt and WriteAtFUA calls
	fuas     atomic.Int64 // WriteAtFUA calls
	syncs    atomic.Int64 // Sync calls
	unmaps   atomic.Int64 // Unmap calls
	unmapped atomic.Int64 // bytes unmapped
}

var errInjected = errors.New("injected device failure")

func newMemDevice(size int64, bs int) *memDevice {
	return &memDevice{data: make([]byte, size), bs: bs}
}

func (d *memDevice) Size() int64    { return int64(len(d.data)) }
func (d *memDevice) BlockSize() int { return d.bs }
func (d *memDevice) ReadOnly() bool { return d.readOnly }

// enter applies the injected delay and failure, and records calls that
// break the Device contract (unaligned or out-of-range I/O).
func (d *memDevice) enter(off, n int64) error {
	if ns := d.delay.Load(); ns > 0 {
		time.Sleep(time.Duration(ns))
	}
	if off%int64(d.bs) != 0 || n%int64(d.bs) != 0 || off < 0 || off+n > d.Size() {
		d.misuse.CompareAndSwap(nil, "unaligned or out-of-range call")
		return errors.New("contract violation")
	}
	if d.fail.Load() {
		return errInjected
	}
	return nil
}

func (d *memDevice) ReadAt(p []byte, off int64) (int, error) {
	d.reads.Add(1)
	if err := d.enter(off, int64(len(p))); err != nil {
		return 0, err
	}
	d.mu.RLock()
	defer d.mu.RUnlock()
	return copy(p, d.data[off:]), nil
}

func (d *memDevice) WriteAt(p []byte, off int64) (int, error) {
	d.writes.Add(1)
	if err := d.enter(off, int64(len(p))); err != nil {
		return 0, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return copy(d.data[off:], p), nil
}

func (d *memDevice) WriteAtFUA(p []byte, off int64) (int, error) {
	d.fuas.Add(1)
	return d.WriteAt(p, off)
}

func (d *memDevice) Sync() error {
	d.syncs.Add(1)
	if err := d.enter(0, 0); err != nil {
		return err
	}
	return nil
}

func (d *memDevice) Unmap(off, length int64) error {
	d.unmaps.Add(1)
	if err := d.enter(off, length); err != nil {
		return err
	}
	d.unmapped.Add(length)
	d.mu.Lock()
	defer d.mu.Unlock()
	clear(d.data[off : off+length])
	return nil
}

func (d *memDevice) snapshot() []byte {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return bytes.Clone(d.data)
}

// checkContract fails the test if blockdev ever sent the device I/O that
// the Device interface promises it will not.
func (d *memDevice) checkContract(t testing.TB) {
	t.Helper()
	if v := d.misuse.Load(); v != nil {
		t.Errorf("device saw a %s", v)
	}
}

// plainDevice hides memDevice's optional interfaces (FUA, read-only).
type plainDevice struct{ d *memDevice }

func (p plainDevice) ReadAt(b []byte, off int64) (int, error)  { return p.d.ReadAt(b, off) }
func (p plainDevice) WriteAt(b []byte, off int64) (int, error) { return p.d.WriteAt(b, off) }
func (p plainDevice) Sync() error                              { return p.d.Sync() }
func (p plainDevice) Unmap(off, n int64) error                 { return p.d.Unmap(off, n) }
func (p plainDevice) Size() int64                              { return p.d.Size() }
func (p plainDevice) BlockSize() int                           { return p.d.BlockSize() }

func requireTool(t testing.TB, names ...string) {
	t.Helper()
	for _, name := range names {
		if _, err := exec.LookPath(name); err != nil {
			t.Skipf("%s not installed (Debian packages: fio, libnbd-bin, qemu-utils, e2fsprogs, mount, fuse3)", name)
		}
	}
}

func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (FUSE mount, loop devices)")
	}
}

// checkNoGoroutineLeak records the goroutine count and, at cleanup, waits
// briefly for it to come back down.
func checkNoGoroutineLeak(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if n := runtime.NumGoroutine(); n > before {
			buf := make([]byte, 1<<20)
			t.Errorf("%d goroutines before, %d after:\n%s", before, n, buf[:runtime.Stack(buf, true)])
		}
	})
}

func TestCheckDevice(t *testing.T) {
	for _, tc := range []struct {
		size int64
		bs   int
		ok   bool
	}{
		{1 << 20, 512, true},
		{1 << 20, 4096, true},
		{1 << 20, 65536, true},
		{1 << 20, 256, false},
		{1 << 20, 3000, false},
		{1<<20 + 512, 4096, false},
		{0, 512, false},
	} {
		err := checkDevice(&memDevice{data: make([]byte, tc.size), bs: tc.bs})
		if (err == nil) != tc.ok {
			t.Errorf("size %d block %d: err = %v, want ok=%v", tc.size, tc.bs, err, tc.ok)
		}
	}
	if err := checkDevice(nil); err == nil {
		t.Error("nil device accepted")
	}
}

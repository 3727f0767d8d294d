package blockdev

import (
	"errors"
	"io"
	"sync"
)

// errOutOfRange is returned for I/O that reaches past the end of the device.
var errOutOfRange = errors.New("blockdev: range beyond the end of the device")

// zeroes is written where a range must read back as zeroes but cannot be
// unmapped. Devices never modify the buffer they are given (io.WriterAt).
var zeroes = make([]byte, 1<<20)

// blockIO serves byte-range I/O on a Device that accepts only whole blocks.
// Clients of both front ends normally send block-aligned I/O; a partial
// block is served by reading the blocks around it (read-modify-write).
type blockIO struct {
	dev  Device
	bs   int64
	size int64
	fua  FUAWriter // nil when the device has no cheaper FUA write

	// partial keeps a read-modify-write from losing a concurrent write to
	// the same block: aligned writes hold it shared, a partial write holds
	// it alone. Reads do not need it: a Device write is atomic enough.
	partial sync.RWMutex
}

func newBlockIO(dev Device) *blockIO {
	b := &blockIO{dev: dev, bs: int64(dev.BlockSize()), size: dev.Size()}
	b.fua, _ = dev.(FUAWriter)
	return b
}

func (b *blockIO) inRange(off, n int64) bool {
	return off >= 0 && n >= 0 && off <= b.size && n <= b.size-off
}

func (b *blockIO) aligned(off, n int64) bool {
	return off%b.bs == 0 && n%b.bs == 0
}

// cover returns the block-aligned range that contains [off, off+n).
func (b *blockIO) cover(off, n int64) (start, end int64) {
	start = off - off%b.bs
	end = off + n
	if r := end % b.bs; r != 0 {
		end += b.bs - r
	}
	return start, end
}

// readAt fills p from the device at off.
func (b *blockIO) readAt(p []byte, off int64) error {
	n := int64(len(p))
	if !b.inRange(off, n) {
		return errOutOfRange
	}
	if n == 0 {
		return nil
	}
	if b.aligned(off, n) {
		return readFull(b.dev, p, off)
	}
	start, end := b.cover(off, n)
	buf := make([]byte, end-start)
	if err := readFull(b.dev, buf, start); err != nil {
		return err
	}
	copy(p, buf[off-start:])
	return nil
}

// writeAt writes p to the device at off; with fua the data is durable when
// writeAt returns.
func (b *blockIO) writeAt(p []byte, off int64, fua bool) error {
	n := int64(len(p))
	if !b.inRange(off, n) {
		return errOutOfRange
	}
	if n == 0 {
		return b.syncIf(fua)
	}
	if b.aligned(off, n) {
		b.partial.RLock()
		defer b.partial.RUnlock()
		return b.writeBlocks(p, off, fua)
	}
	b.partial.Lock()
	defer b.partial.Unlock()
	start, end := b.cover(off, n)
	buf := make([]byte, end-start)
	if off != start {
		if err := readFull(b.dev, buf[:b.bs], start); err != nil {
			return err
		}
	}
	if tail := end - b.bs; off+n != end && (tail != start || off == start) {
		if err := readFull(b.dev, buf[tail-start:], tail); err != nil {
			return err
		}
	}
	copy(buf[off-start:], p)
	return b.writeBlocks(buf, start, fua)
}

func (b *blockIO) writeBlocks(p []byte, off int64, fua bool) error {
	var n int
	var err error
	if fua && b.fua != nil {
		n, err = b.fua.WriteAtFUA(p, off)
		fua = false
	} else {
		n, err = b.dev.WriteAt(p, off)
	}
	if err == nil && n != len(p) {
		err = io.ErrShortWrite
	}
	if err != nil {
		return err
	}
	return b.syncIf(fua)
}

func (b *blockIO) syncIf(fua bool) error {
	if !fua {
		return nil
	}
	return b.dev.Sync()
}

// zero makes [off, off+n) read back as zeroes. With mayUnmap the whole
// blocks inside the range are unmapped instead of written.
func (b *blockIO) zero(off, n int64, mayUnmap, fua bool) error {
	if !b.inRange(off, n) {
		return errOutOfRange
	}
	end := off + n
	first, last := b.interior(off, n)
	if !mayUnmap || first >= last {
		if err := b.writeZeroes(off, end); err != nil {
			return err
		}
		return b.syncIf(fua)
	}
	if err := b.writeZeroes(off, first); err != nil {
		return err
	}
	if err := b.unmap(first, last-first); err != nil {
		return err
	}
	if err := b.writeZeroes(last, end); err != nil {
		return err
	}
	return b.syncIf(fua)
}

func (b *blockIO) writeZeroes(off, end int64) error {
	for off < end {
		chunk := min(end-off, int64(len(zeroes)))
		if err := b.writeAt(zeroes[:chunk], off, false); err != nil {
			return err
		}
		off += chunk
	}
	return nil
}

// trim discards the whole blocks inside [off, off+n). Discard is advisory,
// so the partial blocks at either end are left alone.
func (b *blockIO) trim(off, n int64) error {
	if !b.inRange(off, n) {
		return errOutOfRange
	}
	first, last := b.interior(off, n)
	if first >= last {
		return nil
	}
	return b.unmap(first, last-first)
}

func (b *blockIO) unmap(off, n int64) error {
	b.partial.RLock()
	defer b.partial.RUnlock()
	return b.dev.Unmap(off, n)
}

// interior returns the whole blocks inside [off, off+n); first >= last when
// there are none.
func (b *blockIO) interior(off, n int64) (first, last int64) {
	first = off
	if r := off % b.bs; r != 0 {
		first += b.bs - r
	}
	last = off + n
	last -= last % b.bs
	return first, last
}

func (b *blockIO) sync() error { return b.dev.Sync() }

// readFull reads exactly len(p) bytes; io.ReaderAt allows io.EOF alongside
// a full read at the end of the device.
func readFull(dev Device, p []byte, off int64) error {
	n, err := dev.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return err
}

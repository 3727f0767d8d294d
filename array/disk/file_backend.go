package disk

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// FileBackend keeps a disk's bytes in a sparse file: unmapped ranges are
// holes, punched with fallocate, so a thin volume costs only what was
// written.
type FileBackend struct {
	f *os.File
}

var (
	_ Backend          = (*FileBackend)(nil)
	_ ZeroWriter       = (*FileBackend)(nil)
	_ Resizer          = (*FileBackend)(nil)
	_ AllocationMapper = (*FileBackend)(nil)
)

// CreateFile creates (or truncates) a sparse file of size bytes.
func CreateFile(path string, size int64) (*FileBackend, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, err
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		return nil, err
	}
	return &FileBackend{f: f}, nil
}

// OpenFile opens an existing file; its size is the disk's size.
func OpenFile(path string) (*FileBackend, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	return &FileBackend{f: f}, nil
}

// Close closes the file.
func (b *FileBackend) Close() error { return b.f.Close() }

func (b *FileBackend) ReadAt(p []byte, off int64) (int, error) {
	n, err := b.f.ReadAt(p, off)
	if err != nil && n == len(p) {
		err = nil // io.EOF exactly at the end of the file
	}
	return n, err
}

func (b *FileBackend) WriteAt(p []byte, off int64) (int, error) { return b.f.WriteAt(p, off) }

// Size is the file's size; a failed stat reports 0, which makes every
// access out of range rather than guessing.
func (b *FileBackend) Size() int64 {
	fi, err := b.f.Stat()
	if err != nil {
		return 0
	}
	return fi.Size()
}

// Sync is fdatasync: the data and what is needed to read it back.
func (b *FileBackend) Sync() error { return unix.Fdatasync(int(b.f.Fd())) }

// Unmap punches a hole. The file keeps its size, and the hole reads back
// as zeroes. Where the filesystem cannot punch holes, zeroes are written.
func (b *FileBackend) Unmap(off, length int64) error {
	err := unix.Fallocate(int(b.f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, length)
	if errors.Is(err, unix.EOPNOTSUPP) {
		return writeZeroes(b.f, off, length)
	}
	return err
}

// WriteZeroes zeroes a range. Punching a hole is the cheapest way to get
// zeroes on a sparse file; it also keeps the volume thin.
func (b *FileBackend) WriteZeroes(off, length int64) error { return b.Unmap(off, length) }

// Resize grows or shrinks the file.
func (b *FileBackend) Resize(size int64) error { return b.f.Truncate(size) }

// Allocation uses SEEK_DATA and SEEK_HOLE.
func (b *FileBackend) Allocation(off int64) (bool, int64, error) {
	fd := int(b.f.Fd())
	size := b.Size()
	if off >= size {
		return false, 0, fmt.Errorf("disk: offset %d past the end (%d)", off, size)
	}
	data, err := unix.Seek(fd, off, unix.SEEK_DATA)
	if errors.Is(err, unix.ENXIO) {
		return false, size - off, nil // only a hole up to the end
	}
	if err != nil {
		return true, size - off, err
	}
	if data > off {
		return false, data - off, nil
	}
	hole, err := unix.Seek(fd, off, unix.SEEK_HOLE)
	if err != nil {
		return true, size - off, err
	}
	return true, hole - off, nil
}

// writeZeroes is the slow path for backends without hole punching.
func writeZeroes(w interface {
	WriteAt([]byte, int64) (int, error)
}, off, length int64) error {
	buf := getBuffer(int(min(length, maxChunk)))
	defer putBuffer(buf)
	clear(*buf)
	for length > 0 {
		n := min(length, int64(len(*buf)))
		if _, err := w.WriteAt((*buf)[:n], off); err != nil {
			return err
		}
		off += n
		length -= n
	}
	return nil
}

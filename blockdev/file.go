package blockdev

import (
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// FileDevice is a Device backed by a regular file or a host block device.
// It is useful for demos, for the lab, and for tests of other packages.
type FileDevice struct {
	f        *os.File
	size     int64
	bs       int
	readOnly bool
}

var (
	_ Device         = (*FileDevice)(nil)
	_ FUAWriter      = (*FileDevice)(nil)
	_ ReadOnlyDevice = (*FileDevice)(nil)
)

// OpenFileDevice opens an existing file (or block device) as a Device of
// the given block size. Its size must be a multiple of the block size.
func OpenFileDevice(path string, blockSize int, readOnly bool) (*FileDevice, error) {
	flag := os.O_RDWR
	if readOnly {
		flag = os.O_RDONLY
	}
	f, err := os.OpenFile(path, flag, 0)
	if err != nil {
		return nil, fmt.Errorf("blockdev: open device file: %w", err)
	}
	// Seek rather than Stat: a block device's size is not in its inode.
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("blockdev: size of %s: %w", path, err)
	}
	d := &FileDevice{f: f, size: size, bs: blockSize, readOnly: readOnly}
	if err := checkDevice(d); err != nil {
		f.Close()
		return nil, fmt.Errorf("%w (file %s)", err, path)
	}
	return d, nil
}

// CreateFileDevice creates (or truncates) a sparse regular file of the given
// size and opens it read-write as a Device.
func CreateFileDevice(path string, size int64, blockSize int) (*FileDevice, error) {
	d := &FileDevice{size: size, bs: blockSize}
	if err := checkDevice(d); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("blockdev: create device file: %w", err)
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		os.Remove(path)
		return nil, fmt.Errorf("blockdev: size device file: %w", err)
	}
	d.f = f
	return d, nil
}

func (d *FileDevice) ReadAt(p []byte, off int64) (int, error)  { return d.f.ReadAt(p, off) }
func (d *FileDevice) WriteAt(p []byte, off int64) (int, error) { return d.f.WriteAt(p, off) }
func (d *FileDevice) Size() int64                              { return d.size }
func (d *FileDevice) BlockSize() int                           { return d.bs }
func (d *FileDevice) ReadOnly() bool                           { return d.readOnly }

// Sync flushes the file's data to stable storage.
func (d *FileDevice) Sync() error {
	return d.control(unix.Fdatasync)
}

// WriteAtFUA writes p with RWF_DSYNC, so only this write waits for stable
// storage.
func (d *FileDevice) WriteAtFUA(p []byte, off int64) (int, error) {
	var n int
	err := d.control(func(fd int) (err error) {
		n, err = unix.Pwritev2(fd, [][]byte{p}, off, unix.RWF_DSYNC)
		return err
	})
	if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS) {
		if n, err = d.WriteAt(p, off); err == nil {
			err = d.Sync()
		}
		return n, err
	}
	if err == nil && n < len(p) {
		err = io.ErrShortWrite
	}
	return n, err
}

// Unmap punches a hole; where the filesystem cannot, it writes zeroes,
// because an unmapped range must read back as zeroes.
func (d *FileDevice) Unmap(off, length int64) error {
	err := d.control(func(fd int) error {
		return unix.Fallocate(fd, unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, length)
	})
	if !errors.Is(err, unix.EOPNOTSUPP) {
		return err
	}
	for length > 0 {
		chunk := min(length, int64(len(zeroes)))
		if _, err := d.f.WriteAt(zeroes[:chunk], off); err != nil {
			return err
		}
		off += chunk
		length -= chunk
	}
	return nil
}

// Close closes the underlying file.
func (d *FileDevice) Close() error { return d.f.Close() }

// control runs a system call on the file descriptor; unlike File.Fd it is
// safe against a concurrent Close.
func (d *FileDevice) control(call func(fd int) error) error {
	rc, err := d.f.SyscallConn()
	if err != nil {
		return err
	}
	var callErr error
	if err := rc.Control(func(fd uintptr) { callErr = call(int(fd)) }); err != nil {
		return err
	}
	return callErr
}

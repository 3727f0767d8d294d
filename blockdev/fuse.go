package blockdev

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
)

// deviceFile is the one regular file of the FUSE filesystem; its contents
// are the device. Opens are direct I/O, so the kernel keeps no page cache
// of the file: the block device on top of it has its own.
type deviceFile struct {
	fs.Inode
	io       *blockIO
	readOnly bool
	mtime    time.Time
	log      logrus.FieldLogger
}

var (
	_ fs.NodeOpener    = (*deviceFile)(nil)
	_ fs.NodeGetattrer = (*deviceFile)(nil)
	_ fs.NodeSetattrer = (*deviceFile)(nil)
	_ fs.NodeReader    = (*deviceFile)(nil)
	_ fs.NodeWriter    = (*deviceFile)(nil)
	_ fs.NodeFlusher   = (*deviceFile)(nil)
	_ fs.NodeFsyncer   = (*deviceFile)(nil)
	_ fs.NodeAllocater = (*deviceFile)(nil)
)

// openFile is the handle of one open(2) of the device file.
type openFile struct{ writable bool }

func (f *deviceFile) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	writable := flags&(syscall.O_WRONLY|syscall.O_RDWR) != 0
	if f.readOnly && writable {
		return nil, 0, syscall.EROFS
	}
	// Parallel direct writes: without it the kernel serializes writes to
	// the file, and with it the loop device's queue.
	return &openFile{writable: writable}, fuse.FOPEN_DIRECT_IO | fuse.FOPEN_PARALLEL_DIRECT_WRITES, 0
}

func (f *deviceFile) Getattr(ctx context.Context, fh fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	f.fillAttr(&out.Attr)
	return 0
}

// Setattr accepts changes of mode, owner and times without keeping them;
// the size is the device's and cannot change.
func (f *deviceFile) Setattr(ctx context.Context, fh fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if size, ok := in.GetSize(); ok && size != uint64(f.io.size) {
		return syscall.EPERM
	}
	f.fillAttr(&out.Attr)
	return 0
}

func (f *deviceFile) fillAttr(a *fuse.Attr) {
	a.Mode = syscall.S_IFREG | 0o600
	if f.readOnly {
		a.Mode = syscall.S_IFREG | 0o400
	}
	a.Size = uint64(f.io.size)
	a.Blocks = a.Size / 512
	a.Blksize = uint32(f.io.bs)
	a.Nlink = 1
	a.SetTimes(&f.mtime, &f.mtime, &f.mtime)
}

func (f *deviceFile) Read(ctx context.Context, fh fs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	if off >= f.io.size {
		return fuse.ReadResultData(nil), 0
	}
	n := min(int64(len(dest)), f.io.size-off)
	if err := f.io.readAt(dest[:n], off); err != nil {
		return nil, f.errno("read", off, n, err)
	}
	return fuse.ReadResultData(dest[:n]), 0
}

// Write writes what fits before the end of the device; a write starting
// at or past the end fails, as on a block device.
func (f *deviceFile) Write(ctx context.Context, fh fs.FileHandle, data []byte, off int64) (uint32, syscall.Errno) {
	if off >= f.io.size {
		return 0, syscall.ENOSPC
	}
	n := min(int64(len(data)), f.io.size-off)
	if err := f.io.writeAt(data[:n], off, false); err != nil {
		return 0, f.errno("write", off, n, err)
	}
	return uint32(n), 0
}

// Flush runs at every close(2) of the file, and makes what was written
// through a writable handle durable. fsync(2) and the loop device's cache
// flushes arrive as Fsync.
func (f *deviceFile) Flush(ctx context.Context, fh fs.FileHandle) syscall.Errno {
	if h, ok := fh.(*openFile); ok && !h.writable {
		return 0
	}
	if err := f.io.sync(); err != nil {
		return f.errno("flush", 0, 0, err)
	}
	return 0
}

func (f *deviceFile) Fsync(ctx context.Context, fh fs.FileHandle, flags uint32) syscall.Errno {
	if err := f.io.sync(); err != nil {
		return f.errno("fsync", 0, 0, err)
	}
	return 0
}

// Allocate serves fallocate(2), which is how the loop device passes on
// discards (PUNCH_HOLE) and write-zeroes (ZERO_RANGE when the caller asked
// not to unmap).
func (f *deviceFile) Allocate(ctx context.Context, fh fs.FileHandle, off, size uint64, mode uint32) syscall.Errno {
	if f.readOnly {
		return syscall.EROFS
	}
	end := off + size
	if end < off || off > uint64(f.io.size) {
		return syscall.EINVAL
	}
	keepSize := mode&unix.FALLOC_FL_KEEP_SIZE != 0
	if end > uint64(f.io.size) {
		if !keepSize {
			return syscall.ENOSPC
		}
		end = uint64(f.io.size)
	}
	o, n := int64(off), int64(end-off)
	var err error
	switch mode &^ unix.FALLOC_FL_KEEP_SIZE {
	case 0: // every block of the file is already there
	case unix.FALLOC_FL_PUNCH_HOLE:
		if !keepSize {
			return syscall.EINVAL // the kernel's rule for PUNCH_HOLE
		}
		err = f.io.zero(o, n, true, false)
	case unix.FALLOC_FL_ZERO_RANGE:
		err = f.io.zero(o, n, false, false)
	default:
		return syscall.EOPNOTSUPP
	}
	if err != nil {
		return f.errno("fallocate", o, n, err)
	}
	return 0
}

func (f *deviceFile) errno(op string, off, n int64, err error) syscall.Errno {
	if errors.Is(err, errOutOfRange) {
		return syscall.EINVAL
	}
	f.log.WithFields(logrus.Fields{"op": op, "offset": off, "length": n}).WithError(err).Warn("device I/O failed")
	if errors.Is(err, syscall.ENOSPC) {
		return syscall.ENOSPC
	}
	return syscall.EIO
}

// mountDeviceFile mounts at dir a filesystem whose only entry is the file
// name, serving dev. It needs root: it mounts with mount(2) directly, so
// no setuid fusermount is involved and errors are plain errnos.
func mountDeviceFile(b *blockIO, readOnly bool, dir, name string, logger logrus.FieldLogger) (*fuse.Server, error) {
	file := &deviceFile{io: b, readOnly: readOnly, mtime: time.Now(), log: logger}
	root := &fs.Inode{}
	forever := 24 * time.Hour // nothing in this filesystem ever changes
	opts := &fs.Options{
		EntryTimeout:    &forever,
		AttrTimeout:     &forever,
		NegativeTimeout: &forever,
		OnAdd: func(ctx context.Context) {
			child := root.NewPersistentInode(ctx, file, fs.StableAttr{Mode: syscall.S_IFREG})
			root.AddChild(name, child, false)
		},
		MountOptions: fuse.MountOptions{
			FsName:            "hitkit",
			Name:              "hitkit",
			DirectMountStrict: true,
			MaxWrite:          1 << 20,
			MaxBackground:     64, // asynchronous requests, e.g. loop direct I/O
			// Without ASYNC_DIO the kernel runs the loop device's direct
			// AIO into the file one request at a time, whatever the queue
			// depth above it.
			ExtraCapabilities: fuse.CAP_ASYNC_DIO,
			DisableXAttrs:     true,
			Logger:            log.New(logWriter{logger}, "", 0),
		},
	}
	srv, err := fs.Mount(dir, root, opts)
	if err != nil {
		return nil, fmt.Errorf("blockdev: mount FUSE at %s: %w", dir, err)
	}
	return srv, nil
}

// clearDeadMount lazily unmounts a FUSE mount at dir whose server died
// (every access fails with ENOTCONN), as after a crash of a previous run.
func clearDeadMount(dir string, logger logrus.FieldLogger) error {
	var st unix.Stat_t
	err := unix.Stat(dir, &st)
	if !errors.Is(err, unix.ENOTCONN) {
		return nil
	}
	logger.WithField("mount", dir).Warn("removing a dead FUSE mount left by an earlier run")
	if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
		return fmt.Errorf("blockdev: %s is a dead FUSE mount and cannot be unmounted: %w", dir, err)
	}
	return nil
}

// logWriter passes go-fuse's log lines (rare, and about real trouble) to
// logrus.
type logWriter struct{ log logrus.FieldLogger }

func (w logWriter) Write(p []byte) (int, error) {
	w.log.WithField("component", "fuse").Warn(string(bytes.TrimSpace(p)))
	return len(p), nil
}

// prepareMountPoint clears a dead mount at dir and creates dir if missing.
func prepareMountPoint(dir string, logger logrus.FieldLogger) error {
	if err := clearDeadMount(dir, logger); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("blockdev: mount point: %w", err)
	}
	var here, parent unix.Stat_t
	if err := unix.Stat(dir, &here); err != nil {
		return fmt.Errorf("blockdev: mount point: %w", err)
	}
	if err := unix.Stat(filepath.Dir(dir), &parent); err != nil {
		return fmt.Errorf("blockdev: mount point: %w", err)
	}
	if here.Dev != parent.Dev {
		return fmt.Errorf("blockdev: %s is already a mount point", dir)
	}
	return nil
}

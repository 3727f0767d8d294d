// Package blockdev exposes a block device implemented in Go to the rest of
// the host.
//
// A Device (for example the multipathed iSCSI volume of package mpio) can be
// served in two ways:
//
//   - ServeNBD speaks the NBD protocol on a unix socket, for userspace
//     clients (qemu-img, nbdcopy, fio) and, on hosts with the nbd module,
//     for the kernel's /dev/nbdN.
//   - ExportLoop mounts a one-file FUSE filesystem whose file is the device
//     and attaches a loop device to that file, giving a real /dev/loopN on
//     any kernel with FUSE and loop support.
//
// Both front ends turn whatever byte ranges their clients ask for into
// block-aligned calls on the Device, so an implementation only ever sees
// I/O at multiples of its BlockSize.
//
// On hosts with the nbd module, attaching /dev/nbdN to an NBDServer's
// socket (NBD_CMD_CONNECT over netlink) is a third way to get a block
// device; it needs nothing from the server beyond what clients use today.
package blockdev

import (
	"errors"
	"fmt"
)

// Device is what blockdev exposes. Implementations are safe for concurrent use.
//
// blockdev calls ReadAt, WriteAt and Unmap only with offsets and lengths that
// are multiples of BlockSize and that lie within Size.
type Device interface {
	// ReadAt and WriteAt follow io.ReaderAt and io.WriterAt: a count short
	// of len(p) comes with an error.
	ReadAt(p []byte, off int64) (int, error)
	WriteAt(p []byte, off int64) (int, error)
	// Sync makes every write completed before the call durable
	// (SYNCHRONIZE CACHE). It covers writes made through any connection.
	Sync() error
	// Unmap discards a range (UNMAP). Later reads of the range must
	// return zeroes: NBD_CMD_WRITE_ZEROES and fallocate(PUNCH_HOLE) are
	// served with it.
	Unmap(off, length int64) error
	// Size is the capacity in bytes, a multiple of BlockSize.
	Size() int64
	// BlockSize is the logical block size in bytes: a power of two
	// from 512 to 65536.
	BlockSize() int
}

// FUAWriter is implemented by devices that can make a single write durable
// more cheaply than a write followed by Sync (WRITE with the FUA bit).
type FUAWriter interface {
	WriteAtFUA(p []byte, off int64) (int, error)
}

// ReadOnlyDevice is implemented by devices that may refuse writes. When
// ReadOnly reports true, the front ends advertise a read-only device and
// fail writes without calling the Device.
type ReadOnlyDevice interface {
	ReadOnly() bool
}

// isReadOnly reports whether dev declares itself read-only.
func isReadOnly(dev Device) bool {
	ro, ok := dev.(ReadOnlyDevice)
	return ok && ro.ReadOnly()
}

// checkDevice rejects geometry that the front ends cannot serve, so that
// a broken Device fails at export time rather than on the first I/O.
func checkDevice(dev Device) error {
	if dev == nil {
		return errors.New("blockdev: nil device")
	}
	bs := dev.BlockSize()
	if bs < 512 || bs > 65536 || bs&(bs-1) != 0 {
		return fmt.Errorf("blockdev: block size %d is not a power of two from 512 to 65536", bs)
	}
	size := dev.Size()
	if size <= 0 || size%int64(bs) != 0 {
		return fmt.Errorf("blockdev: device size %d is not a positive multiple of the block size %d", size, bs)
	}
	return nil
}

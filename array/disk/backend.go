package disk

import "io"

// Backend is the storage behind a Disk: a flat array of bytes. The lab's
// thin, paged, multi-member volumes implement it, and FileBackend keeps
// the bytes in a sparse file.
//
// ReadAt and WriteAt are called concurrently for different (and, without a
// COMPARE AND WRITE in flight, possibly overlapping) ranges; they must be
// safe for that, as os.File is.
type Backend interface {
	io.ReaderAt
	io.WriterAt
	// Size is the number of bytes the backend holds.
	Size() int64
	// Sync makes everything written so far durable.
	Sync() error
	// Unmap deallocates a range; afterwards it must read back as zeroes
	// (the disk reports LBPRZ).
	Unmap(off, length int64) error
}

// ZeroWriter is a Backend that writes zeroes faster than WriteAt would,
// without a buffer: WRITE SAME of a zero block uses it.
type ZeroWriter interface {
	WriteZeroes(off, length int64) error
}

// Resizer is a Backend that can change its size; Disk.Resize uses it.
type Resizer interface {
	Resize(size int64) error
}

// AllocationMapper is a Backend that knows which ranges hold data, for
// GET LBA STATUS. Allocation reports whether the byte at off is mapped
// (holds data) and how many bytes from off share that state. A Backend
// without it reports everything mapped.
type AllocationMapper interface {
	Allocation(off int64) (mapped bool, length int64, err error)
}

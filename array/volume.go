package array

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/hitkit/hitkit/array/disk"
	"golang.org/x/sys/unix"
)

// Volume holds a volume's bytes, spread page by page over its members:
// each member keeps the pages it owns in its own sparse file, at the
// page's natural offset, so unwritten and unmapped pages cost no space.
// Volume is the disk.Backend under the volume's one disk.Disk.
type Volume struct {
	name string

	// mu excludes I/O (read-locked) from Resize and Close (locked).
	mu    sync.RWMutex
	pages PageMap
	files memberFiles
	snaps snapshotSet // copy-on-write snapshots (snapshot.go)
}

// memberFile is one member's share of a volume. dirty says whether it
// has been written since its last Sync, so that Sync only pays for the
// files a command touched.
type memberFile struct {
	*disk.FileBackend
	path  string
	dirty atomic.Bool
}

// markDirty records a change that the next Sync must make durable. It
// comes after the change: a Sync that clears the flag first then syncs
// the file covers every change made before it, and a change that lands
// after the clearing sets the flag again for the next Sync.
func (f *memberFile) markDirty() { f.dirty.Store(true) }

var (
	_ disk.Backend          = (*Volume)(nil)
	_ disk.Resizer          = (*Volume)(nil)
	_ disk.ZeroWriter       = (*Volume)(nil)
	_ disk.AllocationMapper = (*Volume)(nil)
)

// volumeFile is where member keeps its pages of volume name.
func volumeFile(dir string, member int, name string) string {
	return filepath.Join(dir, "members", fmt.Sprint(member), "volumes", name+".data")
}

// OpenVolume opens volume name's member files under dir, creating the
// missing ones and growing any that are shorter than pages.Size. A thick
// volume has its pages allocated up front.
func OpenVolume(dir, name string, pages PageMap, thick bool) (*Volume, error) {
	if err := pages.validate(); err != nil {
		return nil, fmt.Errorf("volume %s: %w", name, err)
	}
	files, err := openMemberFiles(pages, func(m int) string { return volumeFile(dir, m, name) })
	if err != nil {
		return nil, fmt.Errorf("volume %s: %w", name, err)
	}
	v := &Volume{name: name, pages: pages, files: files}
	if err := v.snaps.open(dir, name); err != nil {
		v.Close()
		return nil, fmt.Errorf("volume %s: snapshots: %w", name, err)
	}
	if thick {
		if err := v.allocate(); err != nil {
			v.Close()
			return nil, fmt.Errorf("volume %s: %w", name, err)
		}
	}
	return v, nil
}

func openMemberFile(path string, size int64) (*memberFile, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	fb, err := disk.OpenFile(path)
	if errors.Is(err, os.ErrNotExist) {
		fb, err = disk.CreateFile(path, size)
	}
	if err != nil {
		return nil, err
	}
	if fb.Size() < size {
		if err := fb.Resize(size); err != nil {
			fb.Close()
			return nil, err
		}
	}
	return &memberFile{FileBackend: fb, path: path}, nil
}

// allocate reserves space for every page in its owner's file.
func (v *Volume) allocate() error {
	return v.pages.Split(0, v.pages.Size, func(e Extent) error {
		return v.files[e.Member].allocate(e.Off, e.Len)
	})
}

func (f *memberFile) allocate(off, length int64) error {
	fd, err := unix.Open(f.path, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return unix.Fallocate(fd, unix.FALLOC_FL_KEEP_SIZE, off, length)
}

// allocated is the space the file takes on disk.
func (f *memberFile) allocated() int64 {
	var st unix.Stat_t
	if unix.Stat(f.path, &st) != nil {
		return 0
	}
	return st.Blocks * 512
}

// Name is the volume's name.
func (v *Volume) Name() string { return v.name }

// PageMap returns which member holds which page.
func (v *Volume) PageMap() PageMap {
	v.mu.RLock()
	defer v.mu.RUnlock()
	pm := v.pages
	pm.Members = append([]int(nil), pm.Members...)
	return pm
}

// Size is the volume's size in bytes.
func (v *Volume) Size() int64 {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.pages.Size
}

// ReadAt reads from the owners of the pages in range. Like a file, it
// returns io.EOF when it stops short at the end of the volume.
func (v *Volume) ReadAt(p []byte, off int64) (int, error) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	n, err := v.clip(len(p), off)
	if n == 0 {
		return 0, err
	}
	if err := readPages(v.pages, v.files, p[:n], off); err != nil {
		return 0, err
	}
	return int(n), err
}

// WriteAt writes each page's part to its owner's file. Writing past the
// end of the volume is an error: volumes grow only by Resize.
func (v *Volume) WriteAt(p []byte, off int64) (int, error) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	if n, err := v.clip(len(p), off); err != nil || n < int64(len(p)) {
		return 0, fmt.Errorf("volume %s: write of %d bytes at %d is past the end (%d)", v.name, len(p), off, v.pages.Size)
	}
	if err := v.preserve(off, int64(len(p))); err != nil {
		return 0, fmt.Errorf("volume %s: %w", v.name, err)
	}
	err := v.pages.Split(off, int64(len(p)), func(e Extent) error {
		f := v.files[e.Member]
		_, err := f.WriteAt(p[e.Off-off:e.Off-off+e.Len], e.Off)
		f.markDirty()
		return err
	})
	if err != nil {
		return 0, err
	}
	return len(p), nil
}

// clip bounds an access of length bytes at off to the volume.
func (v *Volume) clip(length int, off int64) (int64, error) {
	if len(v.files) == 0 {
		return 0, fmt.Errorf("volume %s is closed", v.name)
	}
	if off < 0 {
		return 0, fmt.Errorf("volume %s: negative offset %d", v.name, off)
	}
	if off >= v.pages.Size {
		return 0, io.EOF
	}
	if rest := v.pages.Size - off; int64(length) > rest {
		return rest, io.EOF
	}
	return int64(length), nil
}

// Unmap punches holes in the owners' files; the range reads back as
// zeroes and stops taking space.
func (v *Volume) Unmap(off, length int64) error {
	v.mu.RLock()
	defer v.mu.RUnlock()
	if off < 0 || length < 0 || off+length > v.pages.Size {
		return fmt.Errorf("volume %s: unmap of %d bytes at %d is out of range", v.name, length, off)
	}
	if err := v.preserve(off, length); err != nil {
		return fmt.Errorf("volume %s: %w", v.name, err)
	}
	return v.pages.Split(off, length, func(e Extent) error {
		f := v.files[e.Member]
		err := f.Unmap(e.Off, e.Len)
		f.markDirty()
		return err
	})
}

// WriteZeroes is Unmap: a hole is the cheapest zeroes, and keeps the
// volume thin.
func (v *Volume) WriteZeroes(off, length int64) error { return v.Unmap(off, length) }

// Sync makes the member files written since the last Sync durable,
// after the snapshots' preserved data and bitmaps.
func (v *Volume) Sync() error {
	v.mu.RLock()
	defer v.mu.RUnlock()
	if err := v.snaps.sync(); err != nil {
		return fmt.Errorf("volume %s: snapshots: %w", v.name, err)
	}
	return v.files.sync()
}

// Resize changes the volume's size; the member files follow. Shrinking
// discards the pages past the new end; the group only shrinks a volume
// when asked to explicitly.
func (v *Volume) Resize(size int64) error {
	if size <= 0 || size%512 != 0 {
		return fmt.Errorf("volume %s: size %d is not a positive multiple of 512", v.name, size)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if err := v.preserveShrink(size); err != nil {
		return fmt.Errorf("volume %s: %w", v.name, err)
	}
	for _, f := range v.files {
		if err := f.Resize(size); err != nil {
			return fmt.Errorf("volume %s: %w", v.name, err)
		}
		f.markDirty()
	}
	v.pages.Size = size
	return nil
}

// maxAllocationPages bounds how far Allocation walks to merge pages in
// the same state: GET LBA STATUS may report a shorter run than exists.
const maxAllocationPages = 1024

// Allocation reports whether the byte at off holds data, and how many
// bytes from off share that state, walking across pages (and so across
// member files) while the state holds.
func (v *Volume) Allocation(off int64) (bool, int64, error) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	if off < 0 || off >= v.pages.Size {
		return false, 0, fmt.Errorf("volume %s: offset %d past the end (%d)", v.name, off, v.pages.Size)
	}
	mapped, total := false, int64(0)
	for i := 0; i < maxAllocationPages && off < v.pages.Size; i++ {
		m, n, err := v.pageAllocation(off)
		if err != nil {
			return mapped, total, err
		}
		if i > 0 && m != mapped {
			break
		}
		mapped, total, off = m, total+n, off+n
		if off%v.pages.PageSize != 0 {
			break // the state changed inside the page
		}
	}
	return mapped, total, nil
}

// pageAllocation is Allocation within the page holding off.
func (v *Volume) pageAllocation(off int64) (bool, int64, error) {
	end := min((off/v.pages.PageSize+1)*v.pages.PageSize, v.pages.Size)
	mapped, n, err := v.files[v.pages.OwnerAt(off)].Allocation(off)
	return mapped, min(n, end-off), err
}

// AllocatedBytes is the space the volume takes in each member's file.
func (v *Volume) AllocatedBytes() map[int]int64 {
	v.mu.RLock()
	defer v.mu.RUnlock()
	out := map[int]int64{}
	for m, f := range v.files {
		out[m] = f.allocated()
	}
	return out
}

// Close syncs and closes the member files.
func (v *Volume) Close() error {
	err := v.Sync()
	v.mu.Lock()
	defer v.mu.Unlock()
	return errors.Join(err, v.files.close(), v.snaps.close())
}

package array

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"os"
	"path/filepath"

	"github.com/hitkit/hitkit/array/disk"
)

// SnapshotChunk is the unit of copy-on-write: the first write to a chunk
// after a snapshot copies the whole chunk's old contents into the
// snapshot's store. It is also the granularity of changed-block lists.
const SnapshotChunk = 64 << 10

// ErrReserveFull says that a write, a resize or a new snapshot needs more
// snapshot reserve than the volume has, under the refuse policy. A write
// refused for it fails with DATA PROTECT, SPACE ALLOCATION FAILED WRITE
// PROTECT.
var ErrReserveFull = fmt.Errorf("snapshot reserve is full (%w)", disk.ErrSpaceAllocationFailed)

// chunks is how many chunks cover size bytes.
func chunks(size int64) int64 { return (size + SnapshotChunk - 1) / SnapshotChunk }

// chunkRange is the chunks that bytes [off, off+length) touch.
func chunkRange(off, length int64) (first, end int64) {
	if length <= 0 {
		return 0, 0
	}
	return off / SnapshotChunk, (off+length-1)/SnapshotChunk + 1
}

// bitmap says which chunks a snapshot has preserved.
type bitmap []uint64

func newBitmap(n int64) bitmap { return make(bitmap, (n+63)/64) }

func (b bitmap) has(c int64) bool {
	return c >= 0 && c/64 < int64(len(b)) && b[c/64]&(1<<(c%64)) != 0
}

func (b bitmap) set(c int64) { b[c/64] |= 1 << (c % 64) }

func (b bitmap) count() int64 {
	n := 0
	for _, w := range b {
		n += bits.OnesCount64(w)
	}
	return int64(n)
}

// each calls fn for every set chunk, in order.
func (b bitmap) each(fn func(c int64)) {
	for i, w := range b {
		for w != 0 {
			t := bits.TrailingZeros64(w)
			fn(int64(i)*64 + int64(t))
			w &^= 1 << t
		}
	}
}

func (b bitmap) marshal() []byte {
	out := make([]byte, 8*len(b))
	for i, w := range b {
		binary.LittleEndian.PutUint64(out[8*i:], w)
	}
	return out
}

// readBitmap loads a bitmap file for n chunks; a missing file is an
// empty bitmap (the snapshot had preserved nothing durable yet).
func readBitmap(path string, n int64) (bitmap, error) {
	b := newBitmap(n)
	raw, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return b, nil
	}
	if err != nil {
		return nil, err
	}
	if len(raw) != 8*len(b) {
		return nil, fmt.Errorf("%s: %d bytes, want %d for %d chunks", path, len(raw), 8*len(b), n)
	}
	for i := range b {
		b[i] = binary.LittleEndian.Uint64(raw[8*i:])
	}
	return b, nil
}

// chunkStore holds a snapshot's preserved chunks, spread over members by
// the page map the snapshot was taken with (not the volume's current
// one): each member's sparse file holds the chunks of its pages at their
// natural offsets, so rebalancing the live volume never moves them.
type chunkStore struct {
	pages PageMap
	files memberFiles
}

// snapshotDataFile is where member keeps its part of a snapshot's store.
func snapshotDataFile(dir string, member int, volume, snap string) string {
	return filepath.Join(snapshotDataDir(dir, member, volume), snap+".data")
}

func snapshotDataDir(dir string, member int, volume string) string {
	return filepath.Join(dir, "members", fmt.Sprint(member), "snapshots", volume)
}

func openChunkStore(dir, volume, snap string, pages PageMap) (*chunkStore, error) {
	files, err := openMemberFiles(pages, func(m int) string { return snapshotDataFile(dir, m, volume, snap) })
	if err != nil {
		return nil, fmt.Errorf("snapshot %s of %s: %w", snap, volume, err)
	}
	return &chunkStore{pages: pages, files: files}, nil
}

// readAt fills p from the store; bytes never written read as zeroes.
func (s *chunkStore) readAt(p []byte, off int64) error {
	return readPages(s.pages, s.files, p, off)
}

// writeAt stores p at off; an all-zero p punches a hole instead, which
// reads back the same and keeps the store thin.
func (s *chunkStore) writeAt(p []byte, off int64) error {
	return writePages(s.pages, s.files, p, off)
}

// readPages fills p from the member files that pages spreads [off,
// off+len(p)) over, a volume's or a snapshot store's; bytes past a
// file's end read as zeroes.
func readPages(pages PageMap, files memberFiles, p []byte, off int64) error {
	return pages.Split(off, int64(len(p)), func(e Extent) error {
		buf := p[e.Off-off : e.Off-off+e.Len]
		got, err := files[e.Member].ReadAt(buf, e.Off)
		if errors.Is(err, io.EOF) {
			clear(buf[got:])
			err = nil
		}
		return err
	})
}

// writePages writes p over the member files that pages spreads it over,
// punching holes instead when p is all zeroes.
func writePages(pages PageMap, files memberFiles, p []byte, off int64) error {
	zero := allZero(p)
	return pages.Split(off, int64(len(p)), func(e Extent) error {
		f := files[e.Member]
		defer f.markDirty()
		if zero {
			return f.Unmap(e.Off, e.Len)
		}
		_, err := f.WriteAt(p[e.Off-off:e.Off-off+e.Len], e.Off)
		return err
	})
}

func (s *chunkStore) sync() error { return s.files.sync() }

func (s *chunkStore) close() error { return s.files.close() }

// memberFiles are the files of a volume, or of a snapshot's store, by
// member number: one per member its page map names.
type memberFiles map[int]*memberFile

// openMemberFiles opens (or creates) the file at path(m) of each member
// of pages, each at least pages.Size long.
func openMemberFiles(pages PageMap, path func(member int) string) (memberFiles, error) {
	files := memberFiles{}
	for _, m := range pages.Members {
		if _, ok := files[m]; ok {
			continue
		}
		f, err := openMemberFile(path(m), pages.Size)
		if err != nil {
			files.close()
			return nil, err
		}
		files[m] = f
	}
	return files, nil
}

// sync makes the files written since their last sync durable.
func (fs memberFiles) sync() error {
	var errs []error
	for _, f := range fs {
		if !f.dirty.Swap(false) {
			continue
		}
		if err := f.Sync(); err != nil {
			f.dirty.Store(true) // still not durable: try again next time
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// close closes every file and forgets it.
func (fs memberFiles) close() error {
	var errs []error
	for m, f := range fs {
		errs = append(errs, f.Close())
		delete(fs, m)
	}
	return errors.Join(errs...)
}

// remove closes the store and deletes its files.
func (s *chunkStore) remove() error {
	paths := make([]string, 0, len(s.files))
	for _, f := range s.files {
		paths = append(paths, f.path)
	}
	err := s.close()
	for _, p := range paths {
		if rerr := os.Remove(p); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
			err = errors.Join(err, rerr)
		}
	}
	return err
}

func allZero(p []byte) bool {
	for len(p) >= 8 {
		if binary.LittleEndian.Uint64(p) != 0 {
			return false
		}
		p = p[8:]
	}
	for _, b := range p {
		if b != 0 {
			return false
		}
	}
	return true
}

// The live volume's bytes, without Volume.mu: the copy-on-write code runs
// inside WriteAt, Unmap and Resize, which already hold it.

// readLive fills p from the live volume; bytes past its end read as
// zeroes.
func (v *Volume) readLive(p []byte, off int64) error {
	n := max(min(int64(len(p)), v.pages.Size-off), 0)
	clear(p[n:])
	return readPages(v.pages, v.files, p[:n], off)
}

// writeLive writes p to the live volume, punching holes for zeroes.
func (v *Volume) writeLive(p []byte, off int64) error {
	return writePages(v.pages, v.files, p, off)
}

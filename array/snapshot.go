package array

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hitkit/hitkit/internal/atomicfile"
)

// A volume's snapshots are copy-on-write. Each snapshot has a bitmap of
// the chunks it has preserved and a store holding them. Snapshot i reads
// chunk c from the oldest snapshot j >= i that preserved c, and from the
// live volume when none did; so only the newest snapshot ever needs a
// chunk preserved before the live volume changes it.
//
// On disk:
//   DIR/snapshots/VOLUME/index.json      the snapshots, oldest first
//   DIR/snapshots/VOLUME/SNAP.bitmap     which chunks SNAP preserved
//   DIR/members/M/snapshots/VOLUME/SNAP.data   member M's part of the store
//
// Locking: Volume.mu, then snapshotSet.mu. Writers of the live volume
// preserve under snapshotSet.mu before writing; readers of a snapshot
// hold it (read-locked) while they choose between a store and the live
// volume and read, so that no write can land in between.

// Snapshot reserve policies (see groupapi).
const (
	ReserveDeleteOldest = "delete-oldest"
	ReserveRefuse       = "refuse"
	// DefaultSnapshotReserve is a new volume's reserve, in percent of its
	// size: room for every chunk to change once.
	DefaultSnapshotReserve = 100
	// MaxSnapshotReserve bounds the reserve percentage.
	MaxSnapshotReserve = 200
	// maxSnapshots bounds how many snapshots a volume keeps.
	maxSnapshots = 512
)

// Errors that the management API maps to HTTP statuses.
var (
	ErrSnapshotNotFound = errors.New("no such snapshot")
	ErrSnapshotExists   = errors.New("snapshot already exists")
	ErrNoReserve        = errors.New("the volume's snapshot reserve is 0%; raise it with PUT .../snapshot-policy")
	// ErrSnapshotOrder refuses two snapshots given newer first.
	ErrSnapshotOrder = errors.New("give the older one as from")
)

// SnapshotInfo describes one snapshot.
type SnapshotInfo struct {
	Name        string    `json:"name"`
	Volume      string    `json:"volume"`
	Description string    `json:"description,omitempty"`
	Created     time.Time `json:"created"`
	Size        int64     `json:"size"`
	Reserve     int64     `json:"reserve_used"`
	Online      bool      `json:"online"`
	ReadWrite   bool      `json:"read_write"`
	IQN         string    `json:"iqn"`
	Serial      string    `json:"serial"`
}

// SnapshotEvent is something the snapshots did by themselves, such as
// deleting the oldest one when the reserve filled up.
type SnapshotEvent struct {
	Kind     string // snapshot-reserve-full, snapshot-deleted
	Volume   string
	Snapshot string
	Detail   string
}

// snapshotMeta is what index.json keeps of a snapshot.
type snapshotMeta struct {
	Name        string    `json:"name"`
	Description string    `json:"description,omitempty"`
	Created     time.Time `json:"created"`
	Serial      string    `json:"serial"`
	// Pages is the volume's page map when the snapshot was taken; its
	// Size is the snapshot's size, and its members hold the store.
	Pages     PageMap `json:"pages"`
	Online    bool    `json:"online"`
	ReadWrite bool    `json:"read_write"`
}

type snapshot struct {
	meta  snapshotMeta
	bits  bitmap
	n     int64       // chunks preserved
	dirty atomic.Bool // bits changed since the bitmap file was written
	store *chunkStore
}

func (s *snapshot) size() int64            { return s.meta.Pages.Size }
func (s *snapshot) covers(c int64) bool    { return c*SnapshotChunk < s.size() }
func (s *snapshot) chunkLen(c int64) int64 { return min(SnapshotChunk, s.size()-c*SnapshotChunk) }
func (s *snapshot) reserve() int64         { return s.n * SnapshotChunk }

// mark records chunk c as preserved, after its data is in the store.
func (s *snapshot) mark(c int64) {
	if !s.bits.has(c) {
		s.bits.set(c)
		s.n++
		s.dirty.Store(true)
	}
}

// snapshotSet is one volume's snapshots, oldest first.
type snapshotSet struct {
	dir, volume string // the group's directory; the volume's name

	mu             sync.RWMutex
	list           []*snapshot
	reservePercent int
	whenFull       string
	fullReported   bool // a refusal was reported and nothing was freed since
	notify         func(SnapshotEvent)
}

func snapshotMetaDir(dir, volume string) string { return filepath.Join(dir, "snapshots", volume) }

func (s *snapshotSet) indexFile() string {
	return filepath.Join(snapshotMetaDir(s.dir, s.volume), "index.json")
}

func (s *snapshotSet) bitmapFile(snap string) string {
	return filepath.Join(snapshotMetaDir(s.dir, s.volume), snap+".bitmap")
}

// open loads the volume's snapshots from dir.
func (s *snapshotSet) open(dir, volume string) error {
	s.dir, s.volume = dir, volume
	s.reservePercent, s.whenFull = DefaultSnapshotReserve, ReserveDeleteOldest
	raw, err := os.ReadFile(s.indexFile())
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var metas []snapshotMeta
	if err := json.Unmarshal(raw, &metas); err != nil {
		return fmt.Errorf("%s: %w", s.indexFile(), err)
	}
	for _, m := range metas {
		if err := m.Pages.validate(); err != nil {
			s.close()
			return fmt.Errorf("%s: snapshot %s: %w", s.indexFile(), m.Name, err)
		}
		bits, err := readBitmap(s.bitmapFile(m.Name), chunks(m.Pages.Size))
		if err != nil {
			s.close()
			return err
		}
		store, err := openChunkStore(dir, volume, m.Name, m.Pages)
		if err != nil {
			s.close()
			return err
		}
		s.list = append(s.list, &snapshot{meta: m, bits: bits, n: bits.count(), store: store})
	}
	return nil
}

// saveIndexLocked writes index.json; the caller holds mu.
func (s *snapshotSet) saveIndexLocked() error {
	metas := make([]snapshotMeta, 0, len(s.list))
	for _, sn := range s.list {
		metas = append(metas, sn.meta)
	}
	b, err := json.MarshalIndent(metas, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(snapshotMetaDir(s.dir, s.volume), 0o700); err != nil {
		return err
	}
	return atomicfile.Write(s.indexFile(), append(b, '\n'), 0o600)
}

func (s *snapshotSet) index(name string) int {
	return slices.IndexFunc(s.list, func(sn *snapshot) bool { return sn.meta.Name == name })
}

func (s *snapshotSet) find(name string) (int, error) {
	if i := s.index(name); i >= 0 {
		return i, nil
	}
	return -1, fmt.Errorf("volume %s: %w %q", s.volume, ErrSnapshotNotFound, name)
}

func (s *snapshotSet) newest() *snapshot {
	if len(s.list) == 0 {
		return nil
	}
	return s.list[len(s.list)-1]
}

func (s *snapshotSet) used() int64 {
	var n int64
	for _, sn := range s.list {
		n += sn.reserve()
	}
	return n
}

func (s *snapshotSet) reserveBytes(volumeSize int64) int64 {
	return volumeSize * int64(s.reservePercent) / 100
}

// holder is the snapshot whose store holds snapshot i's chunk c: the
// oldest j >= i that preserved it; nil means the live volume.
func (s *snapshotSet) holder(i int, c int64) *snapshot {
	for _, sn := range s.list[i:] {
		if sn.bits.has(c) {
			return sn
		}
	}
	return nil
}

// missing lists the chunks of [off, off+length) that the newest snapshot
// covers and has not preserved.
func (s *snapshotSet) missing(off, length int64) []int64 {
	n := s.newest()
	if n == nil {
		return nil
	}
	first, end := chunkRange(off, length)
	end = min(end, chunks(n.size()))
	var out []int64
	for c := first; c < end; c++ {
		if !n.bits.has(c) {
			out = append(out, c)
		}
	}
	return out
}

// lacks is missing without the list: the check on every write.
func (s *snapshotSet) lacks(off, length int64) bool {
	n := s.newest()
	if n == nil {
		return false
	}
	first, end := chunkRange(off, length)
	for c := first; c < min(end, chunks(n.size())); c++ {
		if !n.bits.has(c) {
			return true
		}
	}
	return false
}

// preservedIn is the chunks below n that snapshots i to j-1 preserved:
// the ones whose contents may differ between snapshot i and snapshot j,
// or the live volume when j is len(s.list).
func (s *snapshotSet) preservedIn(i, j int, n int64) bitmap {
	out := newBitmap(n)
	for _, sn := range s.list[i:j] {
		sn.bits.each(func(c int64) {
			if c < n {
				out.set(c)
			}
		})
	}
	return out
}

func (s *snapshotSet) emit(ev SnapshotEvent) {
	ev.Volume = s.volume
	if fn := s.notify; fn != nil {
		go fn(ev)
	}
}

// makeRoom frees reserve for need more bytes, as the policy says: delete
// the oldest snapshots (never keep), or refuse.
func (s *snapshotSet) makeRoom(need, volumeSize int64, keep *snapshot) error {
	for len(s.list) > 0 && s.used()+need > s.reserveBytes(volumeSize) {
		oldest := s.list[0]
		if s.whenFull != ReserveDeleteOldest || oldest == keep {
			if !s.fullReported {
				s.fullReported = true
				s.emit(SnapshotEvent{Kind: "snapshot-reserve-full", Detail: fmt.Sprintf(
					"refused a write that needs %d more bytes of snapshot reserve (%d of %d used); policy %s",
					need, s.used(), s.reserveBytes(volumeSize), s.whenFull)})
			}
			return ErrReserveFull
		}
		if err := s.dropLocked(0); err != nil {
			return err
		}
		s.emit(SnapshotEvent{Kind: "snapshot-reserve-full", Snapshot: oldest.meta.Name,
			Detail: fmt.Sprintf("deleted the oldest snapshot %s to make room (policy %s)", oldest.meta.Name, s.whenFull)})
		s.emit(SnapshotEvent{Kind: "snapshot-deleted", Snapshot: oldest.meta.Name, Detail: "deleted by the snapshot reserve policy"})
	}
	return nil
}

// dropLocked deletes snapshot i. The chunks it preserved that the next
// older snapshot lacks move there first, since that one was reading them
// from i's store.
func (s *snapshotSet) dropLocked(i int) error {
	sn := s.list[i]
	if i > 0 {
		prev := s.list[i-1]
		buf := make([]byte, SnapshotChunk)
		var err error
		sn.bits.each(func(c int64) {
			if err != nil || prev.bits.has(c) || !prev.covers(c) {
				return
			}
			b := buf[:prev.chunkLen(c)]
			if err = sn.store.readAt(b, c*SnapshotChunk); err == nil {
				err = prev.store.writeAt(b, c*SnapshotChunk)
			}
			if err == nil {
				prev.mark(c)
			}
		})
		if err != nil {
			return fmt.Errorf("volume %s: deleting snapshot %s: %w", s.volume, sn.meta.Name, err)
		}
	}
	s.list = slices.Delete(s.list, i, i+1)
	s.fullReported = false
	err := s.saveIndexLocked()
	err = errors.Join(err, sn.store.remove())
	if rerr := os.Remove(s.bitmapFile(sn.meta.Name)); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
		err = errors.Join(err, rerr)
	}
	return err
}

// sync makes the snapshots' stores, then their bitmaps, durable. It runs
// before the live files are synced, so that a durable write to the live
// volume never lacks the durable old contents a snapshot needs.
func (s *snapshotSet) sync() error {
	s.mu.RLock() // no chunk is marked while the bitmaps are written
	defer s.mu.RUnlock()
	var errs []error
	for _, sn := range s.list {
		if err := sn.store.sync(); err != nil {
			errs = append(errs, err)
			continue
		}
		if sn.dirty.Swap(false) {
			if err := atomicfile.Write(s.bitmapFile(sn.meta.Name), sn.bits.marshal(), 0o600); err != nil {
				sn.dirty.Store(true)
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

func (s *snapshotSet) close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for _, sn := range s.list {
		errs = append(errs, sn.store.close())
	}
	s.list = nil
	return errors.Join(errs...)
}

// preserve copies the old contents of the chunks of [off, off+length)
// that the newest snapshot still reads from the live volume into its
// store, before a write, unmap or shrink changes them. The caller holds
// Volume.mu.
func (v *Volume) preserve(off, length int64) error {
	if len(v.files) == 0 {
		return fmt.Errorf("volume %s is closed", v.name)
	}
	s := &v.snaps
	s.mu.RLock()
	need := s.lacks(off, length)
	s.mu.RUnlock()
	if !need {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return v.preserveLocked(off, length, false)
}

// preserveLocked is preserve under snapshotSet.mu. force skips the
// reserve check (a restore must not stop half-way).
func (v *Volume) preserveLocked(off, length int64, force bool) error {
	s := &v.snaps
	need := s.missing(off, length)
	if len(need) == 0 {
		return nil
	}
	if !force {
		if err := s.makeRoom(int64(len(need))*SnapshotChunk, v.pages.Size, nil); err != nil {
			return err
		}
		if need = s.missing(off, length); len(need) == 0 {
			return nil
		}
	}
	newest := s.newest()
	buf := make([]byte, SnapshotChunk)
	for _, c := range need {
		b := buf[:newest.chunkLen(c)]
		if err := v.readLive(b, c*SnapshotChunk); err != nil {
			return err
		}
		if err := newest.store.writeAt(b, c*SnapshotChunk); err != nil {
			return err
		}
		newest.mark(c)
	}
	return nil
}

// preserveShrink preserves what a shrink to size discards.
func (v *Volume) preserveShrink(size int64) error {
	if size >= v.pages.Size {
		return nil
	}
	v.snaps.mu.Lock()
	defer v.snaps.mu.Unlock()
	return v.preserveLocked(size, v.pages.Size-size, false)
}

// SetSnapshotPolicy sets the reserve (percent of the volume's size) and
// what happens when it is full.
func (v *Volume) SetSnapshotPolicy(percent int, whenFull string) error {
	if percent < 0 || percent > MaxSnapshotReserve {
		return fmt.Errorf("snapshot reserve %d%%: give 0 to %d", percent, MaxSnapshotReserve)
	}
	if whenFull != ReserveDeleteOldest && whenFull != ReserveRefuse {
		return fmt.Errorf("snapshot policy %q: use %q or %q", whenFull, ReserveDeleteOldest, ReserveRefuse)
	}
	v.snaps.mu.Lock()
	defer v.snaps.mu.Unlock()
	v.snaps.reservePercent, v.snaps.whenFull = percent, whenFull
	v.snaps.fullReported = false
	return nil
}

// SnapshotPolicy returns the reserve percentage, the policy, and the
// bytes of reserve in use.
func (v *Volume) SnapshotPolicy() (percent int, whenFull string, used int64) {
	v.snaps.mu.RLock()
	defer v.snaps.mu.RUnlock()
	return v.snaps.reservePercent, v.snaps.whenFull, v.snaps.used()
}

// notifySnapshots sets the function that hears about snapshot events.
func (v *Volume) notifySnapshots(fn func(SnapshotEvent)) {
	v.snaps.mu.Lock()
	defer v.snaps.mu.Unlock()
	v.snaps.notify = fn
}

// CreateSnapshot takes a crash-consistent snapshot: it waits for the
// writes in flight, and every write after it preserves what it changes.
func (v *Volume) CreateSnapshot(name, description string) (SnapshotInfo, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	s := &v.snaps
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.reservePercent == 0:
		return SnapshotInfo{}, fmt.Errorf("volume %s: %w", v.name, ErrNoReserve)
	case s.index(name) >= 0:
		return SnapshotInfo{}, fmt.Errorf("volume %s: %w: %q", v.name, ErrSnapshotExists, name)
	case len(s.list) >= maxSnapshots:
		return SnapshotInfo{}, fmt.Errorf("volume %s has %d snapshots, the most it keeps; delete some first", v.name, maxSnapshots)
	case s.whenFull == ReserveRefuse && s.used()+SnapshotChunk > s.reserveBytes(v.pages.Size):
		// Full: not even one more chunk fits.
		return SnapshotInfo{}, fmt.Errorf("volume %s: %w: %d of %d bytes used; delete snapshots or raise the reserve", v.name, ErrReserveFull, s.used(), s.reserveBytes(v.pages.Size))
	}
	pages := v.pages
	pages.Members = slices.Clone(pages.Members)
	meta := snapshotMeta{Name: name, Description: description, Created: time.Now().UTC(), Serial: newSerial("", 32), Pages: pages}
	store, err := openChunkStore(s.dir, v.name, name, pages)
	if err != nil {
		return SnapshotInfo{}, err
	}
	sn := &snapshot{meta: meta, bits: newBitmap(chunks(pages.Size)), store: store}
	// The empty bitmap is written, though a missing one reads as empty
	// too, to replace any that a crash left behind while deleting a
	// snapshot of the same name.
	err = os.MkdirAll(snapshotMetaDir(s.dir, v.name), 0o700)
	if err == nil {
		err = atomicfile.Write(s.bitmapFile(name), sn.bits.marshal(), 0o600)
	}
	if err == nil {
		s.list = append(s.list, sn)
		if err = s.saveIndexLocked(); err != nil {
			s.list = s.list[:len(s.list)-1]
		}
	}
	if err != nil {
		store.remove()
		os.Remove(s.bitmapFile(name))
		return SnapshotInfo{}, fmt.Errorf("volume %s: snapshot %s: %w", v.name, name, err)
	}
	return v.infoLocked(sn), nil
}

func (v *Volume) infoLocked(sn *snapshot) SnapshotInfo {
	m := sn.meta
	return SnapshotInfo{
		Name: m.Name, Volume: v.name, Description: m.Description, Created: m.Created, Size: m.Pages.Size,
		Reserve: sn.reserve(), Online: m.Online, ReadWrite: m.ReadWrite, Serial: m.Serial,
	}
}

// Snapshots lists the volume's snapshots, oldest first.
func (v *Volume) Snapshots() []SnapshotInfo {
	v.snaps.mu.RLock()
	defer v.snaps.mu.RUnlock()
	out := make([]SnapshotInfo, 0, len(v.snaps.list))
	for _, sn := range v.snaps.list {
		out = append(out, v.infoLocked(sn))
	}
	return out
}

// Snapshot describes one snapshot.
func (v *Volume) Snapshot(name string) (SnapshotInfo, error) {
	v.snaps.mu.RLock()
	defer v.snaps.mu.RUnlock()
	i, err := v.snaps.find(name)
	if err != nil {
		return SnapshotInfo{}, err
	}
	return v.infoLocked(v.snaps.list[i]), nil
}

// setSnapshotState records whether a snapshot is online and writable.
func (v *Volume) setSnapshotState(name string, online, readWrite bool) error {
	s := &v.snaps
	s.mu.Lock()
	defer s.mu.Unlock()
	i, err := s.find(name)
	if err != nil {
		return err
	}
	m := &s.list[i].meta
	old := *m
	m.Online, m.ReadWrite = online, readWrite
	if err := s.saveIndexLocked(); err != nil {
		*m = old
		return err
	}
	return nil
}

// DeleteSnapshot deletes a snapshot, keeping the others' contents.
func (v *Volume) DeleteSnapshot(name string) error {
	s := &v.snaps
	s.mu.Lock()
	defer s.mu.Unlock()
	i, err := s.find(name)
	if err != nil {
		return err
	}
	return s.dropLocked(i)
}

// ReadSnapshot reads a snapshot's bytes, as the volume held them when the
// snapshot was taken (plus any writes to the snapshot itself).
func (v *Volume) ReadSnapshot(name string, p []byte, off int64) (int, error) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	s := &v.snaps
	s.mu.RLock()
	defer s.mu.RUnlock()
	i, err := s.find(name)
	if err != nil {
		return 0, err
	}
	size := s.list[i].size()
	if off < 0 {
		return 0, fmt.Errorf("snapshot %s: negative offset %d", name, off)
	}
	if off >= size {
		return 0, io.EOF
	}
	n := min(int64(len(p)), size-off)
	if err := v.readSnapshotLocked(i, p[:n], off); err != nil {
		return 0, err
	}
	if n < int64(len(p)) {
		return int(n), io.EOF
	}
	return int(n), nil
}

// readSnapshotLocked reads snapshot i's view of [off, off+len(p)), chunk
// by chunk, from the stores that hold them or the live volume.
func (v *Volume) readSnapshotLocked(i int, p []byte, off int64) error {
	for len(p) > 0 {
		c := off / SnapshotChunk
		n := min(int64(len(p)), (c+1)*SnapshotChunk-off)
		var err error
		if h := v.snaps.holder(i, c); h != nil {
			err = h.store.readAt(p[:n], off)
		} else {
			err = v.readLive(p[:n], off)
		}
		if err != nil {
			return err
		}
		p, off = p[n:], off+n
	}
	return nil
}

// WriteSnapshot writes to a snapshot set online read-write. The write
// goes to the snapshot's own store; the next older snapshot first gets
// the chunks it was reading from there, so that its contents stay.
func (v *Volume) WriteSnapshot(name string, p []byte, off int64) (int, error) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	s := &v.snaps
	s.mu.Lock()
	defer s.mu.Unlock()
	i, err := s.find(name)
	if err != nil {
		return 0, err
	}
	sn := s.list[i]
	if off < 0 || off+int64(len(p)) > sn.size() {
		return 0, fmt.Errorf("snapshot %s: write of %d bytes at %d is out of range (%d)", name, len(p), off, sn.size())
	}
	if err := s.makeRoom(v.snapshotWriteNeed(i, off, int64(len(p))), v.pages.Size, sn); err != nil {
		return 0, err
	}
	i = s.index(name)
	first, end := chunkRange(off, int64(len(p)))
	buf := make([]byte, SnapshotChunk)
	for c := first; c < end; c++ {
		if err := v.copyChunkOnWrite(i, c, buf); err != nil {
			return 0, err
		}
	}
	if err := sn.store.writeAt(p, off); err != nil {
		return 0, err
	}
	return len(p), nil
}

// snapshotWriteNeed is the reserve a write to snapshot i takes.
func (v *Volume) snapshotWriteNeed(i int, off, length int64) int64 {
	first, end := chunkRange(off, length)
	var n int64
	for c := first; c < end; c++ {
		n += int64(len(v.snaps.copyTargets(i, c)))
	}
	return n * SnapshotChunk
}

// copyTargets are the snapshots that must get chunk c's current contents
// before a write to snapshot i changes it: the next older snapshot when
// it has not preserved c (it reads c through i), and i itself when it has
// not.
func (s *snapshotSet) copyTargets(i int, c int64) []*snapshot {
	var out []*snapshot
	if i > 0 && s.list[i-1].covers(c) && !s.list[i-1].bits.has(c) {
		out = append(out, s.list[i-1])
	}
	if sn := s.list[i]; !sn.bits.has(c) {
		out = append(out, sn)
	}
	return out
}

// copyChunkOnWrite makes snapshot i own chunk c before a write to it: the
// next older snapshot keeps the current contents, and i's store gets
// them too.
func (v *Volume) copyChunkOnWrite(i int, c int64, buf []byte) error {
	targets := v.snaps.copyTargets(i, c)
	if len(targets) == 0 {
		return nil
	}
	b := buf[:v.snaps.list[i].chunkLen(c)]
	if err := v.readSnapshotLocked(i, b, c*SnapshotChunk); err != nil {
		return err
	}
	for _, t := range targets {
		tb := b[:min(t.chunkLen(c), int64(len(b)))]
		if err := t.store.writeAt(tb, c*SnapshotChunk); err != nil {
			return err
		}
		t.mark(c)
	}
	return nil
}

// ChangedChunks returns the chunks whose contents may differ between
// snapshot from and snapshot to (the live volume when to is ""), and the
// size of to. Chunks past from's size count as changed.
func (v *Volume) ChangedChunks(from, to string) (bitmap, int64, error) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	s := &v.snaps
	s.mu.RLock()
	defer s.mu.RUnlock()
	i, err := s.find(from)
	if err != nil {
		return nil, 0, err
	}
	j, size := len(s.list), v.pages.Size
	if to != "" {
		if j, err = s.find(to); err != nil {
			return nil, 0, err
		}
		if j < i {
			return nil, 0, fmt.Errorf("volume %s: snapshot %s is older than %s; %w", v.name, to, from, ErrSnapshotOrder)
		}
		size = s.list[j].size()
	}
	n := chunks(size)
	out := s.preservedIn(i, j, n)
	for c := s.list[i].size() / SnapshotChunk; c < n; c++ {
		out.set(c)
	}
	return out, size, nil
}

// RestoreSnapshot makes the live volume's size and contents those of a
// snapshot. What it overwrites or cuts off is preserved into the newest
// snapshot, reserve or not, so that every snapshot keeps its contents and
// a restore never stops half-way (nor deletes the snapshot it restores).
// A Disk over the volume needs Resize to the new size afterwards.
func (v *Volume) RestoreSnapshot(name string) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	s := &v.snaps
	s.mu.Lock()
	defer s.mu.Unlock()
	i, err := s.find(name)
	if err != nil {
		return err
	}
	sn := s.list[i]
	if err := v.resizeForRestore(sn.size()); err != nil {
		return fmt.Errorf("volume %s: restoring snapshot %s: %w", v.name, name, err)
	}
	changed := s.preservedIn(i, len(s.list), chunks(sn.size()))
	buf := make([]byte, SnapshotChunk)
	changed.each(func(c int64) {
		if err != nil {
			return
		}
		b := buf[:sn.chunkLen(c)]
		off := c * SnapshotChunk
		if err = v.readSnapshotLocked(i, b, off); err != nil {
			return
		}
		if err = v.preserveLocked(off, int64(len(b)), true); err != nil {
			return
		}
		err = v.writeLive(b, off)
	})
	if err != nil {
		return fmt.Errorf("volume %s: restoring snapshot %s: %w", v.name, name, err)
	}
	return nil
}

// resizeForRestore is Resize under both locks, preserving what a shrink
// cuts off whatever the reserve.
func (v *Volume) resizeForRestore(size int64) error {
	if size == v.pages.Size {
		return nil
	}
	if err := v.preserveLocked(size, max(v.pages.Size-size, 0), true); err != nil {
		return err
	}
	for _, f := range v.files {
		if err := f.Resize(size); err != nil {
			return err
		}
		f.markDirty()
	}
	v.pages.Size = size
	return nil
}

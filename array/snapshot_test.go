package array

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hitkit/hitkit/array/disk"
)

// snapPage is smaller than a chunk, so that one chunk's copy-on-write
// spans several members' files.
const snapPage = 16 << 10

func openSnapVolume(t *testing.T, dir string, size int64) *Volume {
	t.Helper()
	v, err := OpenVolume(dir, "v", PageMap{PageSize: snapPage, Size: size, Members: []int{1, 2, 3}}, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	return v
}

func readAll(t *testing.T, v *Volume) []byte {
	t.Helper()
	b := make([]byte, v.Size())
	if _, err := v.ReadAt(b, 0); err != nil {
		t.Fatal(err)
	}
	return b
}

func readSnap(t *testing.T, v *Volume, name string) []byte {
	t.Helper()
	si, err := v.Snapshot(name)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, si.Size)
	if _, err := v.ReadSnapshot(name, b, 0); err != nil {
		t.Fatal(err)
	}
	return b
}

// firstDiff describes where two byte slices first differ.
func firstDiff(a, b []byte) string {
	if len(a) != len(b) {
		return fmt.Sprintf("lengths %d and %d", len(a), len(b))
	}
	for i := range a {
		if a[i] != b[i] {
			return fmt.Sprintf("first difference at byte %d (chunk %d)", i, i/SnapshotChunk)
		}
	}
	return "equal"
}

// model is what the volume and each snapshot must read back.
type model struct {
	live  []byte
	snaps map[string][]byte
	order []string // oldest first
}

func (m *model) check(t *testing.T, v *Volume, step int) {
	t.Helper()
	if got := readAll(t, v); !bytes.Equal(got, m.live) {
		t.Fatalf("step %d: live volume: %s", step, firstDiff(got, m.live))
	}
	var names []string
	for _, s := range v.Snapshots() {
		names = append(names, s.Name)
	}
	if !slices.Equal(names, m.order) {
		t.Fatalf("step %d: snapshots %v, want %v", step, names, m.order)
	}
	for _, n := range m.order {
		if got := readSnap(t, v, n); !bytes.Equal(got, m.snaps[n]) {
			t.Fatalf("step %d: snapshot %s: %s", step, n, firstDiff(got, m.snaps[n]))
		}
	}
}

func (m *model) dropMissing(v *Volume) {
	have := map[string]bool{}
	for _, s := range v.Snapshots() {
		have[s.Name] = true
	}
	m.order = slices.DeleteFunc(m.order, func(n string) bool {
		if !have[n] {
			delete(m.snaps, n)
			return true
		}
		return false
	})
}

// Random writes, unmaps, resizes, snapshots, deletions of any snapshot,
// writes to snapshots and restores: after every step the live volume and
// every snapshot read back what a plain in-memory model says, and the
// reserve used is what the snapshots report.
func TestSnapshotModel(t *testing.T) {
	for _, tc := range []struct {
		seed    uint64
		reserve int
		policy  string
	}{{1, MaxSnapshotReserve, ReserveDeleteOldest}, {2, MaxSnapshotReserve, ReserveDeleteOldest}, {3, 50, ReserveDeleteOldest}, {4, 60, ReserveRefuse}, {5, 120, ReserveRefuse}} {
		seed := tc.seed
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			const size = 1<<20 + 5*512 // a partial last chunk
			v := openSnapVolume(t, t.TempDir(), size)
			if err := v.SetSnapshotPolicy(tc.reserve, tc.policy); err != nil {
				t.Fatal(err)
			}
			// refused says whether err is the refuse policy at work, which
			// must change nothing.
			refused := func(err error) bool { return tc.policy == ReserveRefuse && errors.Is(err, ErrReserveFull) }
			var refusals int
			rng := rand.New(rand.NewPCG(seed, 99))
			m := &model{live: make([]byte, size), snaps: map[string][]byte{}}
			for step := range 400 {
				switch op := rng.IntN(20); {
				case op < 9: // write
					off := rng.Int64N(int64(len(m.live)))
					n := min(1+rng.Int64N(3*SnapshotChunk), int64(len(m.live))-off)
					p := randomBytes(int(n), rng.Uint64())
					if _, err := v.WriteAt(p, off); refused(err) {
						refusals++
						break
					} else if err != nil {
						t.Fatalf("step %d: write: %v", step, err)
					}
					copy(m.live[off:], p)
				case op < 11: // unmap
					off := rng.Int64N(int64(len(m.live)))
					n := min(1+rng.Int64N(2*SnapshotChunk), int64(len(m.live))-off)
					if err := v.Unmap(off, n); refused(err) {
						refusals++
						break
					} else if err != nil {
						t.Fatalf("step %d: unmap: %v", step, err)
					}
					clear(m.live[off : off+n])
				case op < 14: // snapshot
					name := fmt.Sprintf("s%d", step)
					if _, err := v.CreateSnapshot(name, ""); refused(err) {
						refusals++
						break
					} else if err != nil {
						t.Fatalf("step %d: %v", step, err)
					}
					m.snaps[name] = bytes.Clone(m.live)
					m.order = append(m.order, name)
				case op < 16 && len(m.order) > 0: // delete any snapshot
					i := rng.IntN(len(m.order))
					if err := v.DeleteSnapshot(m.order[i]); err != nil {
						t.Fatalf("step %d: delete %s: %v", step, m.order[i], err)
					}
					delete(m.snaps, m.order[i])
					m.order = slices.Delete(m.order, i, i+1)
				case op < 17 && len(m.order) > 0: // write to a snapshot
					name := m.order[rng.IntN(len(m.order))]
					img := m.snaps[name]
					off := rng.Int64N(int64(len(img)))
					n := min(1+rng.Int64N(SnapshotChunk), int64(len(img))-off)
					p := randomBytes(int(n), rng.Uint64())
					_, err := v.WriteSnapshot(name, p, off)
					switch {
					case errors.Is(err, ErrReserveFull):
						// Refused, or delete-oldest would have to delete
						// the snapshot written to.
						refusals++
					case err != nil:
						t.Fatalf("step %d: write to %s: %v", step, name, err)
					default:
						copy(img[off:], p)
					}
				case op < 18: // resize
					newSize := int64(512 * (1 + rng.IntN(2*size/512)))
					if err := v.Resize(newSize); refused(err) {
						refusals++
						break
					} else if err != nil {
						t.Fatalf("step %d: resize: %v", step, err)
					}
					if newSize < int64(len(m.live)) {
						m.live = m.live[:newSize]
					} else {
						m.live = append(m.live, make([]byte, newSize-int64(len(m.live)))...)
					}
				case op < 20 && len(m.order) > 0: // restore
					name := m.order[rng.IntN(len(m.order))]
					img := m.snaps[name]
					if err := v.RestoreSnapshot(name); err != nil {
						t.Fatalf("step %d: restore %s: %v", step, name, err)
					}
					m.live = bytes.Clone(img)
				}
				m.dropMissing(v) // the policy may have deleted the oldest
				if step%10 == 9 {
					m.check(t, v, step)
				}
				var sum int64
				for _, s := range v.Snapshots() {
					sum += s.Reserve
				}
				if _, _, used := v.SnapshotPolicy(); used != sum {
					t.Fatalf("step %d: reserve used %d, snapshots hold %d", step, used, sum)
				}
			}
			m.check(t, v, -1)
			t.Logf("%d refusals; %d snapshots left", refusals, len(m.order))
		})
	}
}

// Several writers keep writing while snapshots are taken: each snapshot
// holds exactly the writes that completed before it.
func TestSnapshotUnderConcurrentWrites(t *testing.T) {
	const size = 4 << 20
	v := openSnapVolume(t, t.TempDir(), size)
	v.snaps.reservePercent = 1000 // room for every snapshot to keep everything
	var mu sync.Mutex             // orders each write and its shadow copy against snapshots
	shadow := make([]byte, size)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 5))
			for i := 0; i < 100000; i++ {
				select {
				case <-stop:
					return
				default:
				}
				off := rng.Int64N(size - 200<<10)
				p := randomBytes(1+rng.IntN(200<<10), rng.Uint64())
				mu.Lock()
				_, err := v.WriteAt(p, off)
				copy(shadow[off:], p)
				mu.Unlock()
				if err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	want := map[string][]byte{}
	for i := range 6 {
		time.Sleep(20 * time.Millisecond) // let the writers write
		name := fmt.Sprintf("s%d", i)
		mu.Lock()
		_, err := v.CreateSnapshot(name, "")
		img := bytes.Clone(shadow)
		want[name] = img
		mu.Unlock()
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			// A reader of the snapshot never sees the writes that follow it.
			wg.Add(1)
			go func() {
				defer wg.Done()
				got := make([]byte, size)
				for range 50 {
					select {
					case <-stop:
						return
					default:
					}
					if _, err := v.ReadSnapshot(name, got, 0); err != nil || !bytes.Equal(got, img) {
						t.Errorf("snapshot %s read during writes: %v, %s", name, err, firstDiff(got, img))
						return
					}
				}
			}()
		}
	}
	close(stop)
	wg.Wait()
	for name, img := range want {
		if got := readSnap(t, v, name); !bytes.Equal(got, img) {
			t.Fatalf("snapshot %s: %s", name, firstDiff(got, img))
		}
	}
	if got := readAll(t, v); !bytes.Equal(got, shadow) {
		t.Fatalf("live volume: %s", firstDiff(got, shadow))
	}
}

// The changed blocks after a snapshot are the chunks that the writes
// touched, no more.
func TestChangedChunks(t *testing.T) {
	v := openSnapVolume(t, t.TempDir(), 8<<20)
	if _, err := v.CreateSnapshot("a", ""); err != nil {
		t.Fatal(err)
	}
	extents := []ByteRange{{0, 4096}, {SnapshotChunk - 512, 1024}, {3 << 20, 1 << 20}, {7<<20 + 100, 5}}
	wantChunks := map[int64]bool{}
	for _, e := range extents {
		if _, err := v.WriteAt(randomBytes(int(e.Length), 3), e.Offset); err != nil {
			t.Fatal(err)
		}
		first, end := chunkRange(e.Offset, e.Length)
		for c := first; c < end; c++ {
			wantChunks[c] = true
		}
	}
	if _, err := v.CreateSnapshot("b", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := v.WriteAt(randomBytes(512, 4), 5<<20); err != nil {
		t.Fatal(err)
	}
	got, size, err := v.ChangedChunks("a", "b")
	if err != nil {
		t.Fatal(err)
	}
	if size != 8<<20 || got.count() != int64(len(wantChunks)) {
		t.Fatalf("a..b: %d chunks of %d bytes, want %d", got.count(), size, len(wantChunks))
	}
	for c := range wantChunks {
		if !got.has(c) {
			t.Fatalf("chunk %d missing", c)
		}
	}
	toLive, _, err := v.ChangedChunks("a", "")
	if err != nil {
		t.Fatal(err)
	}
	if toLive.count() != int64(len(wantChunks))+1 || !toLive.has(5<<20/SnapshotChunk) {
		t.Fatalf("a..live: %d chunks, want %d", toLive.count(), len(wantChunks)+1)
	}
	if bLive, _, _ := v.ChangedChunks("b", ""); bLive.count() != 1 {
		t.Fatalf("b..live: %d chunks, want 1", bLive.count())
	}
	if _, _, err := v.ChangedChunks("b", "a"); err == nil {
		t.Fatal("from newer than to accepted")
	}
	if _, _, err := v.ChangedChunks("nope", ""); !errors.Is(err, ErrSnapshotNotFound) {
		t.Fatalf("unknown snapshot: %v", err)
	}
}

// A full reserve under the refuse policy fails the write (and the next
// snapshot) with SPACE ALLOCATION FAILED and changes nothing; under
// delete-oldest the oldest snapshots go until the write fits.
func TestSnapshotReserveFull(t *testing.T) {
	const size = 1 << 20 // 16 chunks
	t.Run("refuse", func(t *testing.T) {
		v := openSnapVolume(t, t.TempDir(), size)
		if err := v.SetSnapshotPolicy(25, ReserveRefuse); err != nil { // 4 chunks
			t.Fatal(err)
		}
		before := randomBytes(size, 1)
		v.WriteAt(before, 0)
		if _, err := v.CreateSnapshot("a", ""); err != nil {
			t.Fatal(err)
		}
		if _, err := v.WriteAt(randomBytes(4*SnapshotChunk, 2), 0); err != nil {
			t.Fatalf("a write that fits the reserve: %v", err)
		}
		live := readAll(t, v)
		_, err := v.WriteAt(randomBytes(512, 3), 8*SnapshotChunk)
		if !errors.Is(err, ErrReserveFull) || !errors.Is(err, disk.ErrSpaceAllocationFailed) {
			t.Fatalf("write past the reserve: %v", err)
		}
		if err := v.Unmap(8*SnapshotChunk, 512); !errors.Is(err, ErrReserveFull) {
			t.Fatalf("unmap past the reserve: %v", err)
		}
		if err := v.Resize(size / 2); !errors.Is(err, ErrReserveFull) {
			t.Fatalf("shrink past the reserve: %v", err)
		}
		if got := readAll(t, v); !bytes.Equal(got, live) {
			t.Fatalf("a refused write changed the volume: %s", firstDiff(got, live))
		}
		if got := readSnap(t, v, "a"); !bytes.Equal(got, before) {
			t.Fatalf("snapshot: %s", firstDiff(got, before))
		}
		if _, err := v.CreateSnapshot("b", ""); !errors.Is(err, ErrReserveFull) {
			t.Fatalf("a snapshot with a full reserve: %v", err)
		}
		if _, err := v.WriteAt(randomBytes(512, 4), 0); err != nil {
			t.Fatalf("a write to preserved chunks needs no reserve: %v", err)
		}
		if err := v.DeleteSnapshot("a"); err != nil {
			t.Fatal(err)
		}
		if _, err := v.WriteAt(randomBytes(512, 3), 8*SnapshotChunk); err != nil {
			t.Fatalf("write after the snapshot is gone: %v", err)
		}
	})
	t.Run("delete-oldest", func(t *testing.T) {
		v := openSnapVolume(t, t.TempDir(), size)
		if err := v.SetSnapshotPolicy(50, ReserveDeleteOldest); err != nil { // 8 chunks
			t.Fatal(err)
		}
		var events []SnapshotEvent
		var mu sync.Mutex
		done := make(chan struct{}, 16)
		v.notifySnapshots(func(ev SnapshotEvent) {
			mu.Lock()
			events = append(events, ev)
			mu.Unlock()
			done <- struct{}{}
		})
		imgs := map[string][]byte{}
		for i, name := range []string{"a", "b", "c"} {
			imgs[name] = readAll(t, v)
			if _, err := v.CreateSnapshot(name, ""); err != nil {
				t.Fatal(err)
			}
			// 3 new chunks each: a, b and c hold 3 each, 9 > 8.
			if _, err := v.WriteAt(randomBytes(3*SnapshotChunk, uint64(i)), int64(i)*3*SnapshotChunk); err != nil {
				t.Fatalf("write %d: %v", i, err)
			}
		}
		var names []string
		for _, s := range v.Snapshots() {
			names = append(names, s.Name)
		}
		if !slices.Equal(names, []string{"b", "c"}) {
			t.Fatalf("snapshots %v, want the oldest deleted", names)
		}
		if _, _, used := v.SnapshotPolicy(); used != 6*SnapshotChunk {
			t.Fatalf("reserve used %d, want 6 chunks", used)
		}
		for _, n := range names {
			if got := readSnap(t, v, n); !bytes.Equal(got, imgs[n]) {
				t.Fatalf("snapshot %s: %s", n, firstDiff(got, imgs[n]))
			}
		}
		for range 2 {
			<-done
		}
		mu.Lock()
		defer mu.Unlock()
		kinds := map[string]bool{}
		for _, e := range events {
			kinds[e.Kind+"/"+e.Snapshot] = true
		}
		if !kinds["snapshot-reserve-full/a"] || !kinds["snapshot-deleted/a"] {
			t.Fatalf("events %+v", events)
		}
	})
	t.Run("zero", func(t *testing.T) {
		v := openSnapVolume(t, t.TempDir(), size)
		v.SetSnapshotPolicy(0, ReserveRefuse)
		if _, err := v.CreateSnapshot("a", ""); !errors.Is(err, ErrNoReserve) {
			t.Fatalf("snapshot with no reserve: %v", err)
		}
	})
}

// Snapshots, their contents and their bitmaps survive closing and
// reopening the volume; a Sync writes the bitmaps.
func TestSnapshotPersistence(t *testing.T) {
	dir := t.TempDir()
	const size = 2 << 20
	v, err := OpenVolume(dir, "v", PageMap{PageSize: snapPage, Size: size, Members: []int{1, 2}}, false)
	if err != nil {
		t.Fatal(err)
	}
	v.SetSnapshotPolicy(MaxSnapshotReserve, ReserveRefuse)
	imgs := map[string][]byte{}
	for i, name := range []string{"a", "b"} {
		v.WriteAt(randomBytes(size/2, uint64(i)), int64(i)*SnapshotChunk*3)
		imgs[name] = readAll(t, v)
		if _, err := v.CreateSnapshot(name, "desc "+name); err != nil {
			t.Fatal(err)
		}
	}
	v.WriteAt(randomBytes(size, 9), 0)
	if err := v.Sync(); err != nil {
		t.Fatal(err)
	}
	// Sync wrote the bitmaps, not only Close: what a crash now would find.
	for _, s := range v.Snapshots() {
		bits, err := readBitmap(v.snaps.bitmapFile(s.Name), chunks(s.Size))
		if err != nil || bits.count()*SnapshotChunk != s.Reserve || s.Reserve == 0 {
			t.Fatalf("bitmap of %s on disk after Sync: %d chunks, %v; want %d bytes", s.Name, bits.count(), err, s.Reserve)
		}
	}
	live := readAll(t, v)
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	// The live volume's page map may change (members join); the
	// snapshots keep the map they were taken with.
	v, err = OpenVolume(dir, "v", PageMap{PageSize: snapPage, Size: size, Members: []int{1, 2}}, false)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if got := readAll(t, v); !bytes.Equal(got, live) {
		t.Fatalf("live after reopening: %s", firstDiff(got, live))
	}
	list := v.Snapshots()
	if len(list) != 2 || list[0].Name != "a" || list[1].Description != "desc b" || list[0].Reserve == 0 {
		t.Fatalf("snapshots after reopening: %+v", list)
	}
	for name, img := range imgs {
		if got := readSnap(t, v, name); !bytes.Equal(got, img) {
			t.Fatalf("snapshot %s after reopening: %s", name, firstDiff(got, img))
		}
	}
}

// BenchmarkWriteWithSnapshot measures 64 KiB writes to a volume with no
// snapshot, and to one whose every chunk is preserved on first write
// (a fresh snapshot per pass over the volume).
func BenchmarkWriteWithSnapshot(b *testing.B) {
	for _, snap := range []bool{false, true} {
		b.Run(fmt.Sprintf("snapshot=%v", snap), func(b *testing.B) {
			const size = 64 << 20
			v, err := OpenVolume(b.TempDir(), "v", PageMap{PageSize: 1 << 20, Size: size, Members: []int{1, 2}}, false)
			if err != nil {
				b.Fatal(err)
			}
			defer v.Close()
			v.SetSnapshotPolicy(MaxSnapshotReserve, ReserveDeleteOldest)
			p := randomBytes(SnapshotChunk, 1)
			v.WriteAt(randomBytes(size, 2), 0)
			b.SetBytes(SnapshotChunk)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				off := int64(i) * SnapshotChunk % size
				if snap && off == 0 {
					if _, err := v.CreateSnapshot(fmt.Sprintf("s%d", i), ""); err != nil {
						b.Fatal(err)
					}
				}
				if _, err := v.WriteAt(p, off); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

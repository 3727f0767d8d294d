package array

import (
	"bytes"
	"errors"
	"slices"
	"testing"
)

// volumeBytes reads a whole volume.
func volumeBytes(t *testing.T, v *Volume) []byte {
	t.Helper()
	b := make([]byte, v.Size())
	if _, err := v.ReadAt(b, 0); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestRebalanceKeepsData spreads a volume of one member over two: the
// live data and a snapshot's read back the same, the pages that moved
// are freed on the old member, and a reopen with the new map sees it all.
func TestRebalanceKeepsData(t *testing.T) {
	dir := t.TempDir()
	const size = 32 * testPage
	v, err := OpenVolume(dir, "v", PageMap{PageSize: testPage, Size: size, Members: []int{1}}, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.WriteAt(randomBytes(20*testPage+512, 1), 3*testPage-512); err != nil {
		t.Fatal(err)
	}
	if _, err := v.CreateSnapshot("before", ""); err != nil {
		t.Fatal(err)
	}
	snap := make([]byte, size)
	if _, err := v.ReadSnapshot("before", snap, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := v.WriteAt(randomBytes(2*testPage, 2), 10*testPage); err != nil {
		t.Fatal(err)
	}
	live := volumeBytes(t, v)
	// A stray copy where page 29 (a hole, owned by member 2 afterwards)
	// will go, as an interrupted rebalance may leave: it must not show.
	stray, err := openMemberFile(volumeFile(dir, 2, "v"), size)
	if err != nil {
		t.Fatal(err)
	}
	stray.WriteAt(bytes.Repeat([]byte{0xee}, testPage), 29*testPage)
	stray.Close()
	before := v.AllocatedBytes()[1]

	var moved int64
	committed := false
	err = v.Rebalance(dir, []int{1, 2}, false, func() error { committed = true; return nil }, func(n int64) { moved = n })
	if err != nil || !committed {
		t.Fatalf("rebalance: %v (committed %v)", err, committed)
	}
	if moved != 16 {
		t.Fatalf("moved %d pages, want 16 (every odd page)", moved)
	}
	if pm := v.PageMap(); !slices.Equal(pm.Members, []int{1, 2}) {
		t.Fatalf("page map %v", pm.Members)
	}
	if !bytes.Equal(volumeBytes(t, v), live) {
		t.Fatal("live data changed")
	}
	got := make([]byte, size)
	if _, err := v.ReadSnapshot("before", got, 0); err != nil || !bytes.Equal(got, snap) {
		t.Fatalf("snapshot data changed (%v)", err)
	}
	if after := v.AllocatedBytes(); after[1] >= before || after[2] < 9*testPage {
		t.Fatalf("allocated before %d on member 1, after %v", before, after)
	}
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	v2 := openTestVolume(t, dir, size, 1, 2)
	if !bytes.Equal(volumeBytes(t, v2), live) {
		t.Fatal("data differs after reopening with the new page map")
	}
}

// TestRebalanceCommitFails: when the new layout cannot be recorded, the
// volume keeps its old page map and data, as after a crash before the
// commit, and a later rebalance works.
func TestRebalanceCommitFails(t *testing.T) {
	dir := t.TempDir()
	const size = 8 * testPage
	v := openTestVolume(t, dir, size, 1, 2)
	if _, err := v.WriteAt(randomBytes(size, 3), 0); err != nil {
		t.Fatal(err)
	}
	live := volumeBytes(t, v)
	boom := errors.New("disk full")
	if err := v.Rebalance(dir, []int{1, 2, 3}, false, func() error { return boom }, func(int64) {}); !errors.Is(err, boom) {
		t.Fatalf("rebalance with a failing commit: %v", err)
	}
	if pm := v.PageMap(); !slices.Equal(pm.Members, []int{1, 2}) || !bytes.Equal(volumeBytes(t, v), live) {
		t.Fatalf("after a failed commit: members %v, data same %v", pm.Members, bytes.Equal(volumeBytes(t, v), live))
	}
	// The old layout is whole on disk: a reopen with the old map reads it.
	v2, err := OpenVolume(dir, "v", PageMap{PageSize: testPage, Size: size, Members: []int{1, 2}}, false)
	if err != nil {
		t.Fatal(err)
	}
	same := bytes.Equal(volumeBytes(t, v2), live)
	v2.Close()
	if !same {
		t.Fatal("the old layout on disk does not read back the data")
	}
	if err := v.Rebalance(dir, []int{1, 2, 3}, true, func() error { return nil }, func(int64) {}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(volumeBytes(t, v), live) {
		t.Fatal("data changed in the second rebalance")
	}
}

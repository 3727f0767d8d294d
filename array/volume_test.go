package array

import (
	"bytes"
	"io"
	"math/rand/v2"
	"os"
	"testing"
)

const testPage = 64 << 10

func openTestVolume(t *testing.T, dir string, size int64, members ...int) *Volume {
	t.Helper()
	v, err := OpenVolume(dir, "v", PageMap{PageSize: testPage, Size: size, Members: members}, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	return v
}

func randomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// Writes that straddle page (and so member) boundaries read back byte
// for byte, and each member's file holds exactly its own pages.
func TestVolumeRoundTripAcrossPages(t *testing.T) {
	dir := t.TempDir()
	v := openTestVolume(t, dir, 16*testPage, 1, 2, 3)
	cases := []struct{ off, n int64 }{
		{0, 512},
		{testPage - 100, 200},            // across the first boundary
		{testPage/2 + 7, 3*testPage + 9}, // four pages, three members, unaligned
		{16*testPage - 512, 512},         // the last block
	}
	for i, c := range cases {
		data := randomBytes(int(c.n), uint64(i))
		if n, err := v.WriteAt(data, c.off); err != nil || n != len(data) {
			t.Fatalf("WriteAt(%d, %d) = %d, %v", c.off, c.n, n, err)
		}
		got := make([]byte, c.n)
		if n, err := v.ReadAt(got, c.off); err != nil || n != len(got) {
			t.Fatalf("ReadAt(%d, %d) = %d, %v", c.off, c.n, n, err)
		}
		if !bytes.Equal(got, data) {
			t.Fatalf("case %d: read back different bytes", i)
		}
	}
	// Page 1 belongs to member 2: its bytes are in member 2's file at
	// their natural offset, and member 1's file has a hole there.
	want := make([]byte, 100)
	v.ReadAt(want, testPage)
	f2, _ := os.ReadFile(volumeFile(dir, 2, "v"))
	f1, _ := os.ReadFile(volumeFile(dir, 1, "v"))
	if !bytes.Equal(f2[testPage:testPage+100], want) {
		t.Fatal("page 1 is not in member 2's file at its offset")
	}
	if !bytes.Equal(f1[testPage:testPage+100], make([]byte, 100)) {
		t.Fatal("member 1's file holds data of a page it does not own")
	}
}

func TestVolumeBounds(t *testing.T) {
	v := openTestVolume(t, t.TempDir(), 4*testPage, 1, 2)
	buf := make([]byte, 1024)
	n, err := v.ReadAt(buf, 4*testPage-512)
	if n != 512 || err != io.EOF {
		t.Fatalf("read across the end = %d, %v; want 512, EOF", n, err)
	}
	if _, err := v.WriteAt(buf, 4*testPage-512); err == nil {
		t.Fatal("a write past the end succeeded")
	}
	if err := v.Unmap(4*testPage-512, 1024); err == nil {
		t.Fatal("an unmap past the end succeeded")
	}
}

func allocated(t *testing.T, path string) int64 {
	t.Helper()
	return (&memberFile{path: path}).allocated()
}

// A thin volume takes space only for what was written, and unmapped
// ranges read back as zeroes and give their space back.
func TestVolumeThinAndUnmap(t *testing.T) {
	dir := t.TempDir()
	const size = 1 << 30
	v := openTestVolume(t, dir, size, 1, 2)
	for _, m := range []int{1, 2} {
		if a := allocated(t, volumeFile(dir, m, "v")); a > 64<<10 {
			t.Fatalf("member %d's file of an empty 1 GiB volume takes %d bytes", m, a)
		}
	}
	data := randomBytes(4*testPage, 7)
	v.WriteAt(data, 0)
	if got := v.AllocatedBytes(); got[1] < 2*testPage || got[2] < 2*testPage || got[1]+got[2] > 8*testPage {
		t.Fatalf("after writing 4 pages, allocation is %v", got)
	}
	if err := v.Unmap(testPage, 2*testPage); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(data))
	v.ReadAt(got, 0)
	if !bytes.Equal(got[:testPage], data[:testPage]) || !bytes.Equal(got[3*testPage:], data[3*testPage:]) {
		t.Fatal("unmap changed bytes outside its range")
	}
	if !bytes.Equal(got[testPage:3*testPage], make([]byte, 2*testPage)) {
		t.Fatal("unmapped range does not read as zeroes")
	}
	if a := v.AllocatedBytes(); a[1]+a[2] > 3*testPage {
		t.Fatalf("unmap gave no space back: %v", a)
	}
	mapped, n, err := v.Allocation(testPage)
	if err != nil || mapped || n != 2*testPage {
		t.Fatalf("Allocation(page 1) = %v, %d, %v; want unmapped for 2 pages", mapped, n, err)
	}
	mapped, n, err = v.Allocation(0)
	if err != nil || !mapped || n != testPage {
		t.Fatalf("Allocation(0) = %v, %d, %v; want mapped for 1 page", mapped, n, err)
	}
}

// Closing and reopening a volume keeps its data; resizing grows every
// member file and keeps what was there.
func TestVolumePersistenceAndResize(t *testing.T) {
	dir := t.TempDir()
	pm := PageMap{PageSize: testPage, Size: 8 * testPage, Members: []int{1, 2}}
	v, err := OpenVolume(dir, "v", pm, false)
	if err != nil {
		t.Fatal(err)
	}
	data := randomBytes(3*testPage, 3)
	v.WriteAt(data, testPage/2)
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	v, err = OpenVolume(dir, "v", pm, false)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	got := make([]byte, len(data))
	v.ReadAt(got, testPage/2)
	if !bytes.Equal(got, data) {
		t.Fatal("data changed across close and reopen")
	}
	if err := v.Resize(16 * testPage); err != nil {
		t.Fatal(err)
	}
	if v.Size() != 16*testPage {
		t.Fatalf("size after resize = %d", v.Size())
	}
	tail := randomBytes(testPage, 4)
	if _, err := v.WriteAt(tail, 15*testPage); err != nil {
		t.Fatalf("write in the grown part: %v", err)
	}
	v.ReadAt(got, testPage/2)
	if !bytes.Equal(got, data) {
		t.Fatal("data changed across resize")
	}
	if err := v.Sync(); err != nil {
		t.Fatal(err)
	}
}

func TestVolumeThick(t *testing.T) {
	dir := t.TempDir()
	v, err := OpenVolume(dir, "v", PageMap{PageSize: testPage, Size: 8 * testPage, Members: []int{1, 2}}, true)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if a := v.AllocatedBytes(); a[1] < 4*testPage || a[2] < 4*testPage {
		t.Fatalf("a thick volume's pages are not allocated: %v", a)
	}
}

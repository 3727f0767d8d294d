package vss

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hitkit/hitkit/blockdev"
	"github.com/hitkit/hitkit/groupapi"
)

const testBlock = 512

// volumeFile is a volume kept in a file: the real thing the images are
// copied from and restored to.
func volumeFile(t *testing.T, data []byte) *blockdev.FileDevice {
	t.Helper()
	path := filepath.Join(t.TempDir(), "vol")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	d, err := blockdev.OpenFileDevice(path, testBlock, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// changedExtents compares two snapshots the way the array's changed-block
// list does: granularity-aligned ranges that differ.
func changedExtents(a, b []byte, gran int64) []groupapi.Extent {
	var out []groupapi.Extent
	size := int64(max(len(a), len(b)))
	for off := int64(0); off < size; off += gran {
		end := min(off+gran, size)
		var pa, pb []byte
		if off < int64(len(a)) {
			pa = a[off:min(end, int64(len(a)))]
		}
		if off < int64(len(b)) {
			pb = b[off:min(end, int64(len(b)))]
		}
		if bytes.Equal(pa, pb) {
			continue
		}
		if n := len(out); n > 0 && out[n-1].Offset+out[n-1].Length == off {
			out[n-1].Length += end - off
		} else {
			out = append(out, groupapi.Extent{Offset: off, Length: end - off})
		}
	}
	return out
}

func backupTo(t *testing.T, path string, snap []byte, name, parent string, changed []groupapi.Extent) CopyResult {
	t.Helper()
	h := Header{Volume: "vol1", Snapshot: name, Granularity: 64 << 10}
	if parent != "" {
		p, err := LoadImage(filepath.Join(filepath.Dir(path), parent+ImageExt))
		if err != nil {
			t.Fatal(err)
		}
		h.Parent, h.ParentImage, h.ParentImageSHA256 = parent, filepath.Base(p.Path), p.Manifest.ImageSHA256
	}
	res, err := writeImageFile(context.Background(), path, volumeFile(t, snap), h, changed, nil)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestImageRoundTrip(t *testing.T) {
	data := make([]byte, 8<<20)
	copy(data[1<<20:], randomBytes(3<<20)) // MiB 1-3 data, the rest zeroes
	copy(data[7<<20+512:], randomBytes(1024))
	dir := t.TempDir()
	img := filepath.Join(dir, "s1"+ImageExt)
	res := backupTo(t, img, data, "s1", "", nil)
	m := res.Manifest
	if res.BytesRead != 8<<20 || m.Kind != KindFull || m.DataBytes != 4<<20 || len(m.Extents) != 4 {
		t.Fatalf("full copy read %d, manifest %+v", res.BytesRead, m.Header)
	}
	st, _ := os.Stat(img)
	if st.Size() > 4<<20+4096 || st.Size() != m.ImageBytes {
		t.Errorf("image of %d bytes for 4 MiB of data (manifest: %d)", st.Size(), m.ImageBytes)
	}
	loaded, err := LoadImage(img)
	if err != nil {
		t.Fatal(err)
	}
	if err := verifyImage(loaded); err != nil {
		t.Fatal(err)
	}
	// Every extent read back is the volume's data there.
	f, _ := os.Open(img)
	defer f.Close()
	if _, err := ReadImage(f, func(e ExtentSum, p []byte) error {
		if !bytes.Equal(p, data[e.Offset:e.Offset+e.Length]) {
			t.Errorf("extent %d+%d differs", e.Offset, e.Length)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	raw, _ := os.ReadFile(img)
	for name, bad := range map[string][]byte{
		"flipped data byte": flip(raw, len(raw)/2),
		"flipped header":    flip(raw, 20),
		"truncated":         raw[:len(raw)-10],
		"trailing garbage":  append(append([]byte(nil), raw...), 'x'),
		"not an image":      []byte("hello"),
	} {
		if _, err := ReadImage(bytes.NewReader(bad), nil); err == nil {
			t.Errorf("%s: read without error", name)
		}
	}
}

func flip(b []byte, i int) []byte {
	c := append([]byte(nil), b...)
	c[i] ^= 0x40
	return c
}

// TestRestoreChain: a full image and two incrementals, restored onto a
// volume full of other data, give back the last snapshot byte for byte.
func TestRestoreChain(t *testing.T) {
	const size = 16 << 20
	s1 := make([]byte, size)
	copy(s1, randomBytes(6<<20))
	copy(s1[10<<20:], randomBytes(2<<20))

	s2 := append([]byte(nil), s1...)
	copy(s2[3<<20:], randomBytes(5<<20+4096)) // overwrites data and zeroes
	clear(s2[10<<20 : 11<<20])                // data discarded

	s3 := append([]byte(nil), s2...)
	copy(s3[100<<10:], randomBytes(64<<10))
	copy(s3[size-4096:], randomBytes(4096))

	dir := t.TempDir()
	backupTo(t, filepath.Join(dir, "s1"+ImageExt), s1, "s1", "", nil)
	c2 := changedExtents(s1, s2, 64<<10)
	r2 := backupTo(t, filepath.Join(dir, "s2"+ImageExt), s2, "s2", "s1", c2)
	if r2.BytesRead > 6<<20+128<<10 {
		t.Errorf("the incremental read %d bytes for about 6 MiB of changes", r2.BytesRead)
	}
	c3 := changedExtents(s2, s3, 64<<10)
	r3 := backupTo(t, filepath.Join(dir, "s3"+ImageExt), s3, "s3", "s2", c3)
	if r3.BytesRead != 3*64<<10 { // 64 KiB across two granules, and one more
		t.Errorf("the second incremental read %d bytes, want %d", r3.BytesRead, 3*64<<10)
	}

	chain, err := Chain([]string{filepath.Join(dir, "s3"+ImageExt)})
	if err != nil {
		t.Fatal(err)
	}
	if len(chain) != 3 || chain[0].Manifest.Snapshot != "s1" || chain[2].Manifest.Snapshot != "s3" {
		t.Fatalf("chain %v", chain)
	}
	target := volumeFile(t, randomBytes(size))
	res, err := Restore(context.Background(), chain, target, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, target); sha256.Sum256(got) != sha256.Sum256(s3) {
		t.Fatal("the restored volume differs from the last snapshot")
	}
	if res.Verified != size || res.ZeroedBytes == 0 {
		t.Errorf("restore %+v: want %d bytes verified and old data zeroed", res, size)
	}

	// The same chain, named image by image, onto a zeroed volume: nothing
	// needs zeroing there.
	paths := []string{filepath.Join(dir, "s1"+ImageExt), filepath.Join(dir, "s2"+ImageExt), filepath.Join(dir, "s3"+ImageExt)}
	chain, err = Chain(paths)
	if err != nil {
		t.Fatal(err)
	}
	target = volumeFile(t, make([]byte, size))
	if res, err = Restore(context.Background(), chain, target, nil); err != nil || res.ZeroedBytes != 0 {
		t.Fatalf("%+v, %v", res, err)
	}
	if got := readAll(t, target); !bytes.Equal(got, s3) {
		t.Fatal("the restored volume differs from the last snapshot")
	}
}

// TestRestoreRefuses: a bad chain or a damaged image writes nothing.
func TestRestoreRefuses(t *testing.T) {
	const size = 4 << 20
	s1 := randomBytes(size)
	s2 := append([]byte(nil), s1...)
	copy(s2[1<<20:], randomBytes(4096))
	dir := t.TempDir()
	p1, p2 := filepath.Join(dir, "s1"+ImageExt), filepath.Join(dir, "s2"+ImageExt)
	backupTo(t, p1, s1, "s1", "", nil)
	backupTo(t, p2, s2, "s2", "s1", changedExtents(s1, s2, 64<<10))

	if _, err := Chain([]string{p2, p1}); err == nil || !strings.Contains(err.Error(), "incremental") {
		t.Errorf("reversed chain: %v", err)
	}
	if _, err := Chain([]string{p1, p1}); err == nil {
		t.Error("a full image twice made a chain")
	}

	// A byte of s1's data flipped on disk, its manifest untouched.
	raw, _ := os.ReadFile(p1)
	os.WriteFile(p1, flip(raw, len(raw)-100), 0o600)
	chain, err := Chain([]string{p2})
	if err != nil {
		t.Fatal(err)
	}
	before := randomBytes(size)
	target := volumeFile(t, before)
	if _, err := Restore(context.Background(), chain, target, nil); err == nil || !strings.Contains(err.Error(), "s1") {
		t.Fatalf("restore of a damaged chain: %v", err)
	}
	if !bytes.Equal(readAll(t, target), before) {
		t.Fatal("a refused restore wrote to the volume")
	}

	os.WriteFile(p1, raw, 0o600)
	small := volumeFile(t, make([]byte, size/2))
	if _, err := Restore(context.Background(), chain, small, nil); err == nil || !strings.Contains(err.Error(), "grow") {
		t.Fatalf("restore to a smaller volume: %v", err)
	}

	os.Remove(p1)
	if _, err := Chain([]string{p2}); err == nil {
		t.Error("a chain without its full image")
	}
}

func readAll(t *testing.T, d *blockdev.FileDevice) []byte {
	t.Helper()
	b := make([]byte, d.Size())
	if _, err := d.ReadAt(b, 0); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestOverlay(t *testing.T) {
	ext := func(off, n int64) ExtentSum { return ExtentSum{Offset: off, Length: n} }
	segs := overlay(nil, []ExtentSum{ext(100, 100), ext(200, 50), ext(400, 100)}, 0, 1000)
	want := []segment{{0, 100, -1}, {100, 250, 0}, {250, 400, -1}, {400, 500, 0}, {500, 1000, -1}}
	if !equalSegs(segs, want) {
		t.Fatalf("full: %v", segs)
	}
	segs = overlay(segs, []ExtentSum{ext(0, 150), ext(450, 100), ext(900, 300)}, 1, 1200)
	want = []segment{{0, 150, 1}, {150, 250, 0}, {250, 400, -1}, {400, 450, 0}, {450, 550, 1}, {550, 900, -1}, {900, 1200, 1}}
	if !equalSegs(segs, want) {
		t.Fatalf("grown: %v", segs)
	}
	segs = overlay(segs, nil, 2, 420)
	want = []segment{{0, 150, 1}, {150, 250, 0}, {250, 400, -1}, {400, 420, 0}}
	if !equalSegs(segs, want) {
		t.Fatalf("shrunk: %v", segs)
	}
}

func equalSegs(a, b []segment) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

package blockdev

import (
	"bytes"
	"crypto/rand"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestFileDevice(t *testing.T) {
	path := filepath.Join(t.TempDir(), "disk.img")
	d, err := CreateFileDevice(path, 4<<20, 4096)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if d.Size() != 4<<20 || d.BlockSize() != 4096 || d.ReadOnly() {
		t.Fatalf("geometry %d/%d read-only %v", d.Size(), d.BlockSize(), d.ReadOnly())
	}

	data := make([]byte, 1<<20)
	rand.Read(data)
	if _, err := d.WriteAt(data, 1<<20); err != nil {
		t.Fatal(err)
	}
	if _, err := d.WriteAtFUA(data[:8192], 3<<20); err != nil {
		t.Fatal(err)
	}
	if err := d.Sync(); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 1<<20)
	if _, err := d.ReadAt(got, 1<<20); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back: %v, equal %v", err, bytes.Equal(got, data))
	}
	if _, err := d.ReadAt(got[:8192], 3<<20); err != nil || !bytes.Equal(got[:8192], data[:8192]) {
		t.Fatalf("FUA write read back: %v", err)
	}

	before := allocated(t, path)
	if err := d.Unmap(1<<20, 1<<20); err != nil {
		t.Fatal(err)
	}
	if _, err := d.ReadAt(got, 1<<20); err != nil || !bytes.Equal(got, make([]byte, 1<<20)) {
		t.Fatal("unmapped range does not read back as zeroes")
	}
	if after := allocated(t, path); after >= before {
		t.Logf("unmap freed no space (%d -> %d bytes); the filesystem may not punch holes", before, after)
	}

	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if err := d.Sync(); err == nil {
		t.Error("Sync after Close succeeded")
	}

	ro, err := OpenFileDevice(path, 512, true)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if !ro.ReadOnly() || ro.Size() != 4<<20 {
		t.Errorf("reopened read-only: %v, %d bytes", ro.ReadOnly(), ro.Size())
	}
	if _, err := ro.WriteAt(make([]byte, 512), 0); err == nil {
		t.Error("write to a read-only FileDevice succeeded")
	}
}

func allocated(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Blocks * 512
}

func TestFileDeviceBadGeometry(t *testing.T) {
	dir := t.TempDir()
	odd := filepath.Join(dir, "odd.img")
	os.WriteFile(odd, make([]byte, 1000), 0o600)
	if _, err := OpenFileDevice(odd, 512, false); err == nil {
		t.Error("file of 1000 bytes accepted as 512-byte blocks")
	}
	if _, err := OpenFileDevice(filepath.Join(dir, "missing"), 512, false); err == nil {
		t.Error("missing file opened")
	}
	if _, err := CreateFileDevice(filepath.Join(dir, "bad.img"), 1<<20, 1000); err == nil {
		t.Error("block size 1000 accepted")
	}
	if _, err := os.Stat(filepath.Join(dir, "bad.img")); !os.IsNotExist(err) {
		t.Error("a refused CreateFileDevice left a file")
	}
}

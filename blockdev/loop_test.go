package blockdev

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// exportTest exports dev on a loop device and makes sure, whatever the
// test does, that neither the loop device nor the FUSE mount outlives it.
func exportTest(t *testing.T, dev Device, mountDir string) *LoopExport {
	t.Helper()
	requireRoot(t)
	exp, err := ExportLoop(dev, mountDir, LoopOptions{Logger: quietLogger(t), CloseTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeExport(t, exp) })
	return exp
}

// closeExport closes exp and checks that nothing is left; if Close fails,
// it still clears the mount so that no test leaves one behind.
func closeExport(t *testing.T, exp *LoopExport) {
	t.Helper()
	if err := exp.Close(); err != nil {
		t.Errorf("close export: %v", err)
		unix.Unmount(exp.mountDir, unix.MNT_DETACH)
	}
	if loopBacking(exp.loopNum) == exp.File() {
		t.Errorf("%s still bound to %s", exp.LoopDevice(), exp.File())
	}
	if isMounted(t, exp.mountDir) {
		t.Errorf("FUSE mount %s left behind", exp.mountDir)
	}
}

func isMounted(t *testing.T, dir string) bool {
	t.Helper()
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if fields := strings.Fields(s.Text()); len(fields) > 4 && fields[4] == dir {
			return true
		}
	}
	return false
}

// mountExt4 makes an ext4 filesystem on the block device (unless it
// already has one) and mounts it; the test's cleanup unmounts it.
func mountExt4(t *testing.T, blockDev, dir string, mkfs bool) {
	t.Helper()
	if mkfs {
		run(t, "mkfs.ext4", "-q", "-F", blockDev)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount(blockDev, dir, "ext4", 0, ""); err != nil {
		t.Fatalf("mount %s on %s: %v", blockDev, dir, err)
	}
	t.Cleanup(func() {
		if isMounted(t, dir) {
			if err := unix.Unmount(dir, 0); err != nil {
				t.Errorf("unmount %s: %v", dir, err)
				unix.Unmount(dir, unix.MNT_DETACH)
			}
		}
	})
}

// TestLoopFilesystem formats the loop device, writes files, and finds them
// intact through a second export of the same device.
func TestLoopFilesystem(t *testing.T) {
	requireRoot(t)
	requireTool(t, "mkfs.ext4")
	checkNoGoroutineLeak(t)
	dir := t.TempDir()
	dev, err := CreateFileDevice(filepath.Join(dir, "volume.img"), 128<<20, 512)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dev.Close() })
	fuseDir, fsDir := filepath.Join(dir, "fuse"), filepath.Join(dir, "fs")

	exp := exportTest(t, dev, fuseDir)
	checkLoopGeometry(t, exp, dev)
	link := filepath.Join(dir, "run", "dev", "vol1")
	if err := exp.Link(link); err != nil {
		t.Fatal(err)
	}
	if dest, err := os.Readlink(link); err != nil || dest != exp.LoopDevice() {
		t.Fatalf("link %s -> %q, %v", link, dest, err)
	}

	mountExt4(t, link, fsDir, true)
	sums := map[string][sha256.Size]byte{}
	for i := range 8 {
		data := make([]byte, (i+1)*512<<10+i) // odd sizes, up to 4 MiB
		rand.Read(data)
		name := filepath.Join(fsDir, fmt.Sprintf("file%d", i))
		if err := os.WriteFile(name, data, 0o600); err != nil {
			t.Fatal(err)
		}
		sums[name] = sha256.Sum256(data)
	}
	unix.Sync()

	// Busy while mounted: Close refuses, and the filesystem keeps working.
	if err := exp.Close(); !errors.Is(err, ErrBusy) {
		t.Fatalf("Close of a mounted export: %v, want ErrBusy", err)
	}
	if err := os.WriteFile(filepath.Join(fsDir, "after-busy"), []byte("still here"), 0o600); err != nil {
		t.Fatalf("filesystem broken by a refused Close: %v", err)
	}
	if err := unix.Unmount(fsDir, 0); err != nil {
		t.Fatal(err)
	}
	closeExport(t, exp)
	if _, err := os.Lstat(link); !os.IsNotExist(err) {
		t.Errorf("link left behind after Close: %v", err)
	}
	checkExt4Magic(t, dev)

	exp2 := exportTest(t, dev, fuseDir)
	mountExt4(t, exp2.LoopDevice(), fsDir, false)
	for name, want := range sums {
		data, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if sha256.Sum256(data) != want {
			t.Errorf("%s: checksum differs after re-export", name)
		}
	}
	if b, err := os.ReadFile(filepath.Join(fsDir, "after-busy")); err != nil || string(b) != "still here" {
		t.Errorf("file written after the refused Close: %q, %v", b, err)
	}
}

func checkLoopGeometry(t *testing.T, exp *LoopExport, dev Device) {
	t.Helper()
	if fi, err := os.Stat(exp.LoopDevice()); err != nil || fi.Mode().Type() != os.ModeDevice {
		t.Fatalf("%s is not a block device: %v", exp.LoopDevice(), err)
	}
	f, err := os.Open(exp.LoopDevice())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var size uint64
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, f.Fd(), unix.BLKGETSIZE64, uintptr(unsafe.Pointer(&size))); e != 0 {
		t.Fatal(e)
	}
	bs, err := unix.IoctlGetInt(int(f.Fd()), unix.BLKSSZGET)
	if err != nil {
		t.Fatal(err)
	}
	if int64(size) != dev.Size() || bs != dev.BlockSize() {
		t.Errorf("%s: %d bytes in %d-byte blocks, want %d in %d", exp.LoopDevice(), size, bs, dev.Size(), dev.BlockSize())
	}
	if !exp.DirectIO() {
		t.Log("the kernel refused direct I/O for the loop device; it reads through the page cache")
	}
}

// checkExt4Magic reads the superblock magic straight from the device.
func checkExt4Magic(t *testing.T, dev Device) {
	t.Helper()
	sb := make([]byte, 1024)
	if _, err := dev.ReadAt(sb, 1024); err != nil {
		t.Fatal(err)
	}
	if magic := uint16(sb[0x38]) | uint16(sb[0x39])<<8; magic != 0xef53 {
		t.Errorf("no ext4 superblock on the device (magic %#x)", magic)
	}
}

// alignedBuf returns a zeroed buffer aligned for O_DIRECT.
func alignedBuf(n int) []byte {
	b := make([]byte, n+4096)
	off := int(4096 - uintptr(unsafe.Pointer(&b[0]))%4096)
	return b[off%4096:][:n]
}

func blkRange(t *testing.T, f *os.File, req uint, off, n uint64) {
	t.Helper()
	r := [2]uint64{off, n}
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, f.Fd(), uintptr(req), uintptr(unsafe.Pointer(&r))); e != 0 {
		t.Fatalf("ioctl %#x: %v", req, e)
	}
}

// TestLoopBlockIO does I/O on the block device itself and checks that it
// reaches the Device: data, flushes, discards and zeroing.
func TestLoopBlockIO(t *testing.T) {
	dev := newMemDevice(16<<20, 4096)
	exp := exportTest(t, dev, filepath.Join(t.TempDir(), "fuse"))
	checkLoopGeometry(t, exp, dev)
	f, err := os.OpenFile(exp.LoopDevice(), os.O_RDWR|unix.O_DIRECT, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	data := alignedBuf(1 << 20)
	rand.Read(data)
	if _, err := f.WriteAt(data, 4<<20); err != nil {
		t.Fatal(err)
	}
	syncs := dev.syncs.Load()
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if dev.syncs.Load() == syncs {
		t.Error("fsync of the block device did not reach Device.Sync")
	}
	if !bytes.Equal(dev.snapshot()[4<<20:5<<20], data) {
		t.Fatal("data written to the block device is not on the Device")
	}

	// Direct I/O all the way: a read sees what the device holds now.
	dev.WriteAt(bytes.Repeat([]byte{0x5a}, 8192), 8<<20)
	back := alignedBuf(8192)
	if _, err := f.ReadAt(back, 8<<20); err != nil || !bytes.Equal(back, bytes.Repeat([]byte{0x5a}, 8192)) {
		t.Fatalf("read through the block device: %v, first byte %#x", err, back[0])
	}

	unmaps := dev.unmaps.Load()
	blkRange(t, f, unix.BLKDISCARD, 4<<20, 1<<20)
	if dev.unmaps.Load() == unmaps {
		t.Error("BLKDISCARD did not reach Device.Unmap")
	}
	if !bytes.Equal(dev.snapshot()[4<<20:5<<20], make([]byte, 1<<20)) {
		t.Error("discarded range does not read back as zeroes")
	}

	unmaps = dev.unmaps.Load()
	blkRange(t, f, unix.BLKZEROOUT, 8<<20, 8192)
	if !bytes.Equal(dev.snapshot()[8<<20:8<<20+8192], make([]byte, 8192)) {
		t.Error("BLKZEROOUT range is not zero")
	}
	if dev.unmaps.Load() != unmaps {
		t.Error("BLKZEROOUT (no unmap) was served by Device.Unmap")
	}
	dev.checkContract(t)
}

func TestLoopReadOnly(t *testing.T) {
	dev := newMemDevice(4<<20, 512)
	copy(dev.data, "read-only content")
	dev.readOnly = true
	exp := exportTest(t, dev, filepath.Join(t.TempDir(), "fuse"))
	if ro := loopSysfsBlock(exp, "ro"); ro != "1" {
		t.Errorf("%s ro = %q, want 1", exp.LoopDevice(), ro)
	}
	if w, err := os.OpenFile(exp.LoopDevice(), os.O_WRONLY, 0); err == nil {
		if _, err := w.WriteAt(make([]byte, 512), 0); err == nil {
			t.Error("a read-only loop device accepted a write")
		}
		w.Close()
	}
	b := make([]byte, 17)
	f, err := os.Open(exp.LoopDevice())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.ReadAt(b, 0); err != nil || string(b) != "read-only content" {
		t.Errorf("read %q, %v", b, err)
	}
	if dev.writes.Load() != 0 {
		t.Error("read-only device written")
	}
}

func loopSysfsBlock(exp *LoopExport, attr string) string {
	b, _ := os.ReadFile(filepath.Join("/sys/block", filepath.Base(exp.LoopDevice()), attr))
	return strings.TrimSpace(string(b))
}

// TestLoopSlowDeviceClose checks that Close gives up on a device that is
// not answering instead of hanging, and finishes on a later call.
func TestLoopSlowDeviceClose(t *testing.T) {
	dev := newMemDevice(4<<20, 4096)
	dir := filepath.Join(t.TempDir(), "fuse")
	requireRoot(t)
	exp, err := ExportLoop(dev, dir, LoopOptions{Logger: quietLogger(t), CloseTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeExport(t, exp) })
	f, err := os.OpenFile(exp.LoopDevice(), os.O_RDONLY|unix.O_DIRECT, 0)
	if err != nil {
		t.Fatal(err)
	}
	dev.delay.Store(int64(2 * time.Second))
	readDone := make(chan error, 1)
	go func() {
		_, err := f.ReadAt(alignedBuf(4096), 0)
		f.Close()
		readDone <- err
	}()
	for dev.reads.Load() == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	if err := exp.Close(); err == nil {
		t.Fatal("Close succeeded while a read was stuck in the device")
	} else {
		t.Logf("Close during a stuck read: %v", err)
	}
	dev.delay.Store(0)
	if err := <-readDone; err != nil {
		t.Errorf("slow read: %v", err)
	}
}

// TestLoopSetFD attaches with the pre-5.8 ioctls, which hosts with older
// kernels use.
func TestLoopSetFD(t *testing.T) {
	requireRoot(t)
	dev := newMemDevice(8<<20, 4096)
	dir := filepath.Join(t.TempDir(), "fuse")
	if err := prepareMountPoint(dir, quietLogger(t)); err != nil {
		t.Fatal(err)
	}
	srv, err := mountDeviceFile(newBlockIO(dev), false, dir, "device", quietLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Unmount(); err != nil {
			t.Errorf("unmount: %v", err)
			unix.Unmount(dir, unix.MNT_DETACH)
		}
	})
	file := filepath.Join(dir, "device")
	backing, err := os.OpenFile(file, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	a, err := attachLoop(backing, loopConfig{blockSize: 4096, name: file}, false)
	backing.Close()
	if err != nil {
		t.Fatal(err)
	}
	if got := loopBacking(a.num); got != file {
		t.Errorf("backing file %q", got)
	}
	bs, _ := os.ReadFile(fmt.Sprintf("/sys/block/loop%d/queue/logical_block_size", a.num))
	if strings.TrimSpace(string(bs)) != "4096" {
		t.Errorf("logical block size %q", bs)
	}
	if loopSysfs(a.num, "autoclear") != "1" {
		t.Error("autoclear not set")
	}
	a.dev.Close()
	for i := 0; loopBacking(a.num) == file; i++ {
		if i > 500 {
			t.Fatal("loop device did not detach on last close")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestFUSEFile uses the device file directly, as a program would.
func TestFUSEFile(t *testing.T) {
	dev := newMemDevice(1<<20, 4096)
	exp := exportTest(t, dev, filepath.Join(t.TempDir(), "fuse"))
	entries, err := os.ReadDir(exp.mountDir)
	if err != nil || len(entries) != 1 || entries[0].Name() != "device" {
		t.Fatalf("mount holds %v, %v", entries, err)
	}
	fi, err := os.Stat(exp.File())
	if err != nil || fi.Size() != 1<<20 || fi.Mode() != 0o600 {
		t.Fatalf("stat: %v %v", fi, err)
	}

	f, err := os.OpenFile(exp.File(), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	msg := []byte("unaligned, across a block boundary")
	if _, err := f.WriteAt(msg, 4096-7); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(msg))
	if _, err := f.ReadAt(got, 4096-7); err != nil || !bytes.Equal(got, msg) {
		t.Errorf("read back %q, %v", got, err)
	}
	if !bytes.Equal(dev.snapshot()[4096-7:4096-7+len(msg)], msg) {
		t.Error("unaligned write not on the device")
	}
	if n, err := unix.Pwrite(int(f.Fd()), make([]byte, 8192), 1<<20-4096); n != 4096 {
		t.Errorf("write across the end: %d bytes, %v; want 4096", n, err)
	}
	if _, err := unix.Pwrite(int(f.Fd()), []byte{1}, 1<<20); !errors.Is(err, unix.ENOSPC) {
		t.Errorf("write at the end: %v, want ENOSPC", err)
	}
	if err := f.Truncate(0); !errors.Is(err, unix.EPERM) {
		t.Errorf("truncate: %v, want EPERM", err)
	}

	syncs := dev.syncs.Load()
	if err := f.Sync(); err != nil || dev.syncs.Load() != syncs+1 {
		t.Errorf("fsync: %v, syncs %d -> %d", err, syncs, dev.syncs.Load())
	}
	if err := unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, 0, 65536); err != nil || dev.unmaps.Load() != 1 {
		t.Errorf("punch hole: %v, %d unmaps", err, dev.unmaps.Load())
	}
	if err := unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_ZERO_RANGE, 8192, 4096); err != nil || dev.unmaps.Load() != 1 {
		t.Errorf("zero range: %v, %d unmaps", err, dev.unmaps.Load())
	}

	// Closing a read-only handle does not cost a Sync; a writable one does.
	syncs = dev.syncs.Load()
	r, err := os.Open(exp.File())
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	if dev.syncs.Load() != syncs {
		t.Error("closing a read-only handle called Sync")
	}
	f.Close()
	if dev.syncs.Load() != syncs+1 {
		t.Error("closing a writable handle did not call Sync")
	}
	dev.checkContract(t)
}

func TestExportLoopBadArguments(t *testing.T) {
	if os.Geteuid() == 0 {
		exp := exportTest(t, newMemDevice(1<<20, 512), filepath.Join(t.TempDir(), "fuse"))
		if _, err := ExportLoop(newMemDevice(1<<20, 512), exp.mountDir, LoopOptions{}); err == nil || !strings.Contains(err.Error(), "mount point") {
			t.Errorf("second export on a live mount: %v", err)
		}
	}
	if _, err := ExportLoop(newMemDevice(1<<20, 512), t.TempDir(), LoopOptions{FileName: "a/b"}); err == nil {
		t.Error("file name with a slash accepted")
	}
	if _, err := ExportLoop(newMemDevice(1000, 512), t.TempDir(), LoopOptions{}); err == nil {
		t.Error("device of a size that is not whole blocks accepted")
	}
}

// TestLoopDeadMount exports at a mount point whose FUSE server was killed,
// as after a crash: the dead mount is cleared and the export works.
func TestLoopDeadMount(t *testing.T) {
	if dir := os.Getenv("BLOCKDEV_TEST_DEAD_MOUNT"); dir != "" {
		// The helper process: mount, report, and wait to be killed.
		if _, err := mountDeviceFile(newBlockIO(newMemDevice(1<<20, 512)), false, dir, "device", quietLogger(t)); err != nil {
			t.Fatal(err)
		}
		fmt.Println("mounted")
		select {}
	}
	requireRoot(t)
	dir := filepath.Join(t.TempDir(), "fuse")
	if err := prepareMountPoint(dir, quietLogger(t)); err != nil {
		t.Fatal(err)
	}
	helper := exec.Command(os.Args[0], "-test.run=^TestLoopDeadMount$")
	helper.Env = append(os.Environ(), "BLOCKDEV_TEST_DEAD_MOUNT="+dir)
	out, err := helper.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		helper.Process.Kill()
		helper.Wait()
		if isMounted(t, dir) {
			unix.Unmount(dir, unix.MNT_DETACH)
		}
	})
	line, _ := bufio.NewReader(out).ReadString('\n')
	if line != "mounted\n" {
		t.Fatalf("helper: %q", line)
	}
	helper.Process.Kill()
	helper.Wait()
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); !errors.Is(err, unix.ENOTCONN) {
		t.Fatalf("mount point after the server died: %v, want ENOTCONN", err)
	}

	dev := newMemDevice(1<<20, 512)
	exp := exportTest(t, dev, dir)
	if _, err := os.Stat(exp.File()); err != nil {
		t.Errorf("device file on the new mount: %v", err)
	}
}

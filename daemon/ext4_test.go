package daemon

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestExt4 puts a filesystem on the loop device, writes files while a
// path fails, and checks them after a remount.
func TestExt4(t *testing.T) {
	lab := startLab(t)
	requireTools(t, "mkfs.ext4", "mount", "umount")
	rd := startDaemon(t, t.TempDir(), t.TempDir())
	vol2 := lab.g.Config().Volumes[1]
	v := rd.connect(t, ConnectRequest{
		Name: "fs", Portal: lab.g.GroupAddr(), Target: vol2.IQN,
		Sources: []string{"127.0.0.2", "127.0.0.3"}, NoPathTimeout: "20s",
		HeaderDigest: true, DataDigest: true, // CRC32C on every PDU of this run
	})
	for _, s := range lab.g.Server().Sessions() {
		if s.TargetName == vol2.IQN && (!s.Params.HeaderDigest || !s.Params.DataDigest) {
			t.Fatalf("session %d to %s runs without CRC32C digests", s.TSIH, vol2.IQN)
		}
	}

	run(t, "mkfs.ext4", "-q", "-F", v.Link)
	mnt := t.TempDir()
	mount := func() {
		run(t, "mount", v.BlockDevice, mnt)
	}
	mounted := false
	unmount := func() {
		if mounted {
			run(t, "umount", mnt)
			mounted = false
		}
	}
	mount()
	mounted = true
	t.Cleanup(unmount)

	const files, size = 10, 20 << 20 // 200 MiB, as the issue asks
	sums := map[string][32]byte{}
	data := make([]byte, size)
	for i := range files {
		if i == files/2 {
			lab.portDown(t, rd.status(t, "fs").Paths[0].Remote)
		}
		rand.Read(data)
		name := filepath.Join(mnt, fmt.Sprintf("file%d", i))
		if err := os.WriteFile(name, data, 0o644); err != nil {
			t.Fatal(err)
		}
		sums[name] = sha256.Sum256(data)
	}
	run(t, "sync")
	unmount()
	// Drop the block device's cache, so the checks read from the array.
	run(t, "blockdev", "--flushbufs", v.BlockDevice)
	mount()
	mounted = true
	for name, want := range sums {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if got := sha256.Sum256(b); !bytes.Equal(got[:], want[:]) {
			t.Errorf("%s differs after remount", name)
		}
	}
	unmount()
	lab.g.ClearFaults()
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}

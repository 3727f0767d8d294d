package array

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hitkit/hitkit/internal/peer"
	"github.com/hitkit/hitkit/internal/testlog"
)

// snapURL is a libiscsi URL for a volume's snapshot through addr, with
// the volume's CHAP credentials.
func snapURL(t *testing.T, g *Group, volume, snap, addr string) string {
	t.Helper()
	v, err := g.volume(volume)
	if err != nil {
		t.Fatal(err)
	}
	secret, err := readSecret(CHAPSecretFile(g.Dir(), volume))
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("iscsi://%s%%%s@%s/%s/0", v.cfg.CHAPUser, secret, addr, SnapshotIQN(v.cfg.IQN, snap))
}

// qemuImage reads a whole snapshot through qemu's libiscsi driver: a
// real initiator, following the group IP's redirect. The CHAP secret
// goes to qemu as a file, not on argv.
func qemuImage(t *testing.T, g *Group, volume, snap string) []byte {
	t.Helper()
	v := mustVolume(t, g, volume)
	out := filepath.Join(t.TempDir(), "image.raw")
	opts := fmt.Sprintf("driver=raw,file.driver=iscsi,file.transport=tcp,file.portal=%s,file.target=%s,file.lun=0,file.user=%s,file.password-secret=chap",
		g.GroupAddr(), SnapshotIQN(v.cfg.IQN, snap), v.cfg.CHAPUser)
	// qemu's secret object keeps a trailing newline; the group's secret
	// files end in one.
	chap, err := readSecret(CHAPSecretFile(g.Dir(), volume))
	if err != nil {
		t.Fatal(err)
	}
	secretFile := filepath.Join(t.TempDir(), "chap")
	if err := os.WriteFile(secretFile, []byte(chap), 0o600); err != nil {
		t.Fatal(err)
	}
	secret := "secret,id=chap,file=" + secretFile
	if msg, err := runPeer(t, "qemu-img", "convert", "--object", secret, "--image-opts", opts, "-O", "raw", out); err != nil {
		t.Fatalf("qemu-img convert: %v\n%s", err, msg)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustSnapshot(t *testing.T, g *Group, volume, name string) SnapshotInfo {
	t.Helper()
	s, err := g.CreateSnapshot(volume, name, "")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func boolp(b bool) *bool { return &b }

// An online snapshot is its own target at the group IP: qemu-img reads
// back exactly the bytes the volume had when it was taken, while the
// volume has changed since; libiscsi sees its size and its own serial;
// writes are refused while it is read-only (the conformance suite's
// ReadOnly tests) and land in the snapshot when it is read-write; and an
// offline snapshot takes no login.
func TestSnapshotTargetWithPeers(t *testing.T) {
	peer.Require(t, "qemu-img", "qemu-io", "iscsi-inq", "iscsi-readcapacity16", "iscsi-test-cu")
	if m, _ := filepath.Glob("/usr/lib/*/qemu/block-iscsi.so"); len(m) == 0 {
		t.Skip("qemu-img has no iSCSI driver: install qemu-block-extra (make deps)")
	}
	g := startGroup(t, Spec{Volumes: []VolumeSpec{{Name: "vol1", Size: 32 << 20}}})
	vol, err := g.Volume("vol1")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 8 {
		vol.WriteAt(randomBytes(1<<20, uint64(i)), int64(i)*(4<<20)+12345)
	}
	want := readAll(t, vol)
	s := mustSnapshot(t, g, "vol1", "s1")
	for i := range 8 {
		vol.WriteAt(randomBytes(1<<20, uint64(100+i)), int64(i)*(4<<20))
	}
	if bytes.Equal(readAll(t, vol), want) {
		t.Fatal("the volume did not change")
	}
	url := snapURL(t, g, "vol1", "s1", g.GroupAddr())
	if out, err := runPeer(t, "iscsi-inq", url); err == nil {
		t.Fatalf("an offline snapshot took a login:\n%s", out)
	}
	if s, err = g.SetSnapshot("vol1", "s1", boolp(true), nil); err != nil || !s.Online || s.ReadWrite {
		t.Fatalf("online: %+v, %v", s, err)
	}

	if got := qemuImage(t, g, "vol1", "s1"); !bytes.Equal(got, want) {
		t.Fatalf("snapshot read through qemu-img: %s", firstDiff(got, want))
	}
	out, err := runPeer(t, "iscsi-readcapacity16", url)
	if err != nil || !strings.Contains(out, fmt.Sprintf("Total size:%d", 32<<20)) {
		t.Fatalf("iscsi-readcapacity16: %v\n%s", err, out)
	}
	out, err = runPeer(t, "iscsi-inq", "-e", "1", "-c", "128", url)
	if err != nil || !strings.Contains(out, s.Serial) {
		t.Fatalf("serial: want %s: %v\n%s", s.Serial, err, out)
	}

	r, err := peer.IscsiTestCU(t, "ALL.ReadOnly", url)
	if err != nil {
		t.Fatal(err)
	}
	if r.Failed != 0 || r.Passed == 0 {
		t.Fatalf("ALL.ReadOnly on a read-only snapshot: %d passed, %d failed: %v\n%s", r.Passed, r.Failed, r.FailedTests, testlog.Tail(r.Output, 3000))
	}
	// qemu reads the WP bit in MODE SENSE and will not open the LU for
	// writing.
	out, _ = runPeer(t, "qemu-io", "-f", "raw", "-c", "write -P 0xab 4096 4096", url)
	if !strings.Contains(out, "write protected") {
		t.Fatalf("qemu-io on a read-only snapshot:\n%s", strings.ReplaceAll(out, url, "URL"))
	}
	if got := readSnapOf(t, g, "vol1", "s1"); !bytes.Equal(got, want) {
		t.Fatalf("snapshot after a refused write: %s", firstDiff(got, want))
	}

	if s, err = g.SetSnapshot("vol1", "s1", nil, boolp(true)); err != nil || !s.ReadWrite {
		t.Fatalf("read-write: %+v, %v", s, err)
	}
	if out, err := runPeer(t, "qemu-io", "-f", "raw", "-c", "write -P 0xab 4096 4096", url); err != nil || strings.Contains(out, "failed") {
		t.Fatalf("qemu-io write to a read-write snapshot: %v\n%s", err, out)
	}
	copy(want[4096:8192], bytes.Repeat([]byte{0xab}, 4096))
	if got := readSnapOf(t, g, "vol1", "s1"); !bytes.Equal(got, want) {
		t.Fatalf("snapshot after a write to it: %s", firstDiff(got, want))
	}
	live := readAll(t, vol)
	if bytes.Equal(live[4096:8192], want[4096:8192]) {
		t.Fatal("a write to the snapshot reached the volume")
	}

	if _, err := g.SetSnapshot("vol1", "s1", boolp(false), nil); err != nil {
		t.Fatal(err)
	}
	if out, err := runPeer(t, "iscsi-inq", url); err == nil {
		t.Fatalf("an offline snapshot took a login:\n%s", out)
	}
	if s, _ := g.Snapshot("vol1", "s1"); s.Online || s.ReadWrite {
		t.Fatalf("offline snapshot: %+v", s)
	}
}

func readSnapOf(t *testing.T, g *Group, volume, snap string) []byte {
	t.Helper()
	v, err := g.Volume(volume)
	if err != nil {
		t.Fatal(err)
	}
	return readSnap(t, v, snap)
}

// Snapshots, their contents, their online state and the policy survive
// a restart of the group; restore gives the snapshot's bytes and size;
// deleting a snapshot in the middle keeps the others.
func TestSnapshotsAcrossRestartRestoreDelete(t *testing.T) {
	g := startGroup(t, Spec{Volumes: []VolumeSpec{{Name: "vol1", Size: 8 << 20}}})
	dir := g.Dir()
	if err := g.SetSnapshotPolicy("vol1", 150, ReserveRefuse); err != nil {
		t.Fatal(err)
	}
	vol, _ := g.Volume("vol1")
	imgs := map[string][]byte{}
	for i, name := range []string{"a", "b", "c"} {
		vol.WriteAt(randomBytes(2<<20, uint64(i)), int64(i)<<20)
		imgs[name] = readAll(t, vol)
		mustSnapshot(t, g, "vol1", name)
	}
	if err := g.ResizeVolume("vol1", 12<<20, false); err != nil {
		t.Fatal(err)
	}
	vol.WriteAt(randomBytes(8<<20, 7), 3<<20)
	if _, err := g.SetSnapshot("vol1", "b", boolp(true), nil); err != nil {
		t.Fatal(err)
	}
	if err := vol.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}

	g, err := Open(dir, Options{Logger: testlog.FailureLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	list, err := g.Snapshots("vol1")
	if err != nil || len(list) != 3 || !list[1].Online || list[0].Online {
		t.Fatalf("snapshots after the restart: %+v, %v", list, err)
	}
	if _, ok := g.Server().Target(list[1].IQN); !ok {
		t.Fatalf("online snapshot %s is not served after the restart", list[1].IQN)
	}
	if p, _ := g.SnapshotPolicy("vol1"); p.ReservePercent != 150 || p.WhenFull != ReserveRefuse || p.ReserveUsed == 0 {
		t.Fatalf("policy after the restart: %+v", p)
	}
	for name, img := range imgs {
		if got := readSnapOf(t, g, "vol1", name); !bytes.Equal(got, img) {
			t.Fatalf("snapshot %s after the restart: %s", name, firstDiff(got, img))
		}
	}

	if err := g.DeleteSnapshot("vol1", "b"); err != nil {
		t.Fatal(err)
	}
	if _, ok := g.Server().Target(list[1].IQN); ok {
		t.Fatal("a deleted snapshot's target is still served")
	}
	for _, name := range []string{"a", "c"} {
		if got := readSnapOf(t, g, "vol1", name); !bytes.Equal(got, imgs[name]) {
			t.Fatalf("snapshot %s after deleting b: %s", name, firstDiff(got, imgs[name]))
		}
	}

	if err := g.RestoreVolume("vol1", "a"); err != nil {
		t.Fatal(err)
	}
	vol, _ = g.Volume("vol1")
	if got := readAll(t, vol); !bytes.Equal(got, imgs["a"]) {
		t.Fatalf("restored volume: %s", firstDiff(got, imgs["a"]))
	}
	if g.Config().Volumes[0].Size != 8<<20 {
		t.Fatalf("restored volume's configured size %d", g.Config().Volumes[0].Size)
	}
	if got := readSnapOf(t, g, "vol1", "c"); !bytes.Equal(got, imgs["c"]) {
		t.Fatalf("snapshot c after restoring a: %s", firstDiff(got, imgs["c"]))
	}
	ranges, size, err := g.ChangedBlocks("vol1", "a", "c")
	if err != nil || size != 8<<20 || len(ranges) == 0 {
		t.Fatalf("changes a..c: %v %d %v", ranges, size, err)
	}
	if err := g.RestoreVolume("vol1", "nope"); !errors.Is(err, ErrSnapshotNotFound) {
		t.Fatalf("restore from a missing snapshot: %v", err)
	}
}

// Deleting a volume with a session is refused unless forced; forced, the
// session drops and the volume's files, secret and snapshots go.
func TestDeleteVolume(t *testing.T) {
	peer.Require(t, "iscsi-perf")
	g := startGroup(t, Spec{Volumes: []VolumeSpec{{Name: "vol1", Size: 16 << 20}, {Name: "vol2", Size: 16 << 20}}})
	mustSnapshot(t, g, "vol1", "s1")
	if _, err := g.SetSnapshot("vol1", "s1", boolp(true), nil); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	perf := peer.LibiscsiCommand(ctx, "iscsi-perf", "-m", "4", "-b", "8", "-t", "20", labURL(t, g, "vol1", g.GroupAddr()))
	if err := perf.Start(); err != nil {
		t.Fatal(err)
	}
	defer perf.Wait()
	defer cancel()
	for deadline := time.Now().Add(10 * time.Second); len(g.volumeSessions(mustVolume(t, g, "vol1"))) == 0; {
		if time.Now().After(deadline) {
			t.Fatal("iscsi-perf never logged in")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := g.DeleteVolume("vol1", false); !errors.Is(err, ErrVolumeBusy) {
		t.Fatalf("delete with a session: %v", err)
	}
	if err := g.DeleteVolume("vol1", true); err != nil {
		t.Fatal(err)
	}
	// iscsi-perf keeps trying to log in again; none of its logins may
	// land on the deleted volume.
	time.Sleep(500 * time.Millisecond)
	for _, s := range g.Server().Sessions() {
		if strings.Contains(s.TargetName, ":vol1") {
			t.Fatalf("session %d to %s after the volume was deleted", s.TSIH, s.TargetName)
		}
	}
	cancel()
	if _, err := g.Volume("vol1"); err == nil {
		t.Fatal("the volume is still there")
	}
	if len(g.Config().Volumes) != 1 || g.Config().Volumes[0].Name != "vol2" {
		t.Fatalf("volumes after the delete: %+v", g.Config().Volumes)
	}
	for _, pattern := range []string{"members/*/volumes/vol1.data", "members/*/snapshots/vol1", "snapshots/vol1", "secrets/vol1.chap"} {
		if m, _ := filepath.Glob(filepath.Join(g.Dir(), pattern)); len(m) != 0 {
			t.Fatalf("left behind: %v", m)
		}
	}
	if m, _ := filepath.Glob(filepath.Join(g.Dir(), "members/*/volumes/vol2.data")); len(m) == 0 {
		t.Fatal("the other volume's files went too")
	}
	for _, tg := range g.Server().Targets() {
		if strings.Contains(tg.Name, ":vol1") {
			t.Fatalf("target %s is still served", tg.Name)
		}
	}
}

func mustVolume(t *testing.T, g *Group, name string) *servedVolume {
	t.Helper()
	v, err := g.volume(name)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestDefaultSnapshotNamesOfLongVolumes: a volume with the longest name
// still gets valid default names, also for several snapshots taken in the
// same millisecond.
func TestDefaultSnapshotNamesOfLongVolumes(t *testing.T) {
	volume := strings.Repeat("v", 63)
	now := time.Date(2026, 11, 26, 16, 0, 0, 0, time.UTC)
	base := DefaultSnapshotName(volume, now)
	for _, name := range []string{base, base + "-2", base + "-9"} {
		if err := ValidSnapshotName(name); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if !strings.HasSuffix(base, "-20261126-160000.000") {
		t.Errorf("default name %s lost its time stamp", base)
	}
}

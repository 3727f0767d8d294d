package cmd

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hitkit/hitkit/array"
	"github.com/hitkit/hitkit/daemon"
	"github.com/hitkit/hitkit/groupapi"
	"github.com/hitkit/hitkit/initiator"
	"github.com/hitkit/hitkit/internal/labtest"
	"github.com/hitkit/hitkit/vss"
	"github.com/sirupsen/logrus"
)

func TestSnapshotUsage(t *testing.T) {
	for _, args := range [][]string{
		{"snapshot"},
		{"snapshot", "nope"},
		{"snapshot", "create"},
		{"snapshot", "create", "a", "b"},
		{"snapshot", "mount", "vol1", "snap"},
		{"snapshot", "unmount"},
		{"snapshot", "delete", "vol1"},
		{"snapshot", "schedule", "vol1"},
		{"snapshot", "schedule", "--every", "7m", "vol1"},
		{"snapshot", "schedule", "--every", "fortnightly", "vol1"},
		{"snapshot", "create", "--keep", "-1", "vol1"},
		{"snapshot", "create", "vol1", "--keep", "1"},
		{"backup", "vol1"},
		{"backup", "--to", "/tmp", "--keep-snapshots", "-1", "vol1"},
		{"restore", "vol1"},
	} {
		if code, _, errOut := hitkit(t, args...); code != exitUsage {
			t.Errorf("%v: exit %d, want 2: %s", args, code, errOut)
		}
	}
}

func TestSnapshotSchedule(t *testing.T) {
	code, out, errOut := hitkit(t, "snapshot", "schedule", "--every", "15m", "--keep", "4", "--hitkit", "/usr/bin/hitkit", "vol1")
	if code != 0 || !strings.Contains(out, "*/15 * * * * root /usr/bin/hitkit snapshot create --keep 4 vol1\n") {
		t.Fatalf("exit %d: %s%s", code, out, errOut)
	}
	root := t.TempDir()
	code, out, errOut = hitkit(t, "snapshot", "schedule", "--every", "6h", "--systemd", "--install", "--root", root, "--hitkit", "/usr/bin/hitkit", "db.data")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	timer, err := os.ReadFile(filepath.Join(root, "etc/systemd/system/hitkit-snapshot-db_data.timer"))
	if err != nil || !bytes.Contains(timer, []byte("OnCalendar=0/6:00\n")) || !bytes.Contains(timer, []byte("Unit=hitkit-snapshot-db_data.service")) {
		t.Fatalf("timer %s (%v); output %s", timer, err, out)
	}
	service, _ := os.ReadFile(filepath.Join(root, "etc/systemd/system/hitkit-snapshot-db_data.service"))
	if !bytes.Contains(service, []byte("ExecStart=/usr/bin/hitkit snapshot create db.data\n")) {
		t.Fatalf("service %s", service)
	}
	if _, err := exec.LookPath("systemd-analyze"); err == nil {
		if out, err := exec.Command("systemd-analyze", "calendar", "0/6:00").CombinedOutput(); err != nil {
			t.Errorf("systemd-analyze calendar: %v: %s", err, out)
		}
	}
	code, _, _ = hitkit(t, "snapshot", "schedule", "--every", "daily", "--install", "--root", root, "--hitkit", "/usr/bin/hitkit", "vol1")
	cron, err := os.ReadFile(filepath.Join(root, "etc/cron.d/hitkit-snapshot-vol1"))
	if code != 0 || err != nil || !bytes.Contains(cron, []byte("0 0 * * * root /usr/bin/hitkit snapshot create vol1\n")) {
		t.Fatalf("exit %d, cron.d file %s (%v)", code, cron, err)
	}
}

// snapLab is a lab group serving its management API, and hitkit's
// directories for one test.
type snapLab struct {
	g                  *array.Group
	dir                string
	api                *groupapi.Client
	apiAddr, fp        string
	passwordFile       string
	vol                array.VolumeConfig
	secretFile         string
	bin                string
	runtime, state     string
	groupArgs, dirArgs []string
}

func startSnapLab(t *testing.T) *snapLab {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: lab group on 127.0.x.y, FUSE and loop devices, mount and FIFREEZE")
	}
	for _, tool := range []string{"mkfs.ext4", "e2fsck"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed (e2fsprogs)", tool)
		}
	}
	bin := buildHitkit(t)
	lab := labtest.Start(t, labtest.Options{
		Spec:          array.Spec{Volumes: []array.VolumeSpec{{Name: "vol1", Size: 128 << 20}}},
		ManagementAPI: true,
	})
	l := &snapLab{
		g: lab.Group, dir: lab.Dir, apiAddr: lab.API.ListenAddr(), fp: lab.Fingerprint(t), passwordFile: lab.AdminPasswordFile(),
		vol: lab.Volume(t, "vol1"), secretFile: lab.CHAPSecretFile("vol1"), bin: bin,
		runtime: t.TempDir(), state: t.TempDir(), api: lab.Dial(t),
	}
	l.groupArgs = []string{"--group-api", l.apiAddr, "--group-fingerprint", l.fp, "--group-admin-file", l.passwordFile}
	l.dirArgs = []string{"--runtime-dir", l.runtime, "--state-dir", l.state}
	t.Cleanup(func() { stopDaemon(t, l.runtime) })
	return l
}

// run runs the built hitkit with the test's directories.
func (l *snapLab) run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	at := 1 // after the command, and its subcommand if it has one
	if args[0] == "snapshot" || args[0] == "mpio" {
		at = 2
	}
	full := append(append(append([]string{}, args[:at]...), l.dirArgs...), args[at:]...)
	return labCLI(t, l.bin, full...)
}

func (l *snapLab) mustRun(t *testing.T, out any, args ...string) string {
	t.Helper()
	code, stdout, stderr := l.run(t, args...)
	if code != 0 {
		t.Fatalf("hitkit %s: exit %d: %s%s\n%s", strings.Join(args, " "), code, stdout, stderr, tailFile(filepath.Join(l.state, "hitkitd.log")))
	}
	if out != nil {
		if err := json.Unmarshal([]byte(stdout), out); err != nil {
			t.Fatalf("hitkit %s: %v: %s", strings.Join(args, " "), err, stdout)
		}
	}
	return stdout
}

// connectAndMount connects vol1 with the group's API (so that the
// snapshot commands need no flags), makes ext4 on it, and mounts it.
func (l *snapLab) connectAndMount(t *testing.T) string {
	t.Helper()
	l.mustRun(t, nil, append([]string{"mpio", "connect", "--portal", l.g.GroupAddr(), "--target", l.vol.IQN,
		"--chap-user", l.vol.CHAPUser, "--chap-secret-file", l.secretFile, "--source", "127.0.0.2,127.0.0.3"}, l.groupArgs...)...)
	link := filepath.Join(l.runtime, "dev", "vol1")
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0", link).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v: %s", err, out)
	}
	mnt := t.TempDir()
	if out, err := exec.Command("mount", link, mnt).CombinedOutput(); err != nil {
		t.Fatalf("mount: %v: %s", err, out)
	}
	t.Cleanup(func() {
		unmountAll(t, mnt)
		l.disconnect(t, "vol1")
	})
	return mnt
}

// disconnect takes a volume out of hitkitd before the daemon stops,
// retrying (boundedly) while the kernel still holds its loop device after
// an unmount.
func (l *snapLab) disconnect(t *testing.T, name string) {
	t.Helper()
	client := daemon.NewClient(l.runtime)
	var err error
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err = client.Disconnect(ctx, name)
		cancel()
		if err == nil || strings.Contains(err.Error(), "no volume") || errors.Is(err, daemon.ErrNotRunning) {
			return
		}
	}
	t.Errorf("disconnecting %s: %v", name, err)
}

func unmountAll(t *testing.T, path string) {
	for range 50 {
		if err := syscall.Unmount(path, 0); err != nil {
			return
		}
	}
}

// writer writes files on a filesystem until stopped (at most limit
// files), and remembers the checksum of each one it finished.
type writer struct {
	dir  string
	mu   sync.Mutex
	done map[string][32]byte
	stop chan struct{}
	wg   sync.WaitGroup
	err  error
}

func startWriter(dir string, limit int) *writer {
	w := &writer{dir: dir, done: map[string][32]byte{}, stop: make(chan struct{})}
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		buf := make([]byte, 96<<10)
		for i := range limit {
			select {
			case <-w.stop:
				return
			default:
			}
			rand.Read(buf)
			name := filepath.Join(dir, fmt.Sprintf("w%05d", i))
			// No fsync: only the freeze makes these reach the snapshot.
			if err := os.WriteFile(name, buf, 0o644); err != nil {
				w.err = err
				return
			}
			w.mu.Lock()
			w.done[name] = sha256.Sum256(buf)
			w.mu.Unlock()
		}
	}()
	return w
}

func (w *writer) finished() map[string][32]byte {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make(map[string][32]byte, len(w.done))
	for k, v := range w.done {
		out[k] = v
	}
	return out
}

func (w *writer) halt(t *testing.T) {
	close(w.stop)
	w.wg.Wait()
	if w.err != nil {
		t.Fatalf("writer: %v", w.err)
	}
}

// TestSnapshotFreezeMount: a snapshot of ext4 under writes, taken with the
// filesystem frozen, mounts read-only, passes e2fsck -fn, and holds every
// file that was written before it; unmount sets it offline again.
func TestSnapshotFreezeMount(t *testing.T) {
	l := startSnapLab(t)
	mnt := l.connectAndMount(t)
	w := startWriter(mnt, 3000)
	time.Sleep(300 * time.Millisecond)
	before := w.finished()
	var created vss.Created
	l.mustRun(t, &created, "snapshot", "create", "--json", "vol1")
	w.halt(t)
	if created.Frozen == nil || created.Frozen.Mountpoint != mnt || created.Snapshot.Name == "" {
		t.Fatalf("create: %+v", created)
	}
	t.Logf("%d files written before the snapshot; frozen for %v", len(before), created.Frozen.Duration)
	if len(before) == 0 {
		t.Fatal("the writer wrote nothing before the snapshot")
	}
	if !strings.Contains(created.Snapshot.Description, "mountpoint="+mnt) {
		t.Errorf("description %q does not name the mountpoint", created.Snapshot.Description)
	}

	snapMnt := filepath.Join(t.TempDir(), "snap")
	var m vss.Mounted
	l.mustRun(t, &m, "snapshot", "mount", "--json", "vol1", created.Snapshot.Name, snapMnt)
	t.Cleanup(func() { unmountAll(t, snapMnt) })
	if s, _ := l.api.Snapshot("vol1", created.Snapshot.Name); !s.Online {
		t.Fatal("the mounted snapshot is not online")
	}
	if out, err := exec.Command("e2fsck", "-fn", m.BlockDevice).CombinedOutput(); err != nil {
		t.Fatalf("e2fsck -fn on the snapshot: %v\n%s", err, out)
	}
	for name, sum := range before {
		b, err := os.ReadFile(filepath.Join(snapMnt, filepath.Base(name)))
		if err != nil || sha256.Sum256(b) != sum {
			t.Fatalf("%s in the snapshot: %v, checksum match %v", filepath.Base(name), err, err == nil && sha256.Sum256(b) == sum)
		}
	}
	if err := os.WriteFile(filepath.Join(snapMnt, "x"), []byte("x"), 0o644); err == nil {
		t.Error("a write to the read-only snapshot mount succeeded")
	}
	if ro, _ := os.ReadFile(filepath.Join("/sys/block", filepath.Base(m.BlockDevice), "ro")); strings.TrimSpace(string(ro)) != "1" {
		t.Errorf("the snapshot's loop device is not read-only: ro=%q", ro)
	}

	// Taken while mounted, the snapshot is in use: cleanup leaves it.
	var cleaned struct {
		Cleaned []vss.CleanupResult `json:"cleaned"`
	}
	l.mustRun(t, &cleaned, "snapshot", "cleanup", "--json")
	if len(cleaned.Cleaned) != 0 {
		t.Fatalf("cleanup touched a mounted snapshot: %+v", cleaned.Cleaned)
	}

	l.mustRun(t, nil, "snapshot", "unmount", snapMnt)
	if s, _ := l.api.Snapshot("vol1", created.Snapshot.Name); s.Online {
		t.Error("the snapshot is still online after unmount")
	}
	if isMountpoint(snapMnt) {
		t.Error("still mounted after unmount")
	}
	if recs, _ := vss.Records(l.state); len(recs) != 0 {
		t.Errorf("records left: %+v", recs)
	}
	out := l.mustRun(t, nil, "snapshot", "list", "vol1")
	if !strings.Contains(out, created.Snapshot.Name) || !strings.Contains(out, "create") {
		t.Errorf("list:\n%s", out)
	}

	// --keep prunes what snapshot create made, oldest first.
	for range 2 {
		l.mustRun(t, nil, "snapshot", "create", "--keep", "2", "vol1")
	}
	snaps, _ := l.api.Snapshots("vol1")
	if len(snaps) != 2 || snaps[0].Name == created.Snapshot.Name {
		t.Errorf("after --keep 2: %+v", snaps)
	}
}

func isMountpoint(path string) bool {
	ms, _ := vss.Mounts()
	for _, m := range ms {
		if m.Point == path {
			return true
		}
	}
	return false
}

// TestSnapshotMountKilled: kill -9 of snapshot mount once it has set the
// snapshot online; cleanup then unmounts and disconnects what it left and
// sets the snapshot offline.
func TestSnapshotMountKilled(t *testing.T) {
	l := startSnapLab(t)
	l.connectAndMount(t)
	var created vss.Created
	l.mustRun(t, &created, "snapshot", "create", "--json", "vol1")
	snap := created.Snapshot.Name

	snapMnt := filepath.Join(t.TempDir(), "snap")
	t.Cleanup(func() { unmountAll(t, snapMnt) })
	cmd := exec.Command(l.bin, append(append([]string{"snapshot", "mount"}, l.dirArgs...), "vol1", snap, snapMnt)...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	online := false
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
		if s, err := l.api.Snapshot("vol1", snap); err == nil && s.Online {
			online = true
			break
		}
		time.Sleep(2 * time.Millisecond)
	}
	cmd.Process.Kill()
	cmd.Wait()
	if !online {
		t.Fatal("snapshot mount never set the snapshot online")
	}
	var cleaned struct {
		Cleaned []vss.CleanupResult `json:"cleaned"`
		Errors  []string            `json:"errors"`
	}
	l.mustRun(t, &cleaned, "snapshot", "cleanup", "--json")
	if len(cleaned.Cleaned) != 1 || cleaned.Cleaned[0].Snapshot != snap || cleaned.Cleaned[0].Error != "" {
		t.Fatalf("cleanup: %+v", cleaned)
	}
	if s, _ := l.api.Snapshot("vol1", snap); s.Online {
		t.Fatal("the snapshot is still online after cleanup")
	}
	if isMountpoint(snapMnt) {
		t.Fatal("the snapshot is still mounted after cleanup")
	}
	vols, err := daemon.NewClient(l.runtime).Status(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vols {
		if v.Name != "vol1" {
			t.Errorf("hitkitd still has %s", v.Name)
		}
	}
	if recs, _ := vss.Records(l.state); len(recs) != 0 {
		t.Errorf("records left: %+v", recs)
	}
	// An online snapshot that no record explains is found too.
	if _, err := l.api.SetSnapshot("vol1", snap, groupapi.SetSnapshot{Online: ptrTo(true)}); err != nil {
		t.Fatal(err)
	}
	strays, err := vss.OnlineSnapshots(l.api, l.state, "vol1")
	if err != nil || len(strays) != 1 || strays[0].Snapshot != snap || !strays[0].Online {
		t.Fatalf("OnlineSnapshots = %+v, %v", strays, err)
	}
	l.mustRun(t, nil, "snapshot", "cleanup", "vol1")
	if s, _ := l.api.Snapshot("vol1", snap); s.Online {
		t.Fatal("the snapshot is still online after the second cleanup")
	}
}

func ptrTo[T any](v T) *T { return &v }

// TestSnapshotFreezeThawedOnError: with no snapshot reserve the array
// refuses the snapshot; the filesystem is writable right after.
func TestSnapshotFreezeThawedOnError(t *testing.T) {
	l := startSnapLab(t)
	mnt := l.connectAndMount(t)
	if _, err := l.api.SetSnapshotPolicy("vol1", groupapi.SnapshotPolicy{ReservePercent: 0, WhenFull: groupapi.ReserveRefuse}); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := l.run(t, "snapshot", "create", "vol1")
	if code != 1 || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
		t.Fatalf("create with no reserve: exit %d, stderr %q; want exit 1 and one line", code, errOut)
	}
	wrote := make(chan error, 1)
	go func() { wrote <- os.WriteFile(filepath.Join(mnt, "after"), []byte("thawed"), 0o644) }()
	select {
	case err := <-wrote:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the filesystem is still frozen 5 s after a failed snapshot")
	}
	if snaps, _ := l.api.Snapshots("vol1"); len(snaps) != 0 {
		t.Errorf("snapshots after a refused create: %+v", snaps)
	}
}

// TestBackupIncrementalRestore: a full backup, 8 MiB written, an
// incremental backup that reads about 8 MiB, and the chain restored to a
// fresh volume byte for byte.
func TestBackupIncrementalRestore(t *testing.T) {
	l := startSnapLab(t)
	mnt := l.connectAndMount(t)
	if err := os.WriteFile(filepath.Join(mnt, "first"), bytes.Repeat([]byte("first"), 200000), 0o644); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	var full vss.BackupResult
	l.mustRun(t, &full, "backup", "--to", out, "--json", "vol1")
	if full.Kind != vss.KindFull || full.Frozen == nil || full.BytesRead != 128<<20 {
		t.Fatalf("full backup: %+v", full)
	}

	const n = 8 << 20
	data := make([]byte, n)
	rand.Read(data)
	if err := os.WriteFile(filepath.Join(mnt, "second"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	var incr vss.BackupResult
	l.mustRun(t, &incr, "backup", "--to", out, "--since", full.Snapshot, "--json", "vol1")
	t.Logf("full backup read %d bytes (image %d); incremental after writing %d bytes read %d (image %d)",
		full.BytesRead, full.ImageBytes, n, incr.BytesRead, incr.ImageBytes)
	if incr.Kind != vss.KindIncremental || incr.Parent != full.Snapshot {
		t.Fatalf("incremental: %+v", incr)
	}
	if incr.BytesRead < n || incr.BytesRead > n+n/2 {
		t.Fatalf("the incremental read %d bytes after %d were written; want about that (metadata aside), not the volume's %d",
			incr.BytesRead, n, 128<<20)
	}
	for _, s := range []string{full.Snapshot, incr.Snapshot} {
		if sn, _ := l.api.Snapshot("vol1", s); sn.Online {
			t.Errorf("snapshot %s left online by backup", s)
		}
	}

	// A fresh volume of the same size, restored from the chain.
	l.restoreFresh(t, incr.Image, 2, incr.Snapshot)

	// Refused: the source volume is connected.
	code, _, errOut := l.run(t, append(append([]string{"restore", "--from", incr.Image}, l.groupArgs...), "vol1")...)
	if code != 1 || !strings.Contains(errOut, "connected") {
		t.Errorf("restore onto the connected volume: exit %d: %s", code, errOut)
	}
}

// restoreFresh restores the chain of images ending in image (images of
// them) to a new volume vol2, and checks that it reads as snapshot snap
// of vol1, byte for byte.
func (l *snapLab) restoreFresh(t *testing.T, image string, images int, snap string) {
	t.Helper()
	const secret = "restore-secret-0123"
	fresh, err := l.api.CreateVolume(groupapi.CreateVolume{Name: "vol2", Size: 128 << 20, CHAPSecret: secret})
	if err != nil {
		t.Fatal(err)
	}
	secretFile := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(secretFile, []byte(secret), 0o600)
	var res vss.RestoreResult
	l.mustRun(t, &res, append(append([]string{"restore", "--from", image, "--chap-secret-file", secretFile, "--json"}, l.groupArgs...), "vol2")...)
	if len(res.Images) != images || res.Verified != 128<<20 {
		t.Fatalf("restore: %+v", res)
	}
	want := l.snapshotSum(t, snap, l.vol.CHAPUser, l.secretFile)
	if got := l.volumeSum(t, fresh.IQN, fresh.CHAPUser, secret); got != want {
		t.Fatalf("the restored volume's SHA-256 %x differs from the snapshot's %x", got, want)
	}
}

// TestBackupKeepSnapshots: backups with --keep-snapshots 2 delete the
// oldest backup snapshot, and never a snapshot made by snapshot create or
// by someone else, nor an online one. An incremental from the deleted
// snapshot fails with one clear line, and the chain of images (whose
// first snapshot is gone) still restores byte for byte.
func TestBackupKeepSnapshots(t *testing.T) {
	l := startSnapLab(t)
	mnt := l.connectAndMount(t)
	foreign, err := l.api.CreateSnapshot("vol1", groupapi.CreateSnapshot{Description: "taken by another tool"})
	if err != nil {
		t.Fatal(err)
	}
	var made vss.Created
	l.mustRun(t, &made, "snapshot", "create", "--json", "vol1")

	out := t.TempDir()
	var backups []vss.BackupResult
	backup := func(args ...string) vss.BackupResult {
		t.Helper()
		name := fmt.Sprintf("file%d", len(backups))
		data := make([]byte, 2<<20)
		rand.Read(data)
		if err := os.WriteFile(filepath.Join(mnt, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
		args = append(append([]string{"backup", "--to", out, "--keep-snapshots", "2", "--json"}, args...), "vol1")
		var res vss.BackupResult
		l.mustRun(t, &res, args...)
		backups = append(backups, res)
		return res
	}
	b1 := backup()
	b2 := backup("--since", b1.Snapshot)
	b3 := backup("--since", b2.Snapshot)
	if len(b1.Pruned) != 0 || len(b2.Pruned) != 0 || len(b3.Pruned) != 1 || b3.Pruned[0] != b1.Snapshot {
		t.Fatalf("pruned: %v, %v, %v; want only %s, by the third backup", b1.Pruned, b2.Pruned, b3.Pruned, b1.Snapshot)
	}
	on := l.listSnapshots(t)
	for name, want := range map[string]bool{
		b1.Snapshot: false, b2.Snapshot: true, b3.Snapshot: true, foreign.Name: true, made.Snapshot.Name: true,
	} {
		if on[name] != want {
			t.Errorf("snapshot %s on the array: %v, want %v (list: %v)", name, on[name], want, on)
		}
	}
	if len(on) != 4 {
		t.Errorf("%d snapshots on the array, want 4: %v", len(on), on)
	}
	// The images stay on disk.
	if _, err := os.Stat(b1.Image); err != nil {
		t.Fatalf("the oldest image: %v", err)
	}

	// An incremental from the deleted snapshot: one clear line, exit 1,
	// and no new snapshot.
	code, stdout, stderr := l.run(t, "backup", "--to", out, "--since", b1.Snapshot, "vol1")
	line := strings.TrimSpace(stderr)
	if code != 1 || strings.Contains(line, "\n") || !strings.Contains(line, b1.Snapshot+" of vol1 is gone from the array") ||
		!strings.Contains(line, "take a full backup") {
		t.Fatalf("incremental from a deleted snapshot: exit %d, stdout %q, stderr %q; want exit 1 and one line", code, stdout, stderr)
	}
	t.Logf("since a pruned snapshot: %s", line)
	if after := l.listSnapshots(t); len(after) != len(on) {
		t.Errorf("the refused incremental changed the snapshots: %v, before %v", after, on)
	}

	// An online backup snapshot is never pruned, even beyond the count.
	if _, err := l.api.SetSnapshot("vol1", b2.Snapshot, groupapi.SetSnapshot{Online: ptrTo(true)}); err != nil {
		t.Fatal(err)
	}
	b4 := backup("--since", b3.Snapshot)
	if len(b4.Pruned) != 0 || !l.listSnapshots(t)[b2.Snapshot] {
		t.Fatalf("the fourth backup pruned %v; the online %s must stay", b4.Pruned, b2.Snapshot)
	}
	if _, err := l.api.SetSnapshot("vol1", b2.Snapshot, groupapi.SetSnapshot{Online: ptrTo(false)}); err != nil {
		t.Fatal(err)
	}
	table := l.mustRun(t, nil, "backup", "--to", out, "--since", b4.Snapshot, "--keep-snapshots", "2", "vol1")
	if !strings.Contains(table, b2.Snapshot) || l.listSnapshots(t)[b2.Snapshot] {
		t.Fatalf("offline again, %s is pruned by the next backup and its table says so:\n%s", b2.Snapshot, table)
	}

	// The chain restores byte for byte, its first snapshot gone.
	l.restoreFresh(t, b4.Image, 4, b4.Snapshot)
}

// listSnapshots runs snapshot list --json: each snapshot on the array.
func (l *snapLab) listSnapshots(t *testing.T) map[string]bool {
	t.Helper()
	var list struct {
		Snapshots []groupapi.Snapshot `json:"snapshots"`
	}
	l.mustRun(t, &list, "snapshot", "list", "--json", "vol1")
	on := map[string]bool{}
	for _, s := range list.Snapshots {
		on[s.Name] = true
	}
	return on
}

// TestBackupInterrupted: SIGTERM in the middle of a backup leaves the
// snapshot offline, no image, and no record.
func TestBackupInterrupted(t *testing.T) {
	l := startSnapLab(t)
	l.connectAndMount(t)
	out := t.TempDir()
	var stderr bytes.Buffer
	cmd := exec.Command(l.bin, append(append([]string{"backup"}, l.dirArgs...), "--to", out, "vol1")...)
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var snap string
	for deadline := time.Now().Add(30 * time.Second); snap == "" && time.Now().Before(deadline); {
		snaps, _ := l.api.Snapshots("vol1")
		for _, s := range snaps {
			if s.Online {
				snap = s.Name
			}
		}
		time.Sleep(2 * time.Millisecond)
	}
	// Mid-copy: the temporary image exists.
	copying := false
	for deadline := time.Now().Add(30 * time.Second); !copying && time.Now().Before(deadline); {
		entries, _ := os.ReadDir(out)
		copying = len(entries) > 0
		time.Sleep(2 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	cmd.Process.Signal(syscall.SIGTERM)
	err := cmd.Wait()
	if snap == "" || !copying {
		t.Fatalf("the backup never set its snapshot online (%q) or started copying (%v)", snap, copying)
	}
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("backup after SIGTERM: %v (want exit 1): %s", err, stderr.String())
	}
	if s, _ := l.api.Snapshot("vol1", snap); s.Online {
		t.Fatal("the snapshot is still online after the interrupted backup")
	}
	if left, _ := os.ReadDir(out); len(left) != 0 {
		t.Errorf("files left by the interrupted backup: %v", left)
	}
	if recs, _ := vss.Records(l.state); len(recs) != 0 {
		t.Errorf("records left: %+v", recs)
	}
	t.Logf("interrupted: %s", strings.TrimSpace(stderr.String()))
}

// snapshotSum reads a snapshot in full, online for the while.
func (l *snapLab) snapshotSum(t *testing.T, snap, user, secretFile string) [32]byte {
	t.Helper()
	s, err := l.api.SetSnapshot("vol1", snap, groupapi.SetSnapshot{Online: ptrTo(true)})
	if err != nil {
		t.Fatal(err)
	}
	defer l.api.SetSnapshot("vol1", snap, groupapi.SetSnapshot{Online: ptrTo(false)})
	secret, _ := os.ReadFile(secretFile)
	return l.volumeSum(t, s.IQN, user, string(bytes.TrimSpace(secret)))
}

func (l *snapLab) volumeSum(t *testing.T, iqn, user, secret string) [32]byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	quiet := logrus.New()
	quiet.SetOutput(io.Discard)
	s, err := initiator.Dial(ctx, initiator.Config{Portal: l.g.GroupAddr(), TargetName: iqn, CHAPUser: user, CHAPSecret: []byte(secret), Log: logrus.NewEntry(quiet)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	lu, err := initiator.OpenLogicalUnit(ctx, s, 0)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	buf := make([]byte, 1<<20)
	for off := int64(0); off < lu.Size(); off += int64(len(buf)) {
		if _, err := lu.ReadAt(buf, off); err != nil {
			t.Fatal(err)
		}
		h.Write(buf)
	}
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	return sum
}

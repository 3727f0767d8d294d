package daemon

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/hitkit/hitkit/array"
	"github.com/hitkit/hitkit/internal/labtest"
	"github.com/hitkit/hitkit/mpio"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
)

// testLab is a lab group with vol1 (64 MiB, CHAP) and vol2 (128 MiB,
// open to 127/8, for the filesystem test).
type testLab struct {
	*labtest.Lab
	g      *array.Group
	vol1   array.VolumeConfig
	secret string
	mutual string // the group's answer for mutual CHAP
}

// startLab starts a group with vol1 (CHAP) and vol2 (open to 127/8),
// running the given services, such as the management API.
func startLab(t *testing.T, services ...array.Service) *testLab {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: the lab group binds 127.0.x.y addresses; exports need FUSE and loop devices")
	}
	labtest.RequireSources(t, "127.0.0.2", "127.0.0.3")
	open := array.AccessList{{Network: netip.MustParsePrefix("127.0.0.0/8")}}
	l := labtest.Start(t, labtest.Options{
		Spec: array.Spec{Volumes: []array.VolumeSpec{
			{Name: "vol1", Size: 64 << 20},
			{Name: "vol2", Size: 320 << 20, Access: open},
		}},
		Services: services,
	})
	return &testLab{Lab: l, g: l.Group, vol1: l.Volume(t, "vol1"), secret: l.CHAPSecret(t, "vol1"), mutual: l.MutualCHAPSecret(t)}
}

func (l *testLab) request(name string) ConnectRequest {
	return ConnectRequest{
		Name: name, Portal: l.g.GroupAddr(), Target: l.vol1.IQN,
		CHAPUser: l.vol1.CHAPUser, CHAPSecret: l.secret,
		Sources: []string{"127.0.0.2", "127.0.0.3"}, NoPathTimeout: "20s",
	}
}

func (l *testLab) portDown(t *testing.T, port string) {
	t.Helper()
	if _, err := l.g.Inject(array.FaultRequest{Kind: array.FaultPortDown, Port: port}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.g.ClearFaults() })
}

func quietLogger() *logrus.Logger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return l
}

// runningDaemon is a daemon served in-process on temporary directories.
type runningDaemon struct {
	client  *Client
	runtime string
	state   string
	done    chan struct{}
}

func startDaemon(t *testing.T, runtime, state string) *runningDaemon {
	t.Helper()
	d, err := New(Options{RuntimeDir: runtime, StateDir: state, Log: logrus.NewEntry(quietLogger())})
	if err != nil {
		t.Fatal(err)
	}
	rd := &runningDaemon{client: NewClient(runtime), runtime: runtime, state: state, done: make(chan struct{})}
	go func() {
		defer close(rd.done)
		d.Run(context.Background())
	}()
	t.Cleanup(func() { rd.stop(t) })
	return rd
}

// stop shuts the daemon down through the API and waits, boundedly, for it.
func (rd *runningDaemon) stop(t *testing.T) {
	t.Helper()
	select {
	case <-rd.done:
		return
	default:
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := rd.client.Shutdown(ctx); err != nil {
		t.Errorf("shutdown: %v", err)
	}
	select {
	case <-rd.done:
	case <-time.After(40 * time.Second):
		t.Fatal("hitkitd did not stop within 40 s")
	}
	if _, err := os.Stat(SocketPath(rd.runtime)); !os.IsNotExist(err) {
		t.Errorf("control socket left behind: %v", err)
	}
}

func (rd *runningDaemon) connect(t *testing.T, r ConnectRequest) VolumeInfo {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	v, err := rd.client.Connect(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func (rd *runningDaemon) status(t *testing.T, name string) VolumeInfo {
	t.Helper()
	vs, err := rd.client.Status(context.Background(), name)
	if err != nil || len(vs) != 1 {
		t.Fatalf("status %s = %+v, %v", name, vs, err)
	}
	return vs[0]
}

func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func activePaths(v VolumeInfo) int {
	n := 0
	for _, p := range v.Paths {
		if p.State == mpio.StateActive {
			n++
		}
	}
	return n
}

func requireTools(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed (libnbd-bin, e2fsprogs)", tool)
		}
	}
}

// alignedBuf returns n bytes aligned for O_DIRECT.
func alignedBuf(n int) []byte {
	b := make([]byte, n+4096)
	off := (4096 - int(uintptr(unsafe.Pointer(&b[0]))%4096)) % 4096
	return b[off : off+n]
}

// TestVolume connects a volume over two sources, reads it with nbdinfo,
// writes and verifies through the loop device while a port goes down, and
// disconnects it.
func TestVolume(t *testing.T) {
	lab := startLab(t)
	requireTools(t, "nbdinfo", "nbdcopy")
	rd := startDaemon(t, t.TempDir(), t.TempDir())
	v := rd.connect(t, lab.request("vol1"))

	if got := activePaths(rd.status(t, "vol1")); got != 4 {
		t.Fatalf("%d active paths, want 4: %+v", got, rd.status(t, "vol1").Paths)
	}
	if target, err := os.Readlink(v.Link); err != nil || target != v.BlockDevice {
		t.Fatalf("link %s -> %q (%v), want %s", v.Link, target, err, v.BlockDevice)
	}
	out, err := exec.Command("nbdinfo", "--size", v.NBDURI).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != strconv.Itoa(64<<20) {
		t.Fatalf("nbdinfo --size: %s %v", out, err)
	}

	// Write 16 MiB through the block device, with a port failing midway.
	const chunk, chunks = 1 << 20, 16
	f, err := os.OpenFile(v.Link, os.O_RDWR|unix.O_DIRECT, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	want := sha256.New()
	buf := alignedBuf(chunk)
	for i := range chunks {
		if i == chunks/2 {
			lab.portDown(t, rd.status(t, "vol1").Paths[0].Remote)
		}
		rand.Read(buf)
		want.Write(buf)
		if _, err := f.WriteAt(buf, int64(i)*chunk); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	got := sha256.New()
	for i := range chunks {
		if _, err := f.ReadAt(buf, int64(i)*chunk); err != nil {
			t.Fatalf("read %d: %v", i, err)
		}
		got.Write(buf)
	}
	if !bytes.Equal(got.Sum(nil), want.Sum(nil)) {
		t.Fatal("data read back through the loop device differs")
	}
	// An independent NBD client sees the same bytes.
	nbdOut, err := exec.Command("nbdcopy", v.NBDURI, "-").Output()
	if err != nil {
		t.Fatalf("nbdcopy: %v", err)
	}
	if sum := sha256.Sum256(nbdOut[:chunk*chunks]); !bytes.Equal(sum[:], want.Sum(nil)) {
		t.Fatal("data read through NBD differs")
	}
	f.Close()

	lab.g.ClearFaults()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := rd.client.Disconnect(ctx, "vol1"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(v.Link); !os.IsNotExist(err) {
		t.Errorf("link %s left after disconnect: %v", v.Link, err)
	}
	if backing := loopBacking(v.BlockDevice); backing != "" {
		t.Errorf("%s still attached to %s", v.BlockDevice, backing)
	}
	if _, err := os.Stat(fuseDir(rd.runtime, "vol1")); !os.IsNotExist(err) {
		t.Errorf("FUSE mount point left after disconnect: %v", err)
	}
	if vs, _ := rd.client.Status(ctx, ""); len(vs) != 0 {
		t.Errorf("volumes after disconnect: %+v", vs)
	}
	for _, err := range []error{rd.client.Disconnect(ctx, "vol1"), func() error { _, err := rd.client.Request(ctx, "vol1"); return err }()} {
		if !errors.Is(err, ErrNotConnected) || err.Error() != "no volume vol1 is connected" {
			t.Errorf("after disconnect: %v, want ErrNotConnected saying so", err)
		}
	}
}

// loopBacking returns the file a loop device is attached to, or "".
func loopBacking(dev string) string {
	b, err := os.ReadFile(filepath.Join("/sys/block", filepath.Base(dev), "loop/backing_file"))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// TestLoginAtBoot stops the daemon and starts another on the same state
// directory: the volume comes back with its data.
func TestLoginAtBoot(t *testing.T) {
	lab := startLab(t)
	runtime, state := t.TempDir(), t.TempDir()
	rd := startDaemon(t, runtime, state)
	r := lab.request("boot")
	r.LoginAtBoot = true
	// Mutual CHAP too, so that both secrets must survive the restart. A
	// wrong mutual secret first shows that the array is really checked.
	wrong := lab.request("wrong-mutual")
	wrong.MutualUser, wrong.MutualSecret = lab.g.Name(), "not-the-array-secret"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	if _, err := rd.client.Connect(ctx, wrong); err == nil || !strings.Contains(err.Error(), "mutual") {
		t.Fatalf("connect with a wrong mutual secret: err = %v, want a mutual CHAP failure", err)
	}
	cancel()
	r.MutualUser, r.MutualSecret = lab.g.Name(), lab.mutual
	v := rd.connect(t, r)

	data := make([]byte, 1<<20)
	rand.Read(data)
	f, err := os.OpenFile(v.Link, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(data, 4<<20); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	saved, _ := os.ReadFile(filepath.Join(state, "volumes.json"))
	if bytes.Contains(saved, []byte(lab.secret)) || bytes.Contains(saved, []byte(lab.mutual)) {
		t.Fatal("volumes.json holds a CHAP secret")
	}

	rd.stop(t)
	if _, err := os.Lstat(v.Link); !os.IsNotExist(err) {
		t.Fatalf("link left after stop: %v", err)
	}

	// The array is unreachable when the daemon starts: it keeps trying.
	lab.portDown(t, lab.g.GroupAddr())
	rd = startDaemon(t, runtime, state)
	time.Sleep(500 * time.Millisecond)
	if vs, err := rd.client.Status(context.Background(), ""); err != nil || len(vs) != 0 {
		t.Fatalf("volumes with the group IP down: %+v %v", vs, err)
	}
	lab.g.ClearFaults()
	var back VolumeInfo
	waitFor(t, 30*time.Second, "volume reconnected at start", func() bool {
		vs, err := rd.client.Status(context.Background(), "")
		if err == nil && len(vs) == 1 {
			back = vs[0]
			return true
		}
		return false
	})
	t.Logf("reconnected %s on %s over %d paths", back.Name, back.BlockDevice, len(back.Paths))
	if back.Name != "boot" || !back.LoginAtBoot {
		t.Fatalf("reconnected %+v", back)
	}
	got := make([]byte, len(data))
	f, err = os.Open(back.Link)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.ReadAt(got, 4<<20); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("data differs after the daemon restarted")
	}
	f.Close()
	// Disconnecting forgets it: the next start brings nothing back.
	if err := rd.client.Disconnect(context.Background(), "boot"); err != nil {
		t.Fatal(err)
	}
	if saved, err := (&store{dir: state}).load(); err != nil || len(saved) != 0 {
		t.Fatalf("saved after disconnect: %+v %v", saved, err)
	}
}

// TestStopAllPathsDown: a daemon whose every path is down still stops,
// within its bounded waits, and removes its devices.
func TestStopAllPathsDown(t *testing.T) {
	lab := startLab(t)
	rd := startDaemon(t, t.TempDir(), t.TempDir())
	v := rd.connect(t, lab.request("down"))
	lab.portDown(t, lab.g.GroupAddr())
	for _, m := range lab.g.Members() {
		for _, p := range m.Ports() {
			lab.portDown(t, p.Addr)
		}
	}
	waitFor(t, 10*time.Second, "all paths down", func() bool { return activePaths(rd.status(t, "down")) == 0 })
	start := time.Now()
	rd.stop(t)
	t.Logf("stopped in %v with every path down", time.Since(start).Round(time.Millisecond))
	if _, err := os.Lstat(v.Link); !os.IsNotExist(err) {
		t.Errorf("link left after stop: %v", err)
	}
	if backing := loopBacking(v.BlockDevice); backing != "" {
		t.Errorf("%s still attached to %s", v.BlockDevice, backing)
	}
}

package array

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hitkit/hitkit/internal/testlog"
	"github.com/sirupsen/logrus"
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
	err = v.Rebalance(context.Background(), dir, []int{1, 2}, false, func() error { committed = true; return nil }, func(n int64) { moved = n })
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
	if err := v.Rebalance(context.Background(), dir, []int{1, 2, 3}, false, func() error { return boom }, func(int64) {}); !errors.Is(err, boom) {
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
	if err := v.Rebalance(context.Background(), dir, []int{1, 2, 3}, true, func() error { return nil }, func(int64) {}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(volumeBytes(t, v), live) {
		t.Fatal("data changed in the second rebalance")
	}
}

// TestRebalanceCutsStraysPastTheEnd: a stray copy that an interrupted
// rebalance left past the end of a volume that shrank since must not
// come back when the volume grows after the next rebalance.
func TestRebalanceCutsStraysPastTheEnd(t *testing.T) {
	dir := t.TempDir()
	v := openTestVolume(t, dir, 8*testPage, 1)
	if _, err := v.WriteAt(randomBytes(8*testPage, 4), 0); err != nil {
		t.Fatal(err)
	}
	stray, err := openMemberFile(volumeFile(dir, 2, "v"), 8*testPage)
	if err != nil {
		t.Fatal(err)
	}
	stray.WriteAt(bytes.Repeat([]byte{0xee}, 8*testPage), 0)
	stray.Close()
	if err := v.Resize(4 * testPage); err != nil {
		t.Fatal(err)
	}
	live := volumeBytes(t, v)
	if err := v.Rebalance(context.Background(), dir, []int{1, 2}, false, func() error { return nil }, func(int64) {}); err != nil {
		t.Fatal(err)
	}
	if err := v.Resize(8 * testPage); err != nil {
		t.Fatal(err)
	}
	want := append(live, make([]byte, 4*testPage)...)
	if got := volumeBytes(t, v); !bytes.Equal(got, want) {
		t.Fatalf("after shrink, rebalance and grow the volume does not read its data then zeroes (page 5 starts %x)", got[5*testPage:5*testPage+4])
	}
}

// TestRebalanceCancelled: a cancelled rebalance stops between pages and
// keeps the old page map and data, like a crash before the commit.
func TestRebalanceCancelled(t *testing.T) {
	dir := t.TempDir()
	v := openTestVolume(t, dir, 16*testPage, 1)
	if _, err := v.WriteAt(randomBytes(16*testPage, 5), 0); err != nil {
		t.Fatal(err)
	}
	live := volumeBytes(t, v)
	ctx, cancel := context.WithCancel(context.Background())
	var moved int64
	err := v.Rebalance(ctx, dir, []int{1, 2}, false, func() error { t.Error("committed a cancelled rebalance"); return nil }, func(n int64) {
		if moved = n; n == 3 {
			cancel()
		}
	})
	if !errors.Is(err, context.Canceled) || moved != 3 {
		t.Fatalf("cancelled after 3 pages: err %v, moved %d", err, moved)
	}
	if pm := v.PageMap(); !slices.Equal(pm.Members, []int{1}) || !bytes.Equal(volumeBytes(t, v), live) {
		t.Fatalf("after a cancelled rebalance: members %v, data same %v", pm.Members, bytes.Equal(volumeBytes(t, v), live))
	}
}

// logHook hears a group's log entries: it keeps their messages and
// passes each entry to fire, if set.
type logHook struct {
	mu   sync.Mutex
	msgs []string
	fire func(*logrus.Entry)
}

func (h *logHook) Levels() []logrus.Level { return logrus.AllLevels }

func (h *logHook) Fire(e *logrus.Entry) error {
	h.mu.Lock()
	h.msgs = append(h.msgs, e.Message)
	fire := h.fire
	h.mu.Unlock()
	if fire != nil {
		fire(e)
	}
	return nil
}

// count says how many entries had message msg.
func (h *logHook) count(msg string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, m := range h.msgs {
		if m == msg {
			n++
		}
	}
	return n
}

// hookedLogger is testlog.FailureLog with hook added.
func hookedLogger(t *testing.T, hook *logHook) logrus.FieldLogger {
	l := testlog.FailureLog(t).(*logrus.Logger)
	l.AddHook(hook)
	return l
}

// startSite starts a group of member 1 with member 2 waiting to join, on
// a free random base, with volumes of 64 KiB pages filled with random
// data. It returns the group and each volume's bytes.
func startSite(t *testing.T, vols ...VolumeSpec) (*Group, map[string][]byte) {
	t.Helper()
	g := startGroup(t, Spec{Members: 1, Uninitialized: 1, PageSize: testPage, Volumes: vols})
	want := map[string][]byte{}
	for i, vs := range vols {
		v, err := g.Volume(vs.Name)
		if err != nil {
			t.Fatal(err)
		}
		want[vs.Name] = randomBytes(int(vs.Size), uint64(10+i))
		if _, err := v.WriteAt(want[vs.Name], 0); err != nil {
			t.Fatal(err)
		}
	}
	return g, want
}

// reopen serves the group in dir again.
func reopen(t *testing.T, dir string, log logrus.FieldLogger) *Group {
	t.Helper()
	g, err := Open(dir, Options{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return g
}

// checkVolumes wants every volume to read back its bytes.
func checkVolumes(t *testing.T, g *Group, want map[string][]byte) {
	t.Helper()
	for name, b := range want {
		v, err := g.Volume(name)
		if err != nil {
			t.Fatal(err)
		}
		if got := volumeBytes(t, v); !bytes.Equal(got, b) {
			t.Fatalf("volume %s (on %v) does not read back its data", name, v.PageMap().Members)
		}
	}
}

// waitSpread waits, for at most 20 s, until every volume's page map
// lists members.
func waitSpread(t *testing.T, g *Group, members []int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var behind []string
		for _, vc := range g.Config().Volumes {
			pm, err := g.PageMap(vc.Name)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(pm.Members, members) {
				behind = append(behind, fmt.Sprintf("%s on %v", vc.Name, pm.Members))
			}
		}
		if len(behind) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 20 s not every volume is on %v: %s", members, strings.Join(behind, ", "))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitLog waits, for at most 20 s, for a log message.
func waitLog(t *testing.T, h *logHook, msg string) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); h.count(msg) == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in the log after 20 s", msg)
		}
	}
}

// volumeMembers is each volume's member list in dir's group.json.
func volumeMembers(t *testing.T, dir string) map[string][]int {
	t.Helper()
	c, err := LoadConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]int{}
	for _, v := range c.Volumes {
		out[v.Name] = v.Members
	}
	return out
}

// TestOpenResumesInterruptedJoin stops a join in the middle of its second
// volume, as a killed lab would leave it: member 2 in the group, one
// volume spread, one half copied (strays on member 2), one untouched.
// Hosts then write over some of the strays while the group is down. The
// next start finishes the rebalance in the background while the group
// serves, and every byte reads back, then and after another restart.
func TestOpenResumesInterruptedJoin(t *testing.T) {
	const size = 64 * testPage
	g, want := startSite(t, VolumeSpec{Name: "a", Size: size}, VolumeSpec{Name: "b", Size: size, Thick: true}, VolumeSpec{Name: "c", Size: size})
	dir := g.Dir()
	pw, err := readSecret(MembershipPasswordFile(dir))
	if err != nil {
		t.Fatal(err)
	}
	base := g.Config().BaseIP
	ip := func(n int) netip.Addr { b := base.As4(); b[3] += byte(n); return netip.AddrFrom4(b) }
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, err = g.SetUpMember(ctx, SetupRequest{
		Member: 2, Name: "beta", IP: netip.PrefixFrom(ip(21), 24), Gateway: ip(254), RAID: "raid10",
		GroupName: g.Name(), GroupIP: g.Config().groupIP(), MembershipPassword: pw,
	}, SetupOptions{RAIDDelay: time.Millisecond, Progress: func(step string, pct int) {
		// Half the moving pages: the first volume is done, the second
		// half copied.
		if step == StepRebalancing && pct >= 50+50*49/100 {
			cancel()
		}
	}})
	if err == nil || !strings.Contains(err.Error(), "rebalancing stopped") {
		t.Fatalf("join cancelled mid-rebalance: %v", err)
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	if got := volumeMembers(t, dir); !slices.Equal(got["a"], []int{1, 2}) || !slices.Equal(got["b"], []int{1}) || !slices.Equal(got["c"], []int{1}) {
		t.Fatalf("group.json after the interrupted join: %v", got)
	}
	// Member 2 holds copies of b's first odd pages that the page map
	// never reads. Hosts now write over two of them: zeroes on page 1,
	// new data on page 3.
	strays, err := os.ReadFile(volumeFile(dir, 2, "b"))
	if err != nil || !bytes.Equal(strays[testPage:2*testPage], want["b"][testPage:2*testPage]) {
		t.Fatalf("no stray copy of b's page 1 on member 2 (%v)", err)
	}
	b, err := OpenVolume(dir, "b", PageMap{PageSize: testPage, Size: size, Members: []int{1}}, true)
	if err != nil {
		t.Fatal(err)
	}
	copy(want["b"][testPage:], make([]byte, testPage))
	copy(want["b"][3*testPage:], randomBytes(testPage, 99))
	if _, err := b.WriteAt(want["b"][testPage:4*testPage], testPage); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	hook := &logHook{}
	g = reopen(t, dir, hookedLogger(t, hook))
	checkVolumes(t, g, want) // while the rebalance runs, or after it
	waitSpread(t, g, []int{1, 2})
	waitLog(t, hook, "rebalance finished")
	if hook.count("resuming an interrupted rebalance") != 1 || hook.count("volume rebalanced") != 2 {
		t.Fatalf("log: %q", hook.msgs)
	}
	checkVolumes(t, g, want)
	if got := volumeMembers(t, dir); !slices.Equal(got["b"], []int{1, 2}) || !slices.Equal(got["c"], []int{1, 2}) {
		t.Fatalf("group.json after the resumed rebalance: %v", got)
	}
	c, _ := g.Volume("c")
	if alloc := c.AllocatedBytes(); alloc[1] > size/2+testPage || alloc[2] < size/2 {
		t.Fatalf("c's space per member after the rebalance: %v", alloc)
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}

	hook = &logHook{}
	g = reopen(t, dir, hookedLogger(t, hook))
	checkVolumes(t, g, want)
	if n := hook.count("resuming an interrupted rebalance"); n != 0 {
		t.Fatalf("a group with nothing to rebalance started a rebalance")
	}
}

// markJoined edits dir's group.json as a lab killed after a join's first
// save leaves it: member 2 in the group, the volumes where they were.
func markJoined(t *testing.T, dir string) {
	t.Helper()
	cfg, err := LoadConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Members[1].Name, cfg.Members[1].Initialized, cfg.Members[1].Ports, cfg.Members[1].RAID = "beta", true, 2, "raid10"
	if err := saveConfig(dir, cfg); err != nil {
		t.Fatal(err)
	}
}

// TestCloseDuringResumedRebalance: a group closed while it rebalances in
// the background stops the rebalance and returns; the volume keeps its
// old layout and data, and the next start finishes the job.
func TestCloseDuringResumedRebalance(t *testing.T) {
	const size = 1024 * testPage
	g, want := startSite(t, VolumeSpec{Name: "big", Size: size})
	dir := g.Dir()
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	markJoined(t, dir)

	// The rebalance stops at its 10 % log line until the group's Close
	// has cancelled it.
	moving, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	hook := &logHook{fire: func(e *logrus.Entry) {
		if pct, _ := e.Data["percent"].(int); e.Message == "rebalancing" && pct >= 10 && pct < 100 {
			once.Do(func() { close(moving); <-release })
		}
	}}
	g, err := Open(dir, Options{Logger: hookedLogger(t, hook)})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-moving:
	case <-time.After(20 * time.Second):
		g.Close()
		t.Fatal("the rebalance did not reach 10 % in 20 s")
	}
	closed := make(chan error, 1)
	start := time.Now()
	go func() { closed <- g.Close() }()
	for deadline := time.Now().Add(10 * time.Second); g.bgCtx.Err() == nil; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("Close did not cancel the rebalance in 10 s")
		}
	}
	close(release)
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("Close returned %v after it started", time.Since(start))
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return in 10 s")
	}
	if got := volumeMembers(t, dir)["big"]; !slices.Equal(got, []int{1}) {
		t.Fatalf("the stopped rebalance left the volume on %v in group.json", got)
	}
	if hook.count("rebalance paused: the group is stopping; it resumes at the next start") != 1 {
		t.Fatalf("log: %q", hook.msgs)
	}

	g = reopen(t, dir, testlog.FailureLog(t))
	waitSpread(t, g, []int{1, 2})
	checkVolumes(t, g, want)
}

// TestKilledLabResumes kills a lab process, the built hitkit binary, in
// the middle of its background rebalance, right after the first of three
// volumes moved, then starts it again: the second start finishes the
// job, and every byte reads back.
func TestKilledLabResumes(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("the go tool is not in PATH; this test builds the hitkit binary")
	}
	bin := filepath.Join(t.TempDir(), "hitkit")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/hitkit/hitkit").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	dir := t.TempDir()
	const size = 64 << 20 // 32 pages of 1 MiB to move per volume
	names := []string{"a", "b", "c"}
	spec := Spec{BaseIP: testBase(), Members: 1, Uninitialized: 1}
	for _, n := range names {
		spec.Volumes = append(spec.Volumes, VolumeSpec{Name: n, Size: size})
	}
	if _, err := Create(dir, spec); err != nil {
		t.Fatal(err)
	}
	want := map[string][]byte{}
	for i, n := range names {
		want[n] = randomBytes(size, uint64(20+i))
		writeVolume(t, dir, n, []int{1}, want[n])
	}
	markJoined(t, dir)

	logPath := filepath.Join(dir, "lab.log")
	logCount := func(msg string) int {
		b, _ := os.ReadFile(logPath)
		return strings.Count(string(b), fmt.Sprintf("msg=%q", msg))
	}
	lab := startLab(t, bin, dir)
	for deadline := time.Now().Add(60 * time.Second); logCount("volume rebalanced") == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no volume rebalanced in 60 s; lab.log:\n%s", testlog.Tail(readString(logPath), 3000))
		}
	}
	lab.Process.Kill()
	lab.Wait()
	spread := 0
	for _, m := range volumeMembers(t, dir) {
		if slices.Equal(m, []int{1, 2}) {
			spread++
		}
	}
	if spread == 0 || spread == len(names) {
		t.Fatalf("killed with %d of %d volumes rebalanced; the test wants the kill mid-rebalance", spread, len(names))
	}
	t.Logf("killed with %d of %d volumes rebalanced", spread, len(names))

	lab = startLab(t, bin, dir)
	for deadline := time.Now().Add(60 * time.Second); logCount("rebalance finished") == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the restarted lab did not finish the rebalance in 60 s; lab.log:\n%s", testlog.Tail(readString(logPath), 3000))
		}
	}
	lab.Process.Signal(syscall.SIGTERM)
	if err := lab.Wait(); err != nil {
		t.Fatalf("lab stopped on SIGTERM: %v", err)
	}
	for n, m := range volumeMembers(t, dir) {
		if !slices.Equal(m, []int{1, 2}) {
			t.Fatalf("volume %s is on %v after the restart", n, m)
		}
	}
	if n := logCount("resuming an interrupted rebalance"); n != 2 {
		t.Fatalf("%d resumed rebalances in lab.log, want 2", n)
	}
	for _, n := range names {
		v, err := OpenVolume(dir, n, PageMap{PageSize: DefaultPageSize, Size: size, Members: []int{1, 2}}, false)
		if err != nil {
			t.Fatal(err)
		}
		same := bytes.Equal(volumeBytes(t, v), want[n])
		v.Close()
		if !same {
			t.Fatalf("volume %s does not read back its data", n)
		}
	}
}

// writeVolume writes b at the start of volume name, laid out on members.
func writeVolume(t *testing.T, dir, name string, members []int, b []byte) {
	t.Helper()
	v, err := OpenVolume(dir, name, PageMap{PageSize: DefaultPageSize, Size: int64(len(b)), Members: members}, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.WriteAt(b, 0); err != nil {
		t.Fatal(err)
	}
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
}

// startLab runs `hitkit lab up --foreground` on dir; the test kills it
// if it is still running at the end.
func startLab(t *testing.T, bin, dir string) *exec.Cmd {
	t.Helper()
	lab := exec.Command(bin, "lab", "up", "--dir", dir, "--foreground")
	if err := lab.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if lab.ProcessState == nil {
			lab.Process.Kill()
			lab.Wait()
		}
	})
	return lab
}

func readString(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

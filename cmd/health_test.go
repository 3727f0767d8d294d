package cmd

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"math/rand/v2"
	"net"
	"net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/hitkit/hitkit/array"
	"github.com/hitkit/hitkit/daemon"
	"github.com/hitkit/hitkit/groupapi"
	"github.com/hitkit/hitkit/health"
	"github.com/hitkit/hitkit/internal/labtest"
	"github.com/hitkit/hitkit/mpio"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/sirupsen/logrus"
)

// TestHealthUsage: mistakes exit UNKNOWN (3), never 2, which Nagios
// reads as CRITICAL.
func TestHealthUsage(t *testing.T) {
	dirs := []string{"--state-dir", t.TempDir(), "--runtime-dir", t.TempDir()}
	for _, args := range [][]string{
		append([]string{"health", "--json", "--nagios"}, dirs...),
		append([]string{"health", "--no-such-flag"}, dirs...),
		append([]string{"health", "--timeout", "0s"}, dirs...),
		append(append([]string{"health"}, dirs...), "stray"),
	} {
		if code, _, errOut := hitkit(t, args...); code != 3 || !strings.HasPrefix(errOut, "hitkit: ") {
			t.Errorf("%v: exit %d, want 3 with one error line: %q", args, code, errOut)
		}
	}
}

// TestHealthNoDaemon: with nothing configured, no hitkitd is UNKNOWN;
// once a run has seen a volume, no hitkitd is CRITICAL.
func TestHealthNoDaemon(t *testing.T) {
	state, runtime := t.TempDir(), t.TempDir()
	args := []string{"health", "--nagios", "--state-dir", state, "--runtime-dir", runtime}
	code, out, _ := hitkit(t, args...)
	if code != 3 || !strings.HasPrefix(out, "HITKIT UNKNOWN - ") || !strings.Contains(out, "no volume is configured") {
		t.Fatalf("exit %d: %s", code, out)
	}
	mem := health.Memory{State: health.OK, Volumes: map[string]health.VolumeMemory{"vol1": {}}}
	if err := mem.Save(state); err != nil {
		t.Fatal(err)
	}
	for range 2 { // and it stays so: the memory keeps the volume
		code, out, _ = hitkit(t, args...)
		if code != 2 || !strings.HasPrefix(out, "HITKIT CRITICAL - ") || !strings.Contains(out, "vol1 not served") {
			t.Fatalf("exit %d: %s", code, out)
		}
	}
}

// TestHealthLock: a run while another holds the lock exits UNKNOWN with
// a clear message, and leaves the memory alone.
func TestHealthLock(t *testing.T) {
	state, runtime := t.TempDir(), t.TempDir()
	unlock, err := health.Lock(state)
	if err != nil {
		t.Fatal(err)
	}
	code, out, _ := hitkit(t, "health", "--nagios", "--state-dir", state, "--runtime-dir", runtime)
	if code != 3 || !strings.HasPrefix(out, "HITKIT UNKNOWN - another hitkit health run is in progress") {
		t.Fatalf("exit %d: %q", code, out)
	}
	code, _, errOut := hitkit(t, "health", "--state-dir", state, "--runtime-dir", runtime)
	if code != 3 || !strings.Contains(errOut, "another hitkit health run is in progress") {
		t.Fatalf("exit %d: %q", code, errOut)
	}
	if _, err := os.Stat(filepath.Join(state, "health.json")); !os.IsNotExist(err) {
		t.Fatalf("a locked-out run wrote its memory: %v", err)
	}
	unlock()
	if code, _, _ := hitkit(t, "health", "--state-dir", state, "--runtime-dir", runtime); code != 3 {
		t.Fatalf("after unlock: exit %d, want 3 (nothing configured)", code)
	}
}

// healthLab is a lab group with its management API, and hitkitd in this
// process with vol1 connected over four sessions from two sources.
type healthLab struct {
	g           *array.Group
	dir         string
	fingerprint string
	password    string
	runtime     string
	state       string
	stopDaemon  func()
}

func startHealthLab(t *testing.T) *healthLab {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: lab group on 127.0.x.y, FUSE and loop devices")
	}
	lab := labtest.Start(t, labtest.Options{Spec: array.Spec{Volumes: []array.VolumeSpec{{Name: "vol1", Size: 32 << 20}}}, ManagementAPI: true})
	g := lab.Group
	l := &healthLab{g: g, dir: lab.Dir, runtime: t.TempDir(), state: t.TempDir(),
		password: lab.AdminPassword(t), fingerprint: lab.Fingerprint(t)}
	secret := lab.CHAPSecret(t, "vol1")
	quiet := logrus.New()
	quiet.SetOutput(io.Discard)
	d, err := daemon.New(daemon.Options{RuntimeDir: l.runtime, StateDir: l.state, Log: logrus.NewEntry(quiet)})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		d.Run(context.Background())
	}()
	l.stopDaemon = func() {
		select {
		case <-done:
			return
		default:
		}
		d.Stop()
		select {
		case <-done:
		case <-time.After(40 * time.Second):
			t.Error("hitkitd did not stop within 40 s")
		}
	}
	t.Cleanup(l.stopDaemon)
	vol := g.Config().Volumes[0]
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// Login at boot, so that with hitkitd stopped health still knows
	// that vol1 should be served. The group admin password reaches health
	// through hitkitd.
	_, err = daemon.NewClient(l.runtime).Connect(ctx, daemon.ConnectRequest{
		Name: "vol1", Portal: g.GroupAddr(), Target: vol.IQN,
		CHAPUser: vol.CHAPUser, CHAPSecret: secret,
		Sources: []string{"127.0.0.2", "127.0.0.3"}, NoPathTimeout: "20s", LoginAtBoot: true,
		GroupFingerprint: l.fingerprint, GroupAdminPassword: l.password,
	})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func (l *healthLab) status(t *testing.T) daemon.VolumeInfo {
	t.Helper()
	vs, err := daemon.NewClient(l.runtime).Status(context.Background(), "vol1")
	if err != nil || len(vs) != 1 {
		t.Fatalf("status: %+v %v", vs, err)
	}
	return vs[0]
}

func (l *healthLab) fault(t *testing.T, kind array.FaultKind, port string) {
	t.Helper()
	if _, err := l.g.Inject(array.FaultRequest{Kind: kind, Port: port}); err != nil {
		t.Fatal(err)
	}
}

func (l *healthLab) usablePaths(t *testing.T) int {
	n := 0
	for _, p := range l.status(t).Paths {
		if p.State == mpio.StateActive || p.State == mpio.StateStandby {
			n++
		}
	}
	return n
}

// smtpSink is Debian's aiosmtpd, storing every message in a maildir.
type smtpSink struct {
	addr    string
	maildir string
}

func startSMTPSink(t *testing.T) *smtpSink {
	t.Helper()
	python := "/usr/bin/python3" // Debian's, which has python3-aiosmtpd
	if err := exec.Command(python, "-c", "import aiosmtpd").Run(); err != nil {
		t.Skip("python3-aiosmtpd is not installed (make deps installs it)")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	s := &smtpSink{addr: addr, maildir: filepath.Join(t.TempDir(), "mail")}
	cmd := exec.Command(python, "-m", "aiosmtpd", "-n", "-l", addr, "-c", "aiosmtpd.handlers.Mailbox", s.maildir)
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("aiosmtpd did not listen on %s within 15 s: %s", addr, log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// subjects are the Subject headers of the mails received, oldest first.
func (s *smtpSink) subjects(t *testing.T) []string {
	t.Helper()
	var files []string
	for _, sub := range []string{"new", "cur"} {
		entries, _ := os.ReadDir(filepath.Join(s.maildir, sub))
		for _, e := range entries {
			files = append(files, filepath.Join(s.maildir, sub, e.Name()))
		}
	}
	type dated struct {
		at      time.Time
		subject string
	}
	var mails []dated
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		m, err := mail.ReadMessage(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		info, _ := os.Stat(f)
		mails = append(mails, dated{info.ModTime(), m.Header.Get("Subject")})
	}
	sort.Slice(mails, func(i, j int) bool { return mails[i].at.Before(mails[j].at) })
	var out []string
	for _, m := range mails {
		out = append(out, m.subject)
	}
	return out
}

// promFile parses a textfile with the Prometheus text parser.
func promFile(t *testing.T, path string) map[string]*dto.MetricFamily {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := parser.TextToMetricFamilies(f)
	if err != nil {
		t.Fatalf("%s does not parse: %v", path, err)
	}
	return mfs
}

// promValue is the value of the sample of family name whose labels
// include want (name, value pairs); it fails the test if there is none.
func promValue(t *testing.T, mfs map[string]*dto.MetricFamily, name string, want ...string) float64 {
	t.Helper()
	mf := mfs[name]
	if mf == nil {
		t.Fatalf("no metric %s", name)
	}
	if mf.GetHelp() == "" || mf.Type == nil {
		t.Errorf("%s has no HELP or TYPE", name)
	}
	for _, m := range mf.Metric {
		labels := map[string]string{}
		for _, lp := range m.Label {
			labels[lp.GetName()] = lp.GetValue()
		}
		match := true
		for i := 0; i+1 < len(want); i += 2 {
			match = match && labels[want[i]] == want[i+1]
		}
		if !match {
			continue
		}
		if m.Counter != nil {
			return m.Counter.GetValue()
		}
		return m.Gauge.GetValue()
	}
	t.Fatalf("no sample of %s with labels %v", name, want)
	return 0
}

// TestHealthLab runs `hitkit health` against a lab group and hitkitd
// through faults: all OK, a member port down (WARNING), every port down
// (CRITICAL), recovery, and hitkitd stopped (CRITICAL). It checks the exit
// codes, the Nagios line, the Prometheus file through the Prometheus
// parser, and that aiosmtpd receives one alert per state change.
func TestHealthLab(t *testing.T) {
	l := startHealthLab(t)
	sink := startSMTPSink(t)
	prom := filepath.Join(t.TempDir(), "hitkit.prom")
	// Every run's state, from its exit code, and the alerts it must have
	// caused: one per change, starting from OK.
	states := []health.State{health.OK}
	run := func(extra ...string) (int, string, string) {
		args := append([]string{"health", "--state-dir", l.state, "--runtime-dir", l.runtime, "--timeout", "20s",
			"--prometheus", prom, "--alert-email", "admin@example.org", "--alert-from", "hitkit@test.invalid", "--smtp", sink.addr}, extra...)
		code, out, errOut := hitkit(t, args...)
		states = append(states, health.State(code))
		t.Logf("health %v: exit %d\n%s%s", extra, code, out, errOut)
		return code, out, errOut
	}
	checkMails := func() {
		t.Helper()
		var want []string
		for i := 1; i < len(states); i++ {
			if states[i] != states[i-1] {
				want = append(want, states[i-1].String()+" -> "+states[i].String())
			}
		}
		got := sink.subjects(t)
		if len(got) != len(want) {
			t.Fatalf("mails %q, want one per change: %q", got, want)
		}
		for i := range want {
			if !strings.HasSuffix(got[i], want[i]) {
				t.Fatalf("mail %d subject %q, want ...%q", i+1, got[i], want[i])
			}
		}
	}

	// All OK: exit 0, quiet without --verbose, no mail.
	code, out, errOut := run()
	if code != 0 || out != "" {
		t.Fatalf("all OK: exit %d, output %q %s", code, out, errOut)
	}
	code, out, _ = run("--nagios")
	if code != 0 || !strings.HasPrefix(out, "HITKIT OK - 1 volume(s), 4 of 4 paths up | ") || !strings.Contains(out, "'vol1 paths up'=4;") {
		t.Fatalf("nagios: exit %d: %s", code, out)
	}
	mfs := promFile(t, prom)
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"hitkit_health_state", nil, 0},
		{"hitkit_daemon_up", nil, 1},
		{"hitkit_volume_paths", []string{"volume", "vol1"}, 4},
		{"hitkit_volume_paths_up", []string{"volume", "vol1"}, 4},
		{"hitkit_path_up", []string{"volume", "vol1", "path", "1"}, 1},
		{"hitkit_group_reachable", []string{"group", l.g.Name()}, 1},
		{"hitkit_group_ports_down", []string{"group", l.g.Name()}, 0},
		{"hitkit_snapshots_online", []string{"volume", "vol1"}, 0},
		{"hitkit_nic_up", []string{"nic", "lo"}, 1},
	} {
		if got := promValue(t, mfs, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	code, out, _ = run("--json")
	var rep health.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != 0 || rep.State != health.OK || len(rep.Volumes) != 1 ||
		rep.Volumes[0].PathsUp != 4 || len(rep.Groups) != 1 || !rep.Groups[0].Reachable {
		t.Fatalf("json: exit %d %v: %s", code, err, out)
	}
	checkMails()

	// The port under path 1 goes down: the path logs in again elsewhere,
	// and the group reports the dead port: WARNING, one mail.
	down := l.status(t).Paths[0].Remote
	l.fault(t, array.FaultPortDown, down)
	t.Cleanup(func() { l.g.ClearFaults() })
	healthWait(t, 10*time.Second, "path 1 failed", func() bool { return l.status(t).Paths[0].Errors > 0 })
	code, out, _ = run("--nagios")
	if code != 1 || !strings.HasPrefix(out, "HITKIT WARNING - ") || !strings.Contains(out, down) {
		t.Fatalf("port %s down: exit %d: %s", down, code, out)
	}
	checkMails()
	code, out, _ = run() // the table, for people
	if code != 1 || !strings.Contains(out, "hitkit health: WARNING") || !strings.Contains(out, "port is down") {
		t.Fatalf("port down, table: exit %d: %s", code, out)
	}
	checkMails() // no mail on a repeat
	if got := promValue(t, promFile(t, prom), "hitkit_group_ports_down", "group", l.g.Name()); got != 1 {
		t.Errorf("hitkit_group_ports_down = %v, want 1", got)
	}

	// Every port down, the group IP too: no path left, CRITICAL.
	l.fault(t, array.FaultPortDown, l.g.GroupAddr())
	for _, m := range l.g.Members() {
		for _, p := range m.Ports() {
			if p.Addr != down {
				l.fault(t, array.FaultPortDown, p.Addr)
			}
		}
	}
	healthWait(t, 15*time.Second, "all paths down", func() bool { return l.usablePaths(t) == 0 })
	code, out, _ = run("--nagios")
	if code != 2 || !strings.HasPrefix(out, "HITKIT CRITICAL - vol1: no usable path") || !strings.Contains(out, "'vol1 paths up'=0;") {
		t.Fatalf("all ports down: exit %d: %s", code, out)
	}
	if got := promValue(t, promFile(t, prom), "hitkit_health_state"); got != 2 {
		t.Errorf("hitkit_health_state = %v, want 2", got)
	}
	checkMails()

	// Recovery: the paths come back. A path that counted errors since the
	// last run keeps that run at WARNING; within three runs all is OK.
	l.g.ClearFaults()
	healthWait(t, 30*time.Second, "paths back", func() bool { return l.usablePaths(t) == 4 })
	for range 3 {
		if code, out, _ = run("--nagios"); code == 0 {
			break
		}
		if code != 1 || !strings.Contains(out, "errors since the last run") {
			t.Fatalf("after recovery: exit %d: %s", code, out)
		}
	}
	if code != 0 || !strings.HasPrefix(out, "HITKIT OK") {
		t.Fatalf("recovered: exit %d: %s", code, out)
	}
	checkMails()
	if n := len(sink.subjects(t)); n < 3 {
		t.Fatalf("%d mails for OK, WARNING, CRITICAL and OK again", n)
	}

	t.Run("snapshot left online", func(t *testing.T) { healthSnapshot(t, l, run) })

	// hitkitd stopped: its login-at-boot volume is not served, CRITICAL.
	l.stopDaemon()
	code, out, _ = run("--nagios")
	if code != 2 || !strings.HasPrefix(out, "HITKIT CRITICAL - hitkitd: hitkitd is not running") {
		t.Fatalf("hitkitd stopped: exit %d: %s", code, out)
	}
	if got := promValue(t, promFile(t, prom), "hitkit_daemon_up"); got != 0 {
		t.Errorf("hitkit_daemon_up = %v, want 0", got)
	}
	checkMails()
}

// healthSnapshot: a snapshot set online and left so is a WARNING; offline
// again, all is OK.
func healthSnapshot(t *testing.T, l *healthLab, run func(...string) (int, string, string)) {
	c, err := groupapi.Dial(l.g.ManagementAddr(), l.fingerprint, []byte(l.password))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.SetSnapshotPolicy("vol1", groupapi.SnapshotPolicy{ReservePercent: 100, WhenFull: groupapi.ReserveDeleteOldest}); err != nil {
		if se, ok := err.(*groupapi.StatusError); ok && (se.Status == 404 || se.Status == 501) {
			t.Skipf("the lab group does not serve snapshots yet: %v", err)
		}
		t.Fatal(err)
	}
	snap, err := c.CreateSnapshot("vol1", groupapi.CreateSnapshot{Name: "nightly"})
	if err != nil {
		t.Fatal(err)
	}
	online := true
	if _, err := c.SetSnapshot("vol1", snap.Name, groupapi.SetSnapshot{Online: &online}); err != nil {
		t.Fatal(err)
	}
	code, out, _ := run("--nagios")
	if code != 1 || !strings.Contains(out, "vol1 snapshot nightly: online, but not in use on this host") || !strings.Contains(out, "'vol1 snapshots online'=1;") {
		t.Fatalf("snapshot online: exit %d: %s", code, out)
	}
	// Connected here on purpose (read-only, as a mount would): OK.
	vol := l.g.Config().Volumes[0]
	secret, _ := os.ReadFile(array.CHAPSecretFile(l.dir, "vol1"))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	client := daemon.NewClient(l.runtime)
	if _, err := client.Connect(ctx, daemon.ConnectRequest{
		Name: "nightly", Portal: l.g.GroupAddr(), Target: snap.IQN, ReadOnly: true,
		CHAPUser: vol.CHAPUser, CHAPSecret: string(bytes.TrimSpace(secret)), Sources: []string{"127.0.0.2"},
	}); err != nil {
		t.Fatalf("connecting the snapshot: %v", err)
	}
	code, out, _ = run("--nagios", "--verbose")
	if code != 0 {
		t.Fatalf("snapshot connected here: exit %d: %s", code, out)
	}
	if err := client.Disconnect(ctx, "nightly"); err != nil {
		t.Fatal(err)
	}
	online = false
	if _, err := c.SetSnapshot("vol1", snap.Name, groupapi.SetSnapshot{Online: &online}); err != nil {
		t.Fatal(err)
	}
	code, out, _ = run("--nagios")
	if code != 0 {
		t.Fatalf("snapshot offline again: exit %d: %s", code, out)
	}
}

// healthWait polls cond every 20 ms, for at most within.
func healthWait(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestHealthLatency: with latency added at the port under one path and
// reads running, health names that path as the slow one.
func TestHealthLatency(t *testing.T) {
	l := startHealthLab(t)
	v := l.status(t)
	slow := v.Paths[0].Remote
	if _, err := l.g.Inject(array.FaultRequest{Kind: array.FaultLatency, Port: slow, Latency: array.Duration(10 * time.Millisecond)}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.g.ClearFaults() })

	f, err := os.OpenFile(v.Link, os.O_RDONLY|syscall.O_DIRECT, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			buf := directBuf(4096)
			for ctx.Err() == nil {
				if _, err := f.ReadAt(buf, rand.Int64N((32<<20)/4096)*4096); err != nil {
					t.Errorf("read: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	code, out, _ := hitkit(t, "health", "--nagios", "--state-dir", l.state, "--runtime-dir", l.runtime)
	t.Logf("exit %d: %s", code, out)
	if code != 1 || !strings.Contains(out, "vol1 path 1 ("+slow+"): slow: ") {
		t.Fatalf("latency %s on path 1's port: exit %d: %s", slow, code, out)
	}
}

// directBuf returns n bytes aligned for O_DIRECT.
func directBuf(n int) []byte {
	b := make([]byte, n+4096)
	off := (4096 - int(uintptr(unsafe.Pointer(&b[0]))%4096)) % 4096
	return b[off : off+n]
}

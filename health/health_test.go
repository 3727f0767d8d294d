package health

import (
	"bytes"
	"context"
	"net"
	"net/mail"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hitkit/hitkit/daemon"
	"github.com/hitkit/hitkit/discovery"
	"github.com/hitkit/hitkit/mpio"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

func TestWorse(t *testing.T) {
	for _, c := range []struct{ a, b, want State }{
		{OK, OK, OK}, {OK, Unknown, Unknown}, {Unknown, Warning, Warning},
		{Warning, Critical, Critical}, {Critical, Unknown, Critical}, {Warning, OK, Warning},
	} {
		if got := Worse(c.a, c.b); got != c.want {
			t.Errorf("Worse(%v, %v) = %v, want %v", c.a, c.b, got, c.want)
		}
	}
}

// volume is a connected volume with one path per state given, two
// sources in turn.
func volume(states ...mpio.State) daemon.VolumeInfo {
	v := daemon.VolumeInfo{Name: "vol1", Status: mpio.Status{Target: "iqn.x:vol1", WWID: "naa.1"}}
	for i, s := range states {
		v.Paths = append(v.Paths, mpio.PathStatus{
			ID: i + 1, Source: []string{"127.0.0.2", "127.0.0.3"}[i%2], State: s, Remote: "127.0.10.11:3260",
		})
	}
	return v
}

func findings(r Report, state State, check string) []Finding {
	var out []Finding
	for _, f := range r.Findings {
		if f.State == state && (check == "" || f.Check == check) {
			out = append(out, f)
		}
	}
	return out
}

func TestCheckVolumePaths(t *testing.T) {
	a, f := mpio.StateActive, mpio.StateFailed
	for _, c := range []struct {
		name   string
		states []mpio.State
		want   State
	}{
		{"all up", []mpio.State{a, a, a, a}, OK},
		{"one down", []mpio.State{a, f, a, a}, Warning},
		{"draining is up", []mpio.State{a, mpio.StateDraining, mpio.StateStandby, a}, OK},
		{"all down", []mpio.State{f, f, mpio.StateReinstating, f}, Critical},
	} {
		var r Report
		checkVolume(&r, volume(c.states...), VolumeMemory{}, true, DefaultLimits)
		r.finish()
		if r.State != c.want {
			t.Errorf("%s: %v, want %v: %+v", c.name, r.State, c.want, r.Findings)
		}
	}
	// One source's sessions all down while the other's are up: that NIC.
	var r Report
	checkVolume(&r, volume(f, a, f, a), VolumeMemory{}, true, DefaultLimits)
	if w := findings(r, Warning, CheckNIC); len(w) != 1 || w[0].Subject != "vol1 via 127.0.0.2" || !strings.Contains(w[0].Message, "check this one") {
		t.Errorf("per-source findings: %+v", w)
	}
}

// TestErrorsSinceLastRun: counters are compared with the last run's; a
// restarted hitkitd (counters lower, or another pid) counts from zero.
func TestErrorsSinceLastRun(t *testing.T) {
	v := volume(mpio.StateActive, mpio.StateActive)
	v.Paths[0].Errors, v.Paths[0].Reinstated = 7, 1
	v.Paths[1].Errors, v.Paths[1].Reinstated = 9, 5
	prev := VolumeMemory{WWID: "naa.1", Paths: map[int]PathCounter{1: {Errors: 7, Reinstated: 1}, 2: {Errors: 4, Reinstated: 1}}}

	var r Report
	vr := checkVolume(&r, v, prev, true, DefaultLimits)
	if vr.Paths[0].ErrorsNew != 0 || vr.Paths[1].ErrorsNew != 5 || vr.Paths[1].ReinstatedNew != 4 || vr.ErrorsNew != 5 {
		t.Fatalf("deltas: %+v", vr.Paths)
	}
	w := findings(r, Warning, CheckPath)
	if len(w) != 1 || !strings.Contains(w[0].Message, "flapping: failed and logged in again 4 times") {
		t.Fatalf("flapping path: %+v", w)
	}

	r = Report{}
	vr = checkVolume(&r, v, prev, false, DefaultLimits) // another hitkitd
	if vr.Paths[0].ErrorsNew != 7 {
		t.Fatalf("after a restart: %+v", vr.Paths[0])
	}
	prev.WWID = "naa.2" // another volume under the same name
	r = Report{}
	if vr = checkVolume(&r, v, prev, true, DefaultLimits); vr.Paths[1].ErrorsNew != 9 {
		t.Fatalf("another volume: %+v", vr.Paths[1])
	}
}

func TestLatencyOutlier(t *testing.T) {
	vr := &VolumeReport{Name: "vol1"}
	for i, us := range []float64{300, 280, 9000, 320} {
		vr.Paths = append(vr.Paths, PathReport{ID: i + 1, Up: true, LatencyAvgUs: us, LatencySamples: 500, LatencyMaxUs: 2 * us})
	}
	var r Report
	checkLatency(&r, vr, DefaultLimits)
	w := findings(r, Warning, CheckLatency)
	if len(w) != 1 || !strings.HasPrefix(w[0].Subject, "vol1 path 3") || !strings.Contains(w[0].Message, "9.00 ms on average, 30x") {
		t.Fatalf("outliers: %+v", r.Findings)
	}
	// Twice as slow, or slow on a handful of commands, is no outlier.
	vr.Paths[2].LatencyAvgUs = 600
	r = Report{}
	checkLatency(&r, vr, DefaultLimits)
	if w := findings(r, Warning, ""); len(w) != 0 {
		t.Fatalf("2x flagged: %+v", w)
	}
	vr.Paths[2].LatencyAvgUs, vr.Paths[2].LatencySamples = 9000, 3
	r = Report{}
	checkLatency(&r, vr, DefaultLimits)
	if w := findings(r, Warning, ""); len(w) != 0 {
		t.Fatalf("3 samples flagged: %+v", w)
	}
}

func TestNICs(t *testing.T) {
	nics := []discovery.NIC{
		{Name: "eth1", Up: true, MTU: 9000, SpeedMbs: 10000, Addrs: []netip.Prefix{netip.MustParsePrefix("198.18.1.2/24")}},
		{Name: "eth2", Up: false, MTU: 1500, SpeedMbs: 1000, Addrs: []netip.Prefix{netip.MustParsePrefix("198.18.2.2/24")}},
		{Name: "lo", Up: true, MTU: 65536, Loopback: true, Addrs: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/8")}},
	}
	r := Report{Volumes: []VolumeReport{{Name: "vol1", Paths: []PathReport{
		{ID: 1, Source: "198.18.1.2"}, {ID: 2, Source: "198.18.2.2"}, {ID: 3, NIC: "eth1"}, {ID: 4, Source: "198.18.3.9"},
	}}}}
	checkNICs(&r, func() ([]discovery.NIC, error) { return nics, nil })
	msgs := map[string]string{}
	for _, f := range findings(r, Warning, CheckNIC) {
		msgs[f.Subject] = f.Message
	}
	if !strings.Contains(msgs["nic eth2"], "no carrier") ||
		!strings.Contains(msgs["vol1 path 4"], "no NIC has 198.18.3.9") || len(msgs) != 3 {
		t.Fatalf("findings: %+v", r.Findings)
	}
	var mtu, speed bool
	for _, f := range findings(r, Warning, CheckNIC) {
		mtu = mtu || strings.Contains(f.Message, "MTU differs between the NICs carrying paths (1500: eth2; 9000: eth1)")
		speed = speed || strings.Contains(f.Message, "1000 Mb/s: eth2; 10000 Mb/s: eth1")
	}
	if !mtu || !speed || len(r.NICs) != 2 || r.NICs[0].Paths != 2 {
		t.Fatalf("MTU %v, speed %v, NICs %+v: %+v", mtu, speed, r.NICs, r.Findings)
	}
	// Loopback sources are on lo, though only 127.0.0.1/8 is.
	if n := nicOf(nics, "", "127.0.0.3"); n == nil || n.Name != "lo" {
		t.Fatalf("127.0.0.3 on %+v", n)
	}
}

func sampleReport() Report {
	r := Report{Time: time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC), Daemon: DaemonReport{Running: true, PID: 42},
		Volumes: []VolumeReport{{Name: "vol1", WWID: "naa.1", PathsTotal: 2, PathsUp: 1, Paths: []PathReport{
			{ID: 1, Source: "127.0.0.2", Up: true, Errors: 3, Reinstated: 1, LatencyAvgUs: 250, LatencyMaxUs: 1500},
			{ID: 2, Source: "127.0.0.3", Errors: 4},
		}, Array: &VolumeArray{Name: "vol1", ReserveUsedPct: 85.5, Snapshots: 3, SnapshotsOnline: 1}}},
		NICs:   []NICReport{{Name: "lo", Up: true, MTU: 65536, Paths: 2}, {Name: "eth1", Up: true, MTU: 9000, SpeedMbs: 1000, Paths: 1}},
		Groups: []GroupReport{{API: "127.0.10.1", Name: "lab", Reachable: true, Members: 2, MembersOK: 2, PortsDown: 1}},
	}
	r.add(Warning, CheckPath, "vol1 path 2 (127.0.0.3)", "failed: connection refused | odd")
	r.add(Warning, CheckReserve, "vol1 snapshot reserve", "86 % of the reserve used")
	r.add(OK, CheckDaemon, "hitkitd", "running")
	r.finish()
	return r
}

func TestNagios(t *testing.T) {
	var b bytes.Buffer
	if err := WriteNagios(&b, sampleReport()); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(b.String(), "\n"), "\n")
	status := regexp.MustCompile(`^HITKIT WARNING - vol1 path 2 \(127\.0\.0\.3\): failed: connection refused / odd \(and 1 more\) \| (.*)$`)
	m := status.FindStringSubmatch(lines[0])
	if m == nil || len(lines) != 2 || lines[1] != "WARNING vol1 snapshot reserve: 86 % of the reserve used" {
		t.Fatalf("output:\n%s", b.String())
	}
	// 'label'=value[UOM];warn;crit;min;max, space separated.
	token := regexp.MustCompile(`'[^'=]+'=(\S+)`)
	value := regexp.MustCompile(`^[0-9.]+(c|ms|%)?(;[0-9:.]*){0,4}$`)
	tokens := token.FindAllStringSubmatch(m[1], -1)
	var whole []string
	for _, tok := range tokens {
		whole = append(whole, tok[0])
		if !value.MatchString(tok[1]) {
			t.Errorf("perfdata %q does not follow the plugin format", tok[0])
		}
	}
	if strings.Join(whole, " ") != m[1] {
		t.Errorf("perfdata %q has more than label=value items", m[1])
	}
	for _, want := range []string{"'vol1 paths up'=1;2:;1:;0;2", "'vol1 errors'=7c", "'vol1 latency max'=1.500ms;;;0", "'vol1 snapshot reserve'=85.5%;80;95;0;100", "'vol1 snapshots online'=1;;;0"} {
		if !strings.Contains(m[1], want) {
			t.Errorf("perfdata lacks %s: %s", want, m[1])
		}
	}
}

// TestPrometheusFile writes a textfile and reads it back with the
// Prometheus text parser.
func TestPrometheusFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hitkit.prom")
	if err := WritePrometheus(path, sampleReport()); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(f)
	if err != nil {
		t.Fatal(err)
	}
	value := func(name string, labels map[string]string) float64 {
		t.Helper()
		mf := mfs[name]
		if mf == nil || mf.GetHelp() == "" {
			t.Fatalf("%s missing, or without HELP", name)
		}
	metrics:
		for _, m := range mf.Metric {
			for _, lp := range m.Label {
				if want, ok := labels[lp.GetName()]; ok && want != lp.GetValue() {
					continue metrics
				}
			}
			if m.Counter != nil {
				return m.Counter.GetValue()
			}
			return m.Gauge.GetValue()
		}
		t.Fatalf("%s%v missing", name, labels)
		return 0
	}
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"hitkit_health_state", nil, 1},
		{"hitkit_health_last_run_timestamp_seconds", nil, float64(sampleReport().Time.Unix())},
		{"hitkit_health_findings", map[string]string{"state": "WARNING"}, 2},
		{"hitkit_daemon_up", nil, 1},
		{"hitkit_volume_paths_up", map[string]string{"volume": "vol1"}, 1},
		{"hitkit_path_up", map[string]string{"path": "2"}, 0},
		{"hitkit_path_errors_total", map[string]string{"path": "2", "source": "127.0.0.3"}, 4},
		{"hitkit_path_latency_avg_seconds", map[string]string{"path": "1"}, 0.00025},
		{"hitkit_snapshot_reserve_used_ratio", map[string]string{"volume": "vol1"}, 0.855},
		{"hitkit_snapshots_online", map[string]string{"volume": "vol1"}, 1},
		{"hitkit_group_ports_down", map[string]string{"group": "lab"}, 1},
		{"hitkit_nic_mtu_bytes", map[string]string{"nic": "eth1"}, 9000},
		{"hitkit_nic_speed_bytes", map[string]string{"nic": "eth1"}, 125e6},
	} {
		if got := value(c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if mfs["hitkit_path_errors_total"].GetType().String() != "COUNTER" {
		t.Errorf("hitkit_path_errors_total is a %v", mfs["hitkit_path_errors_total"].GetType())
	}
	if n := len(mfs["hitkit_nic_speed_bytes"].Metric); n != 1 {
		t.Errorf("%d NIC speeds; lo has none", n)
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".*")); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

func TestMemory(t *testing.T) {
	dir := t.TempDir()
	if m, err := LoadMemory(dir); err != nil || m.State != OK || m.Volumes != nil {
		t.Fatalf("no memory yet: %+v %v", m, err)
	}
	r := sampleReport()
	m := Remember(r, Memory{Notified: Critical})
	if err := m.Save(dir); err != nil {
		t.Fatal(err)
	}
	got, err := LoadMemory(dir)
	if err != nil || got.State != Warning || got.Notified != Critical || got.DaemonPID != 42 ||
		got.Volumes["vol1"].Paths[2].Errors != 4 || got.Volumes["vol1"].WWID != "naa.1" {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	// hitkitd down: the volumes it should serve are kept.
	down := Report{State: Critical}
	if next := Remember(down, got); len(next.Volumes) != 1 || next.State != Critical {
		t.Fatalf("memory with hitkitd down: %+v", next)
	}
	os.WriteFile(filepath.Join(dir, memoryFile), []byte("{not json"), 0o600)
	if _, err := LoadMemory(dir); err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Fatalf("damaged memory: %v", err)
	}
}

func TestLock(t *testing.T) {
	dir := t.TempDir()
	unlock, err := Lock(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Lock(dir); err == nil || !strings.Contains(err.Error(), "in progress") {
		t.Fatalf("second lock: %v", err)
	}
	unlock()
	unlock, err = Lock(dir)
	if err != nil {
		t.Fatalf("after unlock: %v", err)
	}
	unlock()
}

func TestAlertMessage(t *testing.T) {
	msg := alertMessage("host1", "hitkit@host1", []string{"a@example.org", "b@example.org"}, OK, sampleReport())
	m, err := mail.ReadMessage(bytes.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Header.Get("Subject"); got != "hitkit health on host1: OK -> WARNING" {
		t.Errorf("subject %q", got)
	}
	if to, err := m.Header.AddressList("To"); err != nil || len(to) != 2 {
		t.Errorf("To: %v %v", to, err)
	}
	body := new(bytes.Buffer)
	body.ReadFrom(m.Body)
	if !strings.Contains(body.String(), "WARNING  vol1 snapshot reserve: 86 % of the reserve used") {
		t.Errorf("body:\n%s", body)
	}
	if err := SendAlert(context.Background(), Mail{Server: "127.0.0.1:1", To: []string{"x\r\nRCPT TO:<y@z>"}}, OK, sampleReport()); err == nil ||
		!strings.Contains(err.Error(), "not valid") {
		t.Errorf("an address with a line break: %v", err)
	}
}

func TestDaemonDown(t *testing.T) {
	client := daemon.NewClient(t.TempDir())
	r := Check(context.Background(), Options{Daemon: client, StateDir: t.TempDir()})
	if r.State != Unknown || r.Daemon.Running {
		t.Fatalf("nothing configured: %+v", r)
	}
	r = Check(context.Background(), Options{Daemon: client, StateDir: t.TempDir(),
		Previous: Memory{Volumes: map[string]VolumeMemory{"vol1": {}}}})
	if r.State != Critical || !strings.Contains(r.Findings[0].Message, "volume vol1 not served") {
		t.Fatalf("a volume seen before: %+v", r.Findings)
	}
}

// TestArrayTimeout: a management API that accepts and then says nothing
// (a hung group) costs the run no more than its deadline: UNKNOWN.
func TestArrayTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var mu sync.Mutex
	var held []net.Conn
	defer func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range held {
			c.Close()
		}
	}()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}
	}()
	v := volume(mpio.StateActive)
	v.GroupAPI, v.GroupFingerprint = ln.Addr().String(), strings.Repeat("ab", 32)
	var r Report
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	checkArrays(ctx, &r, []daemon.VolumeInfo{v}, Options{
		GroupPassword: func(context.Context, daemon.VolumeInfo) ([]byte, error) { return []byte("pw"), nil },
	})
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("took %v with a 500 ms deadline", took)
	}
	if u := findings(r, Unknown, CheckArray); len(u) != 1 || !strings.Contains(u[0].Message, "within the run's timeout") ||
		len(r.Groups) != 1 || r.Groups[0].Reachable {
		t.Fatalf("findings %+v, groups %+v", r.Findings, r.Groups)
	}
}

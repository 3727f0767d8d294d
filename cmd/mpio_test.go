package cmd

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hitkit/hitkit/array"
	"github.com/hitkit/hitkit/daemon"
	"github.com/hitkit/hitkit/internal/labtest"
)

func TestMpioUsage(t *testing.T) {
	secretFile := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(secretFile, []byte("x"), 0o600)
	base := []string{"mpio", "connect", "--portal", "127.0.0.1", "--target", "iqn.2026-11.org.hitkit.lab:g:vol1", "--runtime-dir", t.TempDir()}
	for _, args := range [][]string{
		{"mpio", "connect", "--target", "iqn.x:v"},
		append(base, "--policy", "fastest"),
		append(base, "--source", "127.0.0.2", "--nic", "lo"),
		append(base, "--source", "not-an-ip"),
		append(base, "--include-subnet", "127.0.0.1"),
		append(base, "--chap-secret-file", secretFile),
		append(base, "--max-sessions", "0"),
		append(base, "--group-admin-file", secretFile),
		append(base, "--group-fingerprint", strings.Repeat("ab", 32)),
		append(base, "--group-admin-file", secretFile, "--group-fingerprint", "not-hex"),
		append(base, "--name", "../x"),
		append(base, "stray"),
		{"mpio", "disconnect"},
		{"mpio", "status", "a", "b"},
		{"mpio", "list", "x"},
		{"mpio", "nope"},
	} {
		if code, _, errOut := hitkit(t, args...); code != exitUsage {
			t.Errorf("%v: exit %d, want 2: %s", args, code, errOut)
		}
	}
}

// TestMpioNotRunning: status with no daemon is a clear error, not a start.
func TestMpioNotRunning(t *testing.T) {
	dir := t.TempDir()
	code, _, errOut := hitkit(t, "mpio", "status", "--runtime-dir", dir)
	if code != exitError || !strings.Contains(errOut, "not running") {
		t.Fatalf("exit %d: %s", code, errOut)
	}
}

// startCLILab starts a lab group in this process, with vol1 behind CHAP.
func startCLILab(t *testing.T) (*array.Group, array.VolumeConfig, string) {
	t.Helper()
	l := labtest.Start(t, labtest.Options{Spec: array.Spec{Volumes: []array.VolumeSpec{{Name: "vol1", Size: 32 << 20}}}})
	return l.Group, l.Volume(t, "vol1"), l.CHAPSecretFile("vol1")
}

type statusJSON struct {
	Volumes []struct {
		Name        string `json:"name"`
		BlockDevice string `json:"block_device"`
		Link        string `json:"link"`
		NBDURI      string `json:"nbd_uri"`
		Paths       []struct {
			State  string `json:"state"`
			Source string `json:"source"`
			Remote string `json:"remote"`
		} `json:"paths"`
	} `json:"volumes"`
}

// TestMpioCLI drives the built binary: connect starts hitkitd detached,
// status and list see the volume, disconnect removes it.
func TestMpioCLI(t *testing.T) {
	g, vol, secretFile := startCLILab(t)
	bin := buildHitkit(t)
	runtime, state := t.TempDir(), t.TempDir()
	dirs := []string{"--runtime-dir", runtime, "--state-dir", state}
	t.Cleanup(func() { stopDaemon(t, runtime) })

	args := append([]string{"mpio", "connect", "--json", "--portal", g.GroupAddr(), "--target", vol.IQN,
		"--chap-user", vol.CHAPUser, "--chap-secret-file", secretFile, "--source", "127.0.0.2,127.0.0.3"}, dirs...)
	code, out, errOut := labCLI(t, bin, args...)
	if code != 0 {
		t.Fatalf("connect: exit %d: %s\n%s", code, errOut, tailFile(filepath.Join(state, "hitkitd.log")))
	}
	var v daemon.VolumeInfo
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if v.Name != "vol1" || !strings.HasPrefix(v.BlockDevice, "/dev/loop") || v.Link != filepath.Join(runtime, "dev", "vol1") ||
		!strings.HasPrefix(v.NBDURI, "nbd+unix:///?socket=") {
		t.Fatalf("connect --json = %s", out)
	}

	pid, err := daemon.NewClient(runtime).Ping(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	secret, _ := os.ReadFile(secretFile)
	if cmdline := daemonCmdline(t, pid); strings.Contains(cmdline, string(bytes.TrimSpace(secret))) {
		t.Fatalf("the CHAP secret is on hitkitd's argv: %s", cmdline)
	}

	if log, _ := os.ReadFile(filepath.Join(state, "hitkitd.log")); bytes.Contains(log, bytes.TrimSpace(secret)) {
		t.Fatal("the CHAP secret is in hitkitd's log")
	}

	code, out, errOut = labCLI(t, bin, append(append([]string{"mpio", "status", "--json"}, dirs...), "vol1")...)
	if code != 0 {
		t.Fatalf("status: exit %d: %s", code, errOut)
	}
	var st statusJSON
	if err := json.Unmarshal([]byte(out), &st); err != nil || len(st.Volumes) != 1 || len(st.Volumes[0].Paths) != 4 {
		t.Fatalf("status --json = %s (%v)", out, err)
	}
	for _, p := range st.Volumes[0].Paths {
		if p.State != "active" {
			t.Errorf("path %+v is not active", p)
		}
	}
	code, out, _ = labCLI(t, bin, append([]string{"mpio", "status"}, dirs...)...)
	if code != 0 || !strings.Contains(out, "127.0.0.2") || !strings.Contains(out, "active") {
		t.Fatalf("status table: exit %d\n%s", code, out)
	}
	checkLatencyColumns(t, bin, dirs, v.Link)
	code, out, _ = labCLI(t, bin, append([]string{"mpio", "list"}, dirs...)...)
	if code != 0 || !strings.Contains(out, "4/4") || !strings.Contains(out, v.BlockDevice) {
		t.Fatalf("list: exit %d\n%s", code, out)
	}

	if out, err := exec.Command("nbdinfo", "--size", v.NBDURI).CombinedOutput(); err == nil &&
		strings.TrimSpace(string(out)) != strconv.Itoa(32<<20) {
		t.Errorf("nbdinfo --size = %s", out)
	}

	if code, _, errOut = labCLI(t, bin, append(append([]string{"mpio", "disconnect"}, dirs...), "vol1")...); code != 0 {
		t.Fatalf("disconnect: exit %d: %s", code, errOut)
	}
	if _, err := os.Lstat(v.Link); !os.IsNotExist(err) {
		t.Errorf("link left after disconnect: %v", err)
	}
	code, out, _ = labCLI(t, bin, append([]string{"mpio", "list", "--json"}, dirs...)...)
	if code != 0 || strings.Contains(out, "vol1") {
		t.Errorf("list after disconnect: exit %d: %s", code, out)
	}
}

// checkLatencyColumns reads from the device so that its paths complete
// commands, waits (boundedly) until the daemon's once-a-second sampler
// has an average, and checks that the status table shows each path's
// average and maximum latency as the JSON has them.
func checkLatencyColumns(t *testing.T, bin string, dirs []string, dev string) {
	t.Helper()
	var st latencyJSON
	start, tries := time.Now(), 0
	for ; tries < 50 && !st.measured(); tries++ {
		if out, err := exec.Command("dd", "if="+dev, "of=/dev/null", "bs=64k", "count=256", "iflag=direct").CombinedOutput(); err != nil {
			t.Fatalf("dd from %s: %v: %s", dev, err, out)
		}
		code, out, errOut := labCLI(t, bin, append([]string{"mpio", "status", "--json"}, dirs...)...)
		if code != 0 {
			t.Fatalf("status --json: exit %d: %s", code, errOut)
		}
		st = latencyJSON{}
		if err := json.Unmarshal([]byte(out), &st); err != nil || len(st.Volumes) != 1 {
			t.Fatalf("status --json = %s (%v)", out, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !st.measured() {
		t.Fatalf("no path reports a latency after reading from the device: %+v", st)
	}
	code, out, errOut := labCLI(t, bin, append([]string{"mpio", "status"}, dirs...)...)
	if code != 0 {
		t.Fatalf("status: exit %d: %s", code, errOut)
	}
	header, rows := parseTable(out)
	avgCol, maxCol := slices.Index(header, "avg lat"), slices.Index(header, "max lat")
	if avgCol < 0 || maxCol < 0 || len(rows) != len(st.Volumes[0].Paths) {
		t.Fatalf("status table has no latency columns, or not one row per path (header %q):\n%s", header, out)
	}
	measured := 0
	for _, row := range rows {
		if len(row) != len(header) {
			t.Fatalf("row %q does not match header %q", row, header)
		}
		avg, avgOK := parseLatency(row[avgCol])
		slowest, maxOK := parseLatency(row[maxCol])
		if !avgOK || !maxOK {
			t.Fatalf("latency cells %q and %q do not parse:\n%s", row[avgCol], row[maxCol], out)
		}
		if avg > 0 && slowest > 0 {
			measured++
			if avg > 10*time.Second || slowest > 10*time.Second {
				t.Errorf("implausible latencies %v, %v on loopback", avg, slowest)
			}
		}
	}
	if measured == 0 {
		t.Fatalf("no row shows both latencies, though the JSON has them:\n%s", out)
	}
	t.Logf("latency after %d reads of 16 MiB in %v; status table:\n%s", tries, time.Since(start).Round(time.Millisecond), out)
}

type latencyJSON struct {
	Volumes []struct {
		Paths []struct {
			AvgUs float64 `json:"latency_avg_us"`
			MaxUs float64 `json:"latency_max_us"`
		} `json:"paths"`
	} `json:"volumes"`
}

func (st latencyJSON) measured() bool {
	for _, v := range st.Volumes {
		for _, p := range v.Paths {
			if p.AvgUs > 0 && p.MaxUs > 0 {
				return true
			}
		}
	}
	return false
}

// parseTable splits a tablewriter table into its header and rows: the
// lines framed by vertical bars, the first of them the header.
func parseTable(out string) (header []string, rows [][]string) {
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		bar := "│"
		if !strings.HasPrefix(line, bar) {
			if bar = "|"; !strings.HasPrefix(line, bar) {
				continue
			}
		}
		var cells []string
		for _, c := range strings.Split(strings.Trim(line, bar), bar) {
			cells = append(cells, strings.TrimSpace(c))
		}
		if header == nil {
			header = cells
		} else {
			rows = append(rows, cells)
		}
	}
	return header, rows
}

// parseLatency reads a latency cell: "-" (none lately) is 0.
func parseLatency(cell string) (time.Duration, bool) {
	if cell == "-" {
		return 0, true
	}
	d, err := time.ParseDuration(strings.TrimPrefix(cell, "<"))
	return d, err == nil && d > 0
}

func TestMpioLatencyFormat(t *testing.T) {
	for us, want := range map[float64]string{
		0: "-", 4: "<0.01ms", 420: "0.42ms", 999: "1.00ms", 12345: "12.3ms", 250_000: "250ms", 1_250_000: "1.25s",
	} {
		if got := latency(us); got != want {
			t.Errorf("latency(%v µs) = %q, want %q", us, got, want)
		}
		if _, ok := parseLatency(want); !ok {
			t.Errorf("%q does not parse", want)
		}
	}
}

// stopDaemon shuts down a detached daemon the test started, and waits
// for its process to end.
func stopDaemon(t *testing.T, runtime string) {
	t.Helper()
	client := daemon.NewClient(runtime)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	pid, err := client.Ping(ctx)
	if err != nil {
		return
	}
	if err := client.Shutdown(ctx); err != nil {
		t.Errorf("shutdown: %v", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for processRunning(pid) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if processRunning(pid) {
		t.Errorf("hitkitd %d still running 30 s after shutdown", pid)
	}
}

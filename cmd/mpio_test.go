package cmd

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hitkit/hitkit/array"
	"github.com/hitkit/hitkit/daemon"
	"github.com/sirupsen/logrus"
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
	if os.Geteuid() != 0 {
		t.Skip("needs root: lab group on 127.0.x.y, FUSE and loop devices")
	}
	dir := t.TempDir()
	quiet := logrus.New()
	quiet.SetOutput(io.Discard)
	var g *array.Group
	var err error
	for range 5 {
		spec := array.Spec{
			BaseIP:  netip.AddrFrom4([4]byte{127, 0, byte(100 + rand.IntN(100)), 0}),
			Volumes: []array.VolumeSpec{{Name: "vol1", Size: 32 << 20}},
		}
		if g, err = array.Start(dir, spec, array.Options{Logger: quiet, NoControlSocket: true}); err == nil {
			break
		}
		os.RemoveAll(dir)
		os.MkdirAll(dir, 0o700)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return g, g.Config().Volumes[0], array.CHAPSecretFile(dir, "vol1")
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

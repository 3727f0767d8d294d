package cmd

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

// TestBenchVolume benchmarks a volume connected with mpio connect,
// through its loop device.
func TestBenchVolume(t *testing.T) {
	g, vol, secretFile := startCLILab(t)
	bin := buildHitkit(t)
	runtime, state := t.TempDir(), t.TempDir()
	dirs := []string{"--runtime-dir", runtime, "--state-dir", state}
	t.Cleanup(func() { stopDaemon(t, runtime) })

	code, _, errOut := labCLI(t, bin, append([]string{"mpio", "connect", "--json", "--portal", g.GroupAddr(), "--target", vol.IQN,
		"--chap-user", vol.CHAPUser, "--chap-secret-file", secretFile, "--source", "127.0.0.2,127.0.0.3"}, dirs...)...)
	if code != 0 {
		t.Fatalf("connect: exit %d: %s\n%s", code, errOut, tailFile(filepath.Join(state, "hitkitd.log")))
	}
	t.Cleanup(func() { labCLI(t, bin, append(append([]string{"mpio", "disconnect"}, dirs...), "vol1")...) })

	code, out, errOut := labCLI(t, bin, "bench", "--volume", "vol1", "--runtime-dir", runtime,
		"--pattern", "verify", "--span", "8M", "--allow-write", "--json")
	if code != 0 {
		t.Fatalf("bench --volume verify: exit %d: %s", code, errOut)
	}
	var rep struct {
		Verified int64 `json:"verified_blocks"`
		IOs      int64 `json:"ios"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || rep.Verified <= 0 {
		t.Fatalf("bench --json = %s (%v)", out, err)
	}

	code, out, errOut = labCLI(t, bin, "bench", "--volume", "vol1", "--runtime-dir", runtime,
		"--pattern", "randread", "--duration", "300ms", "--json")
	if code != 0 || !strings.Contains(out, `"iops"`) {
		t.Fatalf("bench --volume randread: exit %d: %s %s", code, out, errOut)
	}

	if code, _, errOut = labCLI(t, bin, "bench", "--volume", "vol1", "--runtime-dir", runtime, "--portal", "127.0.0.1"); code != exitUsage {
		t.Errorf("--volume with --portal: exit %d, want 2: %s", code, errOut)
	}
	if code, _, errOut = labCLI(t, bin, "bench", "--volume", "vol1", "--runtime-dir", runtime, "--pattern", "randwrite"); code != exitUsage ||
		!strings.Contains(errOut, "allow-write") {
		t.Errorf("randwrite without --allow-write: exit %d, want 2: %s", code, errOut)
	}
	if code, _, errOut = labCLI(t, bin, "bench", "--volume", "nosuch", "--runtime-dir", runtime); code != exitError ||
		!strings.Contains(errOut, "nosuch") || !strings.Contains(errOut, "connected") {
		t.Errorf("unknown volume: exit %d, want 1: %s", code, errOut)
	}
}

func TestBenchTargetFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		says string
	}{
		{[]string{"bench"}, "portal"},
		{[]string{"bench", "--target", "iqn.x"}, "portal"},
		{[]string{"bench", "--portal", "127.0.0.1:1"}, "target"},
		{[]string{"bench", "--volume", "v", "--portal", "127.0.0.1:1"}, "--volume"},
		{[]string{"bench", "--volume", "v", "--target", "iqn.x"}, "--volume"},
		{[]string{"bench", "--volume", " "}, "--volume"},
	} {
		if code, _, errOut := hitkit(t, tc.args...); code != exitUsage || !strings.Contains(errOut, tc.says) {
			t.Errorf("%v: exit %d, stderr %q; want 2 mentioning %q", tc.args, code, errOut, tc.says)
		}
	}
}

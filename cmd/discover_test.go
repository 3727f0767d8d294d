package cmd

import (
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
)

// TestDiscoverUninitialized brings a lab up with its default uninitialised
// member and finds that member by unicast probe on loopback.
func TestDiscoverUninitialized(t *testing.T) {
	bin := buildHitkit(t)
	dir := filepath.Join(t.TempDir(), "group")
	base := fmt.Sprintf("127.0.%d.0", 100+mrand.IntN(100))
	t.Cleanup(func() { labCLI(t, bin, "lab", "down", "--dir", dir) })
	if code, _, errOut := labCLI(t, bin, "lab", "up", "--dir", dir, "--base-ip", base, "--volume", "v:8MiB", "--uninitialized", "1", "--json"); code != 0 {
		t.Fatalf("lab up: exit %d: %s\n%s", code, errOut, tailFile(filepath.Join(dir, "lab.log")))
	}
	code, out, errOut := labCLI(t, bin, "lab", "status", "--dir", dir, "--json")
	if code != 0 {
		t.Fatalf("lab status: exit %d: %s", code, errOut)
	}
	var st struct {
		Members []struct {
			Number int    `json:"number"`
			Serial string `json:"serial"`
			State  string `json:"state"`
		} `json:"members"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	var serial, addr string
	for _, m := range st.Members {
		if m.State == "uninitialized" {
			serial = m.Serial
			addr = fmt.Sprintf("%s%d", strings.TrimSuffix(base, "0"), 10*m.Number+1)
		}
	}
	if serial == "" {
		t.Fatalf("lab status shows no uninitialised member: %s", out)
	}

	code, out, errOut = labCLI(t, bin, "discover", "--uninitialized", "--probe", base+"/24", "--timeout", "1s", "--json")
	if code != 0 {
		t.Fatalf("discover --uninitialized: exit %d: %s", code, errOut)
	}
	var got []map[string]any
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if len(got) != 1 || got[0]["serial"] != serial || got[0]["address"] != addr || got[0]["state"] != "uninitialized" || got[0]["model"] != "PS-Lab" || got[0]["firmware"] != "lab-1.0" {
		t.Fatalf("discover --uninitialized --json = %s, want serial %s at %s", out, serial, addr)
	}
	for _, k := range []string{"serial", "model", "firmware", "address", "state"} {
		if _, ok := got[0][k]; !ok {
			t.Errorf("no %q in %s", k, out)
		}
	}
	if len(got[0]) != 5 {
		t.Errorf("discover --json has keys beyond serial, model, firmware, address, state: %s", out)
	}

	code, out, errOut = labCLI(t, bin, "discover", "--uninitialized", "--probe", addr, "--timeout", "500ms")
	if code != 0 || !strings.Contains(out, serial) || !strings.Contains(out, "PS-Lab") {
		t.Fatalf("discover --uninitialized (table): exit %d: %s%s", code, out, errOut)
	}
}

func TestDiscoverUninitializedUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		says string
	}{
		{[]string{"discover", "--uninitialized", "--probe", "10.0.0.0/24"}, "loopback"},
		{[]string{"discover", "--uninitialized", "--probe", "127.255.255.250-128.0.0.2"}, "loopback"},
		{[]string{"discover", "--uninitialized", "--subnet", "192.168.1.0/24"}, "loopback"},
		{[]string{"discover", "--uninitialized", "--subnet", "nonsense"}, "nonsense"},
		{[]string{"discover", "--uninitialized", "--probe", "127.0.0.0/8"}, "4096"},
		{[]string{"discover", "--uninitialized", "--probe", "127.0.10.1", "--timeout", "0s"}, "timeout"},
		{[]string{"discover", "--json"}, `Required flag "portal" not set`},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			code, out, errOut := hitkit(t, tc.args...)
			if code != 2 || !strings.Contains(errOut, tc.says) || out != "" {
				t.Fatalf("exit %d, stdout %q, stderr %q: want exit 2 saying %q", code, out, errOut, tc.says)
			}
		})
	}
}

package cmd

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hitkit/hitkit/internal/labtest"
	"github.com/hitkit/hitkit/setupapi"
)

// labSiteStatus is the part of `lab status --json` that the setup test reads.
type labSiteStatus struct {
	Name                   string `json:"name"`
	MembershipPasswordFile string `json:"membership_password_file"`
	Members                []struct {
		State            string `json:"state"`
		SetupEndpoint    string `json:"setup_endpoint"`
		SetupFingerprint string `json:"setup_fingerprint"`
	} `json:"members"`
}

func labSiteStatusJSON(t *testing.T, bin, dir string) labSiteStatus {
	t.Helper()
	code, out, errOut := labCLI(t, bin, "lab", "status", "--dir", dir, "--json")
	if code != 0 {
		t.Fatalf("lab status: exit %d: %s", code, errOut)
	}
	var st labSiteStatus
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	return st
}

// TestLabSetupKilledMidSetup runs a site with no group through the built
// binary, kills it with SIGKILL while a member initialises its RAID, and
// wants the member uninitialised after `lab up`, and set up by a retry.
func TestLabSetupKilledMidSetup(t *testing.T) {
	bin := buildHitkit(t)
	dir := filepath.Join(t.TempDir(), "site")
	base := labtest.ReserveBase(t, labtest.SiteBases)
	addr := func(n int) string {
		b := base.As4()
		b[3] += byte(n)
		return netip.AddrFrom4(b).String()
	}
	t.Cleanup(func() { labCLI(t, bin, "lab", "down", "--dir", dir) })

	code, out, errOut := labCLI(t, bin, "lab", "up", "--dir", dir, "--base-ip", base.String(), "--members", "0", "--uninitialized", "2", "--json")
	if code != 0 {
		t.Fatalf("lab up: exit %d: %s\n%s", code, errOut, tailFile(filepath.Join(dir, "lab.log")))
	}
	var up struct {
		Group   string `json:"group"`
		GroupIP string `json:"group_ip"`
		Members []struct {
			State            string `json:"state"`
			SetupEndpoint    string `json:"setup_endpoint"`
			SetupFingerprint string `json:"setup_fingerprint"`
		} `json:"members"`
	}
	if err := json.Unmarshal([]byte(out), &up); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if up.Group != "" || up.GroupIP != "" || len(up.Members) != 2 || up.Members[0].SetupEndpoint != "https://"+addr(11)+":8444" || up.Members[0].SetupFingerprint == "" {
		t.Fatalf("lab up --json on a site with no group: %s", out)
	}
	if code, out, _ := labCLI(t, bin, "lab", "status", "--dir", dir); code != 0 || !strings.Contains(out, "no group yet") || !strings.Contains(out, "waits for setup at "+up.Members[1].SetupEndpoint) {
		t.Fatalf("lab status: exit %d\n%s", code, out)
	}
	if code, _, errOut := labCLI(t, bin, "lab", "up", "--dir", t.TempDir(), "--members", "0", "--uninitialized", "0"); code != 2 {
		t.Fatalf("--members 0 --uninitialized 0: exit %d (%s), want 2", code, errOut)
	}

	client, err := setupapi.Dial(up.Members[0].SetupEndpoint, up.Members[0].SetupFingerprint)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	req := setupapi.Request{
		MemberName: "alpha", IP: addr(11) + "/24", Gateway: addr(254), GroupName: "site", GroupIP: addr(1),
		Mode: setupapi.ModeCreate, MembershipPassword: "member-pass-123", AdminPassword: "admin-pass-123", RAID: "raid50",
	}
	if _, err := client.Initialize(req); err != nil {
		t.Fatal(err)
	}
	waitStep(t, client, "initialising RAID")
	pid := readPID(t, dir)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := waitProcessGone(pid, 10*time.Second); err != nil {
		t.Fatal(err)
	}

	if code, _, errOut := labCLI(t, bin, "lab", "up", "--dir", dir); code != 0 {
		t.Fatalf("lab up after kill -9: exit %d: %s", code, errOut)
	}
	st := labSiteStatusJSON(t, bin, dir)
	if st.Name != "" || st.Members[0].State != "uninitialized" || st.Members[0].SetupFingerprint != up.Members[0].SetupFingerprint {
		t.Fatalf("after kill -9 mid-setup: %+v", st)
	}
	if _, err := client.Initialize(req); err != nil {
		t.Fatalf("retry after the restart: %v", err)
	}
	p := waitStep(t, client, "done")
	if p.Result == nil || p.Result.GroupIP != addr(1)+":3260" {
		t.Fatalf("result: %+v", p)
	}
	st = labSiteStatusJSON(t, bin, dir)
	if st.Name != "site" || st.Members[0].State != "online" || st.MembershipPasswordFile != filepath.Join(dir, "secrets", "membership.password") {
		t.Fatalf("after the setup: %+v", st)
	}
	if code, out, _ := labCLI(t, bin, "lab", "status", "--dir", dir); code != 0 || !strings.Contains(out, "membership password in "+st.MembershipPasswordFile) {
		t.Fatalf("lab status after the setup: exit %d\n%s", code, out)
	}
}

// waitStep follows a setup until it reaches step, failing on a failed setup.
func waitStep(t *testing.T, c *setupapi.Client, step string) setupapi.Progress {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		p, err := c.Progress()
		if err != nil {
			t.Fatal(err)
		}
		if p.State == setupapi.StateFailed {
			t.Fatalf("setup failed: %s", p.Error)
		}
		if p.Step == step {
			return p
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal(fmt.Sprintf("setup did not reach %q in 30 s", step))
	return setupapi.Progress{}
}

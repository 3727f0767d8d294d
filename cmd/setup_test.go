package cmd

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hitkit/hitkit/groupapi"
	"github.com/hitkit/hitkit/initiator"
	"github.com/hitkit/hitkit/internal/labtest"
	"github.com/hitkit/hitkit/internal/peer"
	"github.com/hitkit/hitkit/setupapi"
)

// setupSite is a lab site with uninitialised members and no group yet,
// as `lab up --members 0 --uninitialized N` makes it.
type setupSite struct {
	bin, dir, base string // base is "127.0.X." (without the last octet)
	probe          string
	serials        []string // by member number - 1
}

func (s setupSite) addr(last int) string { return fmt.Sprintf("%s%d", s.base, last) }

// startSetupSite starts the site, or skips when this lab cannot make one
// (the member side of the setup is not there).
func startSetupSite(t *testing.T, uninitialized int) setupSite {
	t.Helper()
	bin := buildHitkit(t)
	s := setupSite{bin: bin, dir: filepath.Join(t.TempDir(), "site"), base: strings.TrimSuffix(labtest.ReserveBase(t, labtest.GroupBases).String(), "0")}
	s.probe = s.base + "0/24"
	t.Cleanup(func() { labCLI(t, bin, "lab", "down", "--dir", s.dir) })
	code, _, errOut := labCLI(t, bin, "lab", "up", "--dir", s.dir, "--base-ip", s.base+"0", "--members", "0", "--uninitialized", fmt.Sprint(uninitialized), "--json")
	if code == 2 {
		t.Skipf("this lab cannot start a site without a group (lab up --members 0: %s); the member side of setup is missing", strings.TrimSpace(errOut))
	}
	if code != 0 {
		t.Fatalf("lab up: exit %d: %s\n%s", code, errOut, tailFile(filepath.Join(s.dir, "lab.log")))
	}
	s.serials = s.uninitialized(t)
	if len(s.serials) != uninitialized {
		t.Fatalf("discover found %v; want %d uninitialised members", s.serials, uninitialized)
	}
	return s
}

// setupClient is a client of the setup endpoint of the member with the
// serial, pinned to the fingerprint that discovery reports.
func (s setupSite) setupClient(t *testing.T, serial string) *setupapi.Client {
	t.Helper()
	_, out, _ := labCLI(t, s.bin, "discover", "--uninitialized", "--probe", s.probe, "--timeout", "1s", "--json")
	var found []struct {
		Serial        string `json:"serial"`
		SetupEndpoint string `json:"setup_endpoint"`
		Fingerprint   string `json:"fingerprint"`
	}
	json.Unmarshal([]byte(out), &found)
	for _, a := range found {
		if a.Serial == serial {
			c, err := setupapi.Dial(a.SetupEndpoint, a.Fingerprint)
			if err != nil {
				t.Fatal(err)
			}
			return c
		}
	}
	t.Fatalf("discovery did not find %s: %s", serial, out)
	return nil
}

// uninitialized lists the serials that answer discovery, by address.
func (s setupSite) uninitialized(t *testing.T) []string {
	t.Helper()
	code, out, errOut := labCLI(t, s.bin, "discover", "--uninitialized", "--probe", s.probe, "--timeout", "1s", "--json")
	if code != 0 {
		t.Fatalf("discover --uninitialized: exit %d: %s", code, errOut)
	}
	var found []struct {
		Serial string `json:"serial"`
		State  string `json:"state"`
	}
	if err := json.Unmarshal([]byte(out), &found); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	var serials []string
	for _, a := range found {
		if a.State == "uninitialized" {
			serials = append(serials, a.Serial)
		}
	}
	return serials
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

type setupJSON struct {
	Serial                string `json:"serial"`
	Member                int    `json:"member"`
	Mode                  string `json:"mode"`
	GroupName             string `json:"group_name"`
	GroupIP               string `json:"group_ip"`
	ManagementAddr        string `json:"management_addr"`
	ManagementFingerprint string `json:"management_fingerprint"`
	HostAccess            *struct {
		Volume         string `json:"volume"`
		IQN            string `json:"iqn"`
		Portal         string `json:"portal"`
		CHAPUser       string `json:"chap_user"`
		CHAPSecretFile string `json:"chap_secret_file"`
		InitiatorName  string `json:"initiator_name"`
	} `json:"host_access"`
	ConnectCommand string `json:"connect_command"`
}

// TestSetupArrayNonInteractive creates a group on the first member,
// refuses a wrong membership password for the second, then joins it and
// creates a volume for this host, which spans both members and takes an
// iSCSI login with the generated CHAP secret.
func TestSetupArrayNonInteractive(t *testing.T) {
	s := startSetupSite(t, 2)
	membership := writeFile(t, "membership", "membership-pw-1\n")
	wrong := writeFile(t, "wrong", "not-the-membership-pw\n")
	admin := writeFile(t, "admin", "admin-password-1\n")
	const iqn = "iqn.2026-11.org.hitkit:setup-test"
	common := []string{"--gateway", s.addr(254), "--group", "site", "--group-ip", s.addr(1), "--raid", "raid10",
		"--probe", s.probe, "--no-mdns", "--timeout", "1s"}
	create := append([]string{"setup-array", "--serial", s.serials[0], "--member-name", "m1", "--ip", s.addr(11) + "/24",
		"--create", "--membership-password-file", membership, "--admin-password-file", admin}, common...)

	t.Run("refuses without --yes", func(t *testing.T) {
		code, _, errOut := labCLI(t, s.bin, create...)
		if code != 2 || !strings.Contains(errOut, "refusing to apply without --yes") {
			t.Fatalf("exit %d: %s", code, errOut)
		}
	})

	t.Run("member gone mid-setup", func(t *testing.T) {
		s.setupDiesMidway(t, append(create, "--yes"))
	})

	code, out, errOut := labCLI(t, s.bin, append(create, "--yes", "--json")...)
	if code != 0 {
		t.Fatalf("create: exit %d: %s\n%s", code, errOut, tailFile(filepath.Join(s.dir, "lab.log")))
	}
	var created setupJSON
	if err := json.Unmarshal([]byte(out), &created); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if created.Mode != "create" || created.GroupName != "site" || !strings.HasPrefix(created.GroupIP, s.addr(1)) || created.ManagementFingerprint == "" {
		t.Fatalf("create: %+v", created)
	}
	if got := s.uninitialized(t); !slices.Equal(got, s.serials[1:]) {
		t.Fatalf("after the create, uninitialised: %v; want %v", got, s.serials[1:])
	}

	join := append([]string{"setup-array", "--serial", s.serials[1], "--member-name", "m2", "--ip", s.addr(21) + "/24", "--join", "--yes"}, common...)

	t.Run("group IP in use for a create", func(t *testing.T) {
		args := append([]string{"setup-array", "--serial", s.serials[1], "--member-name", "m2", "--ip", s.addr(21) + "/24", "--create", "--yes",
			"--membership-password-file", membership, "--admin-password-file", admin}, common...)
		code, _, errOut := labCLI(t, s.bin, args...)
		if code != 1 || !strings.Contains(errOut, "--group-ip: "+s.addr(1)+" is in use") {
			t.Fatalf("exit %d: %s", code, errOut)
		}
	})

	t.Run("wrong membership password", func(t *testing.T) {
		// The answers from a file, with a flag overriding its password file.
		answers := writeFile(t, "join.yaml", fmt.Sprintf("serial: %s\nmember-name: m2\nip: %s/24\ngateway: %s\ngroup: site\ngroup-ip: %s\njoin: true\nmembership-password-file: %s\nraid: raid6\nprobe: [%s]\n",
			s.serials[1], s.addr(21), s.addr(254), s.addr(1), membership, s.probe))
		code, _, errOut := labCLI(t, s.bin, "setup-array", "--answers", answers, "--membership-password-file", wrong, "--no-mdns", "--timeout", "1s", "--yes")
		if code != 1 || !strings.Contains(errOut, "refused the membership password") || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
			t.Fatalf("exit %d, stderr %q: want exit 1 and one line", code, errOut)
		}
		if strings.Contains(errOut, "not-the-membership-pw") {
			t.Fatal("the password appears in the error")
		}
		if got := s.uninitialized(t); !slices.Contains(got, s.serials[1]) {
			t.Fatalf("after a refused join, uninitialised: %v; want %s still there", got, s.serials[1])
		}
	})

	t.Run("bad answers file", func(t *testing.T) {
		answers := writeFile(t, "answers.yaml", fmt.Sprintf("serial: %s\nmember-name: m2\nip: %s/24\ngateway: %s\ngroup: site\ngroup-ip: 127.0.99.1\njoin: true\nmembership-password-file: %s\n",
			s.serials[1], s.addr(21), s.addr(254), membership))
		code, _, errOut := labCLI(t, s.bin, "setup-array", "--answers", answers, "--yes", "--probe", s.probe, "--no-mdns", "--timeout", "1s")
		if code != 2 || !strings.Contains(errOut, "answers.yaml line 6: group-ip: 127.0.99.1 is not in the member's subnet") {
			t.Fatalf("exit %d: %s", code, errOut)
		}
	})

	secretFile := filepath.Join(t.TempDir(), "data.chap")
	code, out, errOut = labCLI(t, s.bin, append(join, "--membership-password-file", membership, "--admin-password-file", admin,
		"--host-volume", "data", "--host-volume-size", "64MiB", "--chap-secret-out", secretFile, "--initiator-name", iqn, "--json")...)
	if code != 0 {
		t.Fatalf("join: exit %d: %s\n%s", code, errOut, tailFile(filepath.Join(s.dir, "lab.log")))
	}
	var joined setupJSON
	if err := json.Unmarshal([]byte(out), &joined); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if joined.Mode != "join" || joined.HostAccess == nil || joined.HostAccess.CHAPSecretFile != secretFile || joined.Member == created.Member {
		t.Fatalf("join: %+v", joined)
	}
	if len(s.uninitialized(t)) != 0 {
		t.Fatal("a member is still uninitialised after the join")
	}
	fi, err := os.Stat(secretFile)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("secret file: %v, %v", fi, err)
	}
	secret, _ := os.ReadFile(secretFile)
	secret = bytes.TrimSpace(secret)
	if len(secret) < 12 || strings.Contains(out, string(secret)) || strings.Contains(errOut, string(secret)) {
		t.Fatalf("secret of %d characters, printed: %v", len(secret), strings.Contains(out, string(secret)))
	}
	wantCmd := fmt.Sprintf("hitkit mpio connect --portal %s --target %s --chap-user data --chap-secret-file %s --initiator-name %s",
		joined.HostAccess.Portal, joined.HostAccess.IQN, secretFile, iqn)
	if joined.ConnectCommand != wantCmd {
		t.Fatalf("connect command\n%s\nwant\n%s", joined.ConnectCommand, wantCmd)
	}

	t.Run("volume spans both members", func(t *testing.T) {
		pw, _ := os.ReadFile(admin)
		api, err := groupapi.Dial(joined.ManagementAddr, joined.ManagementFingerprint, bytes.TrimSpace(pw))
		if err != nil {
			t.Fatal(err)
		}
		defer api.Close()
		pm, err := api.PageMap("data")
		if err != nil {
			t.Fatal(err)
		}
		owners := map[int]bool{}
		for i := range pm.Pages {
			owners[pm.Owner(i)] = true
		}
		if len(owners) != 2 || !owners[created.Member] || !owners[joined.Member] || len(pm.Ports[joined.Member]) == 0 {
			t.Fatalf("page map %+v: want pages on members %d and %d", pm, created.Member, joined.Member)
		}
		g, err := api.Group()
		if err != nil || len(g.Members) != 2 {
			t.Fatalf("group %+v, %v", g, err)
		}
	})

	t.Run("iSCSI login with the generated secret", func(t *testing.T) {
		// Our initiator, across every page, so that both members serve I/O.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		sess, err := initiator.Dial(ctx, initiator.Config{Portal: joined.HostAccess.Portal, TargetName: joined.HostAccess.IQN,
			InitiatorName: iqn, CHAPUser: "data", CHAPSecret: secret})
		if err != nil {
			t.Fatalf("login: %v", err)
		}
		defer sess.Close()
		lu, err := initiator.OpenLogicalUnit(ctx, sess, 0)
		if err != nil {
			t.Fatal(err)
		}
		// 4 MiB from offset 0: pages on both members.
		payload := bytes.Repeat([]byte("hitkit setup wizard, page map.\n"), 4<<20/32)
		if _, err := lu.WriteAt(payload, 0); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(payload))
		if _, err := lu.ReadAt(got, 0); err != nil || !bytes.Equal(got, payload) {
			t.Fatalf("read back differs (%v)", err)
		}
		// Another initiator name has no access record.
		if s2, err := initiator.Dial(ctx, initiator.Config{Portal: joined.HostAccess.Portal, TargetName: joined.HostAccess.IQN,
			InitiatorName: "iqn.2026-11.org.hitkit:someone-else", CHAPUser: "data", CHAPSecret: secret}); err == nil {
			s2.Close()
			t.Fatal("an initiator without an access record logged in")
		}
		// And libiscsi, a peer that is not ours.
		if _, err := exec.LookPath("iscsi-inq"); err != nil {
			t.Skip("iscsi-inq (libiscsi-bin) is not installed")
		}
		url := fmt.Sprintf("iscsi://data%%%s@%s/%s/0", secret, joined.HostAccess.Portal, joined.HostAccess.IQN)
		out, err := peer.LibiscsiCommand(ctx, "iscsi-inq", "-i", iqn, url).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "Product") {
			t.Fatalf("iscsi-inq: %v\n%s", err, out)
		}
	})
}

// setupDiesMidway runs a setup, kills the lab with SIGKILL while the
// member initialises, and checks that the wizard says the member went
// away, and that the member is uninitialised when the lab is up again.
func (s setupSite) setupDiesMidway(t *testing.T, args []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out, errOut bytes.Buffer
	cmd := exec.CommandContext(ctx, s.bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// The member says "initializing" while it sets up; its RAID step
	// takes seconds.
	member := s.setupClient(t, s.serials[0])
	defer member.Close()
	deadline := time.Now().Add(20 * time.Second)
	for info, err := member.Info(); err != nil || info.State != "initializing"; info, err = member.Info() {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("the setup did not start within 20 s: %s\n%s", errOut.String(), tailFile(filepath.Join(s.dir, "lab.log")))
		}
		time.Sleep(20 * time.Millisecond)
	}
	pid := readPID(t, s.dir)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitGone(t, pid)
	err := cmd.Wait()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 1 || !strings.Contains(errOut.String(), "the member went away during setup; it stays uninitialised; run setup-array again") {
		t.Fatalf("setup-array with the member killed: %v, stderr %q", err, errOut.String())
	}
	if code, _, errOut := labCLI(t, s.bin, "lab", "up", "--dir", s.dir); code != 0 {
		t.Fatalf("lab up again: exit %d: %s", code, errOut)
	}
	if got := s.uninitialized(t); !slices.Equal(got, s.serials) {
		t.Fatalf("after the lab came back, uninitialised: %v; want %v", got, s.serials)
	}
}

func TestSetupArrayUsage(t *testing.T) {
	membership := writeFile(t, "membership", "membership-pw-1\n")
	for _, tc := range []struct {
		args []string
		says string
	}{
		{[]string{"setup-array"}, "stdin is not a terminal"},
		{[]string{"setup-array", "extra"}, "takes no arguments"},
		{[]string{"setup-array", "--serial", "S", "--member-name", "m1"}, "--ip: missing"},
		{[]string{"setup-array", "--serial", "S", "--member-name", "M1"}, `--member-name: "M1" is not a valid name`},
		{[]string{"setup-array", "--serial", "S", "--member-name", "m1", "--ip", "127.0.10.31/24", "--gateway", "127.0.10.254",
			"--group", "g", "--group-ip", "127.0.10.1", "--create", "--join"}, "--create: say either create"},
		{[]string{"setup-array", "--serial", "S", "--member-name", "m1", "--ip", "127.0.10.31/24", "--gateway", "127.0.10.254",
			"--group", "g", "--group-ip", "127.0.10.1", "--join", "--membership-password-file", membership, "--raid", "raid1"}, `--raid: "raid1" is not a RAID policy`},
		{[]string{"setup-array", "--answers", "/nonexistent/answers.yaml"}, "answers file"},
		{[]string{"setup-array", "--serial", "S", "--member-name", "m1", "--ip", "127.0.10.31/24", "--gateway", "127.0.10.254",
			"--group", "g", "--group-ip", "127.0.10.1", "--join", "--membership-password-file", membership, "--probe", "198.51.100.1", "--no-mdns"}, "refusing to probe 198.51.100.1"},
	} {
		code, _, errOut := hitkit(t, tc.args...)
		if code != 2 || !strings.Contains(errOut, tc.says) {
			t.Errorf("%v: exit %d, %q; want 2 saying %q", tc.args, code, errOut, tc.says)
		}
	}
	typo := writeFile(t, "answers.yaml", "serial: S\nmember-nmae: m1\n")
	if code, _, errOut := hitkit(t, "setup-array", "--answers", typo); code != 2 || !strings.Contains(errOut, `answers.yaml line 2: unknown key "member-nmae"`) {
		t.Errorf("typo in the answers: exit %d, %q", code, errOut)
	}
}

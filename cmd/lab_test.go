package cmd

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hitkit/hitkit/groupapi"
	"github.com/hitkit/hitkit/initiator"
	"github.com/hitkit/hitkit/internal/labtest"
	"github.com/hitkit/hitkit/scsi"
)

// buildHitkit builds the binary, since `lab up` re-executes itself in
// the background and a test binary cannot.
func buildHitkit(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("the go tool is not in PATH; lab tests build the hitkit binary")
	}
	bin := filepath.Join(t.TempDir(), "hitkit")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/hitkit/hitkit").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// labCLI runs the built binary with a time limit.
func labCLI(t *testing.T, bin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out, errOut bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), out.String(), errOut.String()
	} else if err != nil {
		t.Fatal(err)
	}
	return 0, out.String(), errOut.String()
}

type labUpJSON struct {
	PID               int    `json:"pid"`
	GroupIP           string `json:"group_ip"`
	ManagementAPI     string `json:"management_api"`
	CertFingerprint   string `json:"cert_fingerprint_sha256"`
	AdminPasswordFile string `json:"admin_password_file"`
	Volumes           []struct {
		Name           string `json:"name"`
		IQN            string `json:"iqn"`
		CHAPUser       string `json:"chap_user"`
		CHAPSecretFile string `json:"chap_secret_file"`
	} `json:"volumes"`
}

// labSession logs in to a volume through the group IP with our initiator.
func labSession(t *testing.T, up labUpJSON) *initiator.Session {
	t.Helper()
	secret, err := os.ReadFile(up.Volumes[0].CHAPSecretFile)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := initiator.Dial(ctx, initiator.Config{
		Portal: up.GroupIP, TargetName: up.Volumes[0].IQN,
		CHAPUser: up.Volumes[0].CHAPUser, CHAPSecret: bytes.TrimSpace(secret),
	})
	if err != nil {
		t.Fatalf("login through the group IP: %v", err)
	}
	return s
}

// labVolume opens the volume's logical unit over labSession.
func labVolume(t *testing.T, up labUpJSON) (*initiator.LogicalUnit, func()) {
	t.Helper()
	s := labSession(t, up)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	lu, err := initiator.OpenLogicalUnit(ctx, s, 0)
	if err != nil {
		s.Close()
		t.Fatal(err)
	}
	return lu, func() { s.Close() }
}

func readPID(t *testing.T, dir string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "lab.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// TestLabCLI runs the lab as a user would: up in the background, status,
// a fault, kill -9 and up again, down and up again, with the data checked
// at every restart.
func TestLabCLI(t *testing.T) {
	bin := buildHitkit(t)
	dir := filepath.Join(t.TempDir(), "group")
	base := labtest.ReserveBase(t, labtest.GroupBases).String()
	t.Cleanup(func() { labCLI(t, bin, "lab", "down", "--dir", dir) })

	code, out, errOut := labCLI(t, bin, "lab", "up", "--dir", dir, "--base-ip", base, "--volume", "data:32MiB", "--json")
	if code != 0 {
		t.Fatalf("lab up: exit %d: %s\n%s", code, errOut, tailFile(filepath.Join(dir, "lab.log")))
	}
	var up labUpJSON
	if err := json.Unmarshal([]byte(out), &up); err != nil {
		t.Fatalf("lab up --json: %v\n%s", err, out)
	}
	if up.GroupIP != strings.TrimSuffix(base, "0")+"1:3260" || len(up.Volumes) != 1 || up.Volumes[0].Name != "data" {
		t.Fatalf("lab up --json = %+v", up)
	}
	if fi, err := os.Stat(up.Volumes[0].CHAPSecretFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("CHAP secret file: %v", err)
	}
	if readPID(t, dir) != up.PID {
		t.Fatalf("lab.pid does not hold the group's pid %d", up.PID)
	}
	checkManagementAPI(t, up)

	payload := make([]byte, 3<<20)
	rand.Read(payload)
	const off = 5<<20 - 4096 // across page and member boundaries
	lu, closeLU := labVolume(t, up)
	if _, err := lu.WriteAt(payload, off); err != nil {
		t.Fatal(err)
	}
	if err := lu.Sync(); err != nil {
		t.Fatal(err)
	}
	closeLU()

	t.Run("status", func(t *testing.T) {
		code, out, errOut := labCLI(t, bin, "lab", "status", "--dir", dir, "--json")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		var st struct {
			Members []struct {
				State string `json:"state"`
				Ports []struct {
					Address string `json:"address"`
					State   string `json:"state"`
				} `json:"ports"`
			} `json:"members"`
			Volumes []struct {
				Allocated      int64            `json:"allocated"`
				PagesPerMember map[string]int64 `json:"pages_per_member"`
			} `json:"volumes"`
		}
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		if len(st.Members) != 3 || st.Members[2].State != "uninitialized" || len(st.Members[0].Ports) != 2 {
			t.Fatalf("members: %+v", st.Members)
		}
		if v := st.Volumes[0]; v.Allocated < 3<<20 || v.PagesPerMember["1"] != 16 || v.PagesPerMember["2"] != 16 {
			t.Fatalf("volume: %+v", v)
		}
		if code, out, _ := labCLI(t, bin, "lab", "status", "--dir", dir); code != 0 || !strings.Contains(out, "member1") {
			t.Fatalf("status table: exit %d\n%s", code, out)
		}
	})

	t.Run("mutual CHAP", func(t *testing.T) {
		secret, _ := os.ReadFile(up.Volumes[0].CHAPSecretFile)
		mutual, err := os.ReadFile(filepath.Join(dir, "secrets", "mutual.secret"))
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			secret []byte
			ok     bool
		}{{bytes.TrimSpace(mutual), true}, {[]byte("not-the-group-secret"), false}} {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			s, err := initiator.Dial(ctx, initiator.Config{
				Portal: up.GroupIP, TargetName: up.Volumes[0].IQN,
				CHAPUser: up.Volumes[0].CHAPUser, CHAPSecret: bytes.TrimSpace(secret),
				MutualUser: "lab", MutualSecret: c.secret,
			})
			cancel()
			if err == nil {
				s.Close()
			}
			if (err == nil) != c.ok {
				t.Errorf("mutual CHAP with the right secret %v: %v", c.ok, err)
			}
		}
	})

	t.Run("fault", func(t *testing.T) {
		port := strings.TrimSuffix(base, "0") + "11:3260"
		if code, out, errOut := labCLI(t, bin, "lab", "fault", "port-down", "--dir", dir, "--port", port); code != 0 {
			t.Fatalf("exit %d: %s%s", code, out, errOut)
		}
		_, out, _ := labCLI(t, bin, "lab", "status", "--dir", dir, "--json")
		if !strings.Contains(out, `"kind": "port-down"`) {
			t.Fatalf("status after port-down:\n%s", out)
		}
		if code, _, _ := labCLI(t, bin, "lab", "fault", "--dir", dir, "clear"); code != 0 {
			t.Fatal("clear failed")
		}
		if code, _, errOut := labCLI(t, bin, "lab", "fault", "--dir", dir); code != 2 {
			t.Fatalf("fault without a kind: exit %d (%s); want 2", code, errOut)
		}
		if code, _, errOut := labCLI(t, bin, "lab", "fault", "port-down", "--dir", dir, "--port", "127.0.0.1:9"); code != 1 {
			t.Fatalf("fault on an unknown port: exit %d (%s); want 1", code, errOut)
		}
	})

	check := func(t *testing.T, when string) {
		t.Helper()
		lu, closeLU := labVolume(t, up)
		defer closeLU()
		got := make([]byte, len(payload))
		if _, err := lu.ReadAt(got, off); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, payload) {
			t.Fatalf("data differs %s", when)
		}
	}

	t.Run("kill -9 and up", func(t *testing.T) {
		pid := readPID(t, dir)
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		waitGone(t, pid)
		if code, _, errOut := labCLI(t, bin, "lab", "up", "--dir", dir); code != 0 {
			t.Fatalf("up after kill -9: exit %d: %s\n%s", code, errOut, tailFile(filepath.Join(dir, "lab.log")))
		}
		check(t, "after kill -9 and up")
	})

	t.Run("down and up", func(t *testing.T) {
		pid := readPID(t, dir)
		if code, out, errOut := labCLI(t, bin, "lab", "down", "--dir", dir); code != 0 || !strings.Contains(out, "stopped") {
			t.Fatalf("down: exit %d: %s%s", code, out, errOut)
		}
		if processAlive(pid) {
			t.Fatal("the group's process is still there after down")
		}
		for _, f := range []string{"lab.pid", "control.sock"} {
			if _, err := os.Stat(filepath.Join(dir, f)); !os.IsNotExist(err) {
				t.Fatalf("%s left behind: %v", f, err)
			}
		}
		if code, out, _ := labCLI(t, bin, "lab", "status", "--dir", dir); code != 1 {
			t.Fatalf("status of a stopped group: exit %d\n%s", code, out)
		}
		if code, _, errOut := labCLI(t, bin, "lab", "up", "--dir", dir, "--members", "5"); code != 0 || !strings.Contains(errOut, "ignored") {
			t.Fatalf("up again: exit %d: %s", code, errOut)
		}
		check(t, "after down and up")
	})

	t.Run("bad flags", func(t *testing.T) {
		other := filepath.Join(t.TempDir(), "g")
		for _, args := range [][]string{
			{"lab", "up", "--dir", other, "--volume", "nosize"},
			{"lab", "up", "--dir", other, "--base-ip", "198.18.0.0"},
			{"lab", "up"},
		} {
			if code, _, errOut := labCLI(t, bin, args...); code != 2 {
				t.Errorf("%v: exit %d (%s); want 2", args, code, errOut)
			}
		}
	})
}

func waitGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for processAlive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("process %d did not go away", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func tailFile(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return string(b)
}

// TestLabNoPowerOnAttention: with the flag, the first command of a new
// nexus succeeds instead of reporting POWER ON OCCURRED.
func TestLabNoPowerOnAttention(t *testing.T) {
	bin := buildHitkit(t)
	dir := filepath.Join(t.TempDir(), "group")
	base := labtest.ReserveBase(t, labtest.GroupBases).String()
	t.Cleanup(func() { labCLI(t, bin, "lab", "down", "--dir", dir) })
	code, out, errOut := labCLI(t, bin, "lab", "up", "--dir", dir, "--base-ip", base, "--volume", "v:8MiB", "--no-power-on-attention", "--json")
	if code != 0 {
		t.Fatalf("lab up: exit %d: %s", code, errOut)
	}
	var up labUpJSON
	if err := json.Unmarshal([]byte(out), &up); err != nil {
		t.Fatal(err)
	}
	s := labSession(t, up)
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, err := s.Execute(ctx, initiator.Command{CDB: scsi.TestUnitReady()})
	if err != nil || res.Status != scsi.StatusGood {
		t.Fatalf("first TEST UNIT READY: status %#x, err %v; want GOOD", res.Status, err)
	}
}

// checkManagementAPI reaches the group's HTTPS API with the certificate
// fingerprint and the admin password that lab up printed.
func checkManagementAPI(t *testing.T, up labUpJSON) {
	t.Helper()
	password, err := os.ReadFile(up.AdminPasswordFile)
	if err != nil {
		t.Fatal(err)
	}
	api, err := groupapi.Dial(strings.TrimPrefix(up.ManagementAPI, "https://"), up.CertFingerprint, bytes.TrimSpace(password))
	if err != nil {
		t.Fatalf("management API at %s: %v", up.ManagementAPI, err)
	}
	g, err := api.Group()
	if err != nil || g.GroupIP != up.GroupIP {
		t.Fatalf("GET group = %+v, %v; want group IP %s", g, err, up.GroupIP)
	}
}

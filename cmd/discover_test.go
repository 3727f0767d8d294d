package cmd

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hitkit/hitkit/array"
	"github.com/hitkit/hitkit/array/responder"
	"github.com/hitkit/hitkit/internal/labtest"
)

// TestDiscoverUninitialized brings a lab up with its default uninitialised
// member and finds that member by unicast probe on loopback.
func TestDiscoverUninitialized(t *testing.T) {
	bin := buildHitkit(t)
	dir := filepath.Join(t.TempDir(), "group")
	base := labtest.ReserveBase(t, labtest.GroupBases).String()
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

	// --no-mdns: mDNS would otherwise ask on this host's own interfaces.
	code, out, errOut = labCLI(t, bin, "discover", "--uninitialized", "--no-mdns", "--probe", base+"/24", "--timeout", "1s", "--json")
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
	if via, _ := got[0]["via"].([]any); len(via) != 1 || via[0] != "probe" {
		t.Errorf("discover --json: via is not [probe]: %s", out)
	}

	code, out, errOut = labCLI(t, bin, "discover", "--uninitialized", "--no-mdns", "--subnet", base+"/24", "--timeout", "500ms")
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
		{[]string{"discover", "--uninitialized", "--subnet", "192.0.2.128/25", "--probe", "192.0.2.1"}, "loopback"},
		{[]string{"discover", "--uninitialized", "--subnet", "nonsense"}, "nonsense"},
		{[]string{"discover", "--uninitialized", "--subnet", "2001:db8::/64"}, "IPv4"},
		{[]string{"discover", "--uninitialized", "--no-mdns", "--subnet", "198.18.0.0/24"}, "nothing to ask"},
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

// mdnsNet is two network namespaces joined by a veth pair on
// 198.18.N.0/24: the array's (its NIC arrayNIC, at .1) and the host's
// (hostNIC, at .2). Both have loopback up and no other interface, so
// multicast stays on the pair.
type mdnsNet struct {
	array, host       string // namespace names
	arrayNIC, hostNIC string
	subnet            string
	arrayIP           string
}

func newMDNSNet(t *testing.T) mdnsNet {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: builds network namespaces and a veth pair")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs ip(8) from iproute2")
	}
	id := make([]byte, 3)
	rand.Read(id)
	pfx := "hkm" + hex.EncodeToString(id)
	net := 2 + mrand.IntN(250)
	n := mdnsNet{array: pfx + "-a", host: pfx + "-h", arrayNIC: "arr0", hostNIC: "san0",
		subnet: fmt.Sprintf("198.18.%d.0/24", net), arrayIP: fmt.Sprintf("198.18.%d.1", net)}
	if out, err := exec.Command("ip", "netns", "add", n.array).CombinedOutput(); err != nil {
		t.Skipf("no network namespace support: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", n.array).Run() })
	mdnsIP(t, "netns", "add", n.host)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", n.host).Run() })
	mdnsIP(t, "-n", n.array, "link", "add", "name", n.arrayNIC, "type", "veth", "peer", "name", n.hostNIC, "netns", n.host)
	mdnsIP(t, "-n", n.array, "addr", "add", n.arrayIP+"/24", "dev", n.arrayNIC)
	mdnsIP(t, "-n", n.host, "addr", "add", fmt.Sprintf("198.18.%d.2/24", net), "dev", n.hostNIC)
	for _, ns := range []string{n.array, n.host} {
		mdnsIP(t, "-n", ns, "link", "set", "dev", "lo", "up")
	}
	mdnsIP(t, "-n", n.array, "link", "set", "dev", n.arrayNIC, "up")
	mdnsIP(t, "-n", n.host, "link", "set", "dev", n.hostNIC, "up")
	// The kernel reports a new veth's carrier a moment later, and
	// discovery asks only on NICs that are up.
	for i := 0; ; i++ {
		out, _ := exec.Command("ip", "-n", n.host, "-br", "link", "show", n.hostNIC).Output()
		if strings.Contains(string(out), " UP ") {
			break
		}
		if i == 100 {
			t.Fatalf("%s does not come up: %s", n.hostNIC, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return n
}

// mdnsIP runs one ip(8) command, failing the test on error.
func mdnsIP(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// inNetns runs the hitkit binary in namespace ns.
func inNetns(t *testing.T, ns, bin string, args ...string) (int, string, string) {
	t.Helper()
	return labCLI(t, "ip", append([]string{"netns", "exec", ns, bin}, args...)...)
}

// TestDiscoverUninitializedMDNS runs a lab in the array's namespace that
// announces its uninitialised member on the veth, and discovers it by
// mDNS from the host's namespace: with --subnet, and with no flags at
// all (every local subnet, and the lab's default probe range on
// loopback, where nothing answers in that namespace). Once the setup
// wizard joins a member to the group, that member is no longer announced.
func TestDiscoverUninitializedMDNS(t *testing.T) {
	n := newMDNSNet(t)
	bin := buildHitkit(t)
	dir := filepath.Join(t.TempDir(), "group")
	base := labtest.ReserveBase(t, labtest.GroupBases).String()
	t.Cleanup(func() { labCLI(t, bin, "lab", "down", "--dir", dir) })
	if code, _, errOut := inNetns(t, n.array, bin, "lab", "up", "--dir", dir, "--base-ip", base, "--volume", "v:8MiB",
		"--uninitialized", "2", "--mdns-interface", n.arrayNIC, "--json"); code != 0 {
		t.Fatalf("lab up: exit %d: %s\n%s", code, errOut, tailFile(filepath.Join(dir, "lab.log")))
	}
	code, out, errOut := labCLI(t, bin, "lab", "status", "--dir", dir, "--json")
	if code != 0 {
		t.Fatalf("lab status: exit %d: %s", code, errOut)
	}
	var st struct {
		Name    string `json:"name"`
		Members []struct {
			Number int    `json:"number"`
			Serial string `json:"serial"`
			State  string `json:"state"`
		} `json:"members"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	want := map[string]int{} // serial: member number
	for _, m := range st.Members {
		if m.State == "uninitialized" {
			want[m.Serial] = m.Number
		}
	}
	if len(want) != 2 {
		t.Fatalf("lab status shows %d uninitialised members, want 2: %s", len(want), out)
	}

	discover := func(args ...string) {
		t.Helper()
		code, out, errOut := inNetns(t, n.host, bin, args...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, errOut)
		}
		var got []struct {
			Serial, Model, Firmware, Address, State string
			Via                                     []string
			Endpoint                                string `json:"setup_endpoint"`
			Fingerprint                             string
		}
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatalf("%v: %v: %s", args, err, out)
		}
		if len(got) != len(want) {
			t.Fatalf("%v found %d arrays, want %d (%v): %s", args, len(got), len(want), want, out)
		}
		for _, a := range got {
			if _, ok := want[a.Serial]; !ok || a.Model != "PS-Lab" || a.Firmware != "lab-1.0" || a.State != "uninitialized" ||
				a.Address != n.arrayIP || len(a.Via) != 1 || a.Via[0] != "mdns" || a.Endpoint == "" || a.Fingerprint == "" {
				t.Errorf("%v: found %+v, want one of %v at %s by mDNS, with its setup endpoint and fingerprint", args, a, want, n.arrayIP)
			}
		}
	}
	discover("discover", "--uninitialized", "--subnet", n.subnet, "--timeout", "2s", "--json")
	discover("discover", "--uninitialized", "--timeout", "2s", "--json")

	// The setup wizard joins one member to the group (from the array's
	// namespace, where its setup endpoint listens on loopback): that
	// member is announced no more, the other still is.
	var serial string
	var number int
	for serial, number = range want {
		break
	}
	prefix := strings.TrimSuffix(base, "0")
	code, out, errOut = inNetns(t, n.array, bin, "setup-array", "--probe", base+"/24", "--no-mdns", "--serial", serial,
		"--member-name", fmt.Sprintf("m%d", number), "--ip", fmt.Sprintf("%s%d/24", prefix, 10*number+1), "--gateway", prefix+"254",
		"--group", st.Name, "--group-ip", prefix+"1", "--join", "--membership-password-file", array.MembershipPasswordFile(dir),
		"--raid", "raid10", "--yes")
	if code != 0 {
		t.Fatalf("setup-array --join: exit %d: %s%s", code, out, errOut)
	}
	delete(want, serial)
	time.Sleep(2 * responder.PollInterval)
	discover("discover", "--uninitialized", "--subnet", n.subnet, "--timeout", "2s", "--json")

	// A subnet the host has no interface on asks nobody, and says so.
	code, out, errOut = inNetns(t, n.host, bin, "discover", "--uninitialized", "--subnet", "198.19.255.0/24", "--timeout", "1s")
	if code != 2 || !strings.Contains(errOut, "198.19.255.0/24") || out != "" {
		t.Errorf("discover on a subnet without an interface: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

package cmd

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hitkit/hitkit/hosttune"
)

// tuneNet is the test's host: a network namespace with two veth NICs, san0
// and san1, on 198.18.0.0/24, whose peers are ports of a bridge (the switch,
// 198.18.0.100, in a peer namespace).
type tuneNet struct{ host, peer string }

func newTuneNet(t *testing.T) tuneNet {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: builds network namespaces and veth pairs")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs ip(8) from iproute2")
	}
	id := make([]byte, 3)
	rand.Read(id)
	n := tuneNet{host: "hkt" + hex.EncodeToString(id) + "-h", peer: "hkt" + hex.EncodeToString(id) + "-p"}
	if out, err := exec.Command("ip", "netns", "add", n.host).CombinedOutput(); err != nil {
		t.Skipf("no network namespace support: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", n.host).Run() })
	tuneIP(t, "netns", "add", n.peer)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", n.peer).Run() })

	tuneIP(t, "-n", n.peer, "link", "add", "name", "br0", "type", "bridge")
	tuneIP(t, "-n", n.peer, "addr", "add", "198.18.0.100/24", "dev", "br0")
	tuneIP(t, "-n", n.peer, "link", "set", "dev", "br0", "up")
	for i, nic := range []string{"san0", "san1"} {
		port := "sw" + nic
		tuneIP(t, "-n", n.host, "link", "add", "name", nic, "type", "veth", "peer", "name", port, "netns", n.peer)
		tuneIP(t, "-n", n.peer, "link", "set", "dev", port, "master", "br0", "up")
		tuneIP(t, "-n", n.host, "addr", "add", []string{"198.18.0.1/24", "198.18.0.2/24"}[i], "dev", nic)
		tuneIP(t, "-n", n.host, "link", "set", "dev", nic, "up")
	}
	tuneIP(t, "-n", n.host, "link", "set", "dev", "lo", "up")
	// san0 takes jumbo frames, but its switch port (and san1) do not: the
	// classic mismatch.
	tuneIP(t, "-n", n.host, "link", "set", "dev", "san0", "mtu", "9000")
	tuneIP(t, "-n", n.host, "route", "add", "198.18.0.100/32", "dev", "san0")
	tuneIP(t, "-n", n.host, "route", "add", "default", "via", "198.18.0.100", "dev", "san0")
	for key, v := range map[string]string{
		"net/ipv4/conf/all/arp_ignore": "0", "net/ipv4/conf/all/arp_announce": "0", "net/ipv4/conf/all/rp_filter": "0",
		"net/ipv4/conf/san0/arp_ignore": "0", "net/ipv4/conf/san0/arp_announce": "0", "net/ipv4/conf/san0/rp_filter": "1",
		"net/ipv4/conf/san1/arp_ignore": "0", "net/ipv4/conf/san1/arp_announce": "0", "net/ipv4/conf/san1/rp_filter": "1",
	} {
		n.setSysctl(t, key, v)
	}
	return n
}

// tuneIP runs one ip(8) command, failing the test on error.
func tuneIP(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// setSysctl writes /proc/sys/key inside the host namespace, never the
// test machine's own.
func (n tuneNet) setSysctl(t *testing.T, key, v string) {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", n.host, "sh", "-c", "echo "+v+" > /proc/sys/"+key).CombinedOutput()
	if err != nil {
		t.Fatalf("set %s=%s in %s: %v: %s", key, v, n.host, err, out)
	}
}

func (n tuneNet) sysctl(t *testing.T, key string) string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", n.host, "cat", "/proc/sys/"+key).CombinedOutput()
	if err != nil {
		t.Fatalf("read %s in %s: %v: %s", key, n.host, err, out)
	}
	return strings.Join(strings.Fields(string(out)), " ")
}

// tune runs `hitkit tune` inside the host namespace.
func (n tuneNet) tune(t *testing.T, bin string, args ...string) (int, tuneReport, string) {
	t.Helper()
	code, out, errOut := labCLI(t, "ip", append([]string{"netns", "exec", n.host, bin, "tune"}, args...)...)
	var rep tuneReport
	if slices.Contains(args, "--json") && code != exitUsage {
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatalf("tune %v: exit %d, not JSON: %v\n%s\nstderr: %s", args, code, err, out, errOut)
		}
	}
	return code, rep, out + errOut
}

// hostConf reads the test machine's own settings, which the test must
// leave alone.
func hostConf(t *testing.T) map[string]string {
	out := map[string]string{}
	for _, k := range []string{"net/ipv4/conf/all/rp_filter", "net/ipv4/conf/all/arp_ignore",
		"net/ipv4/conf/all/arp_announce", "net/core/rmem_max", "net/ipv4/tcp_rmem"} {
		b, err := os.ReadFile("/proc/sys/" + k)
		if err != nil {
			t.Fatal(err)
		}
		out[k] = string(b)
	}
	return out
}

func findingsOf(rep tuneReport, check string) []hosttune.Finding {
	var out []hosttune.Finding
	for _, f := range rep.Findings {
		if f.Check == check {
			out = append(out, f)
		}
	}
	return out
}

func nicsOf(fs []hosttune.Finding, level hosttune.Level) []string {
	var out []string
	for _, f := range fs {
		if f.Level == level {
			out = append(out, f.NIC)
		}
	}
	return out
}

func TestTuneNetns(t *testing.T) {
	n := newTuneNet(t)
	bin := buildHitkit(t)
	before := hostConf(t)
	dir := t.TempDir()
	nics := []string{"--nic", "san0", "--nic", "san1", "--json", "--sysctl-dir", dir}

	code, rep, out := n.tune(t, bin, nics...)
	if code != exitError {
		t.Fatalf("first run: exit %d, want 1\n%s", code, out)
	}
	if rep.NICSource != "--nic" || !slices.Equal(rep.NICs, []string{"san0", "san1"}) {
		t.Fatalf("NICs %v from %s", rep.NICs, rep.NICSource)
	}
	wantFixes := map[string]string{}
	for _, check := range []string{"arp_ignore", "arp_announce", "rp_filter"} {
		fs := findingsOf(rep, check)
		if got := nicsOf(fs, hosttune.Warning); !slices.Equal(got, []string{"san0", "san1"}) {
			t.Errorf("%s: warnings on %v, want san0 and san1: %+v", check, got, fs)
		}
		for _, f := range fs {
			if f.Sysctl == nil || f.Fix != "sysctl -w "+f.Sysctl.Key+"="+f.Sysctl.Value {
				t.Errorf("%s on %s: fix %q, sysctl %+v", check, f.NIC, f.Fix, f.Sysctl)
				continue
			}
			wantFixes[f.Sysctl.Key] = f.Sysctl.Value
		}
	}
	if mtu := findingsOf(rep, "mtu"); len(mtu) != 1 || mtu[0].NIC != "san1" || !strings.Contains(mtu[0].Fix, "ip link set dev san1 mtu 9000") {
		t.Errorf("MTU findings %+v, want b to match san0's 9000", mtu)
	}
	if dr := findingsOf(rep, "default_route"); len(dr) != 1 || dr[0].NIC != "san0" ||
		!strings.Contains(dr[0].Fix, "ip route del default via 198.18.0.100 dev san0") {
		t.Errorf("default route findings %+v", dr)
	}
	// veth has no pause settings; its GRO is readable.
	if got := nicsOf(findingsOf(rep, "flow_control"), hosttune.Info); !slices.Equal(got, []string{"san0", "san1"}) {
		t.Errorf("flow control: info on %v, want san0 and san1 as not readable", got)
	}
	if gro := findingsOf(rep, "gro"); len(gro) != 0 && len(gro) != 2 || rep.Readings.NICs[0].GRO == nil {
		t.Errorf("GRO findings %+v, reading %+v", gro, rep.Readings.NICs[0])
	}
	buffers := findingsOf(rep, "socket_buffers")
	for _, f := range buffers {
		if f.Sysctl == nil || !f.Sysctl.HostWide {
			t.Errorf("socket buffer finding %+v is not marked host-wide", f)
		}
	}

	// --fix sets the six per-NIC values, persists them, and leaves the
	// socket buffers (host-wide: no --fix-buffers) and MTU and routes.
	rmemBefore := n.sysctl(t, "net/core/rmem_max")
	code, fixed, out := n.tune(t, bin, append(nics, "--fix")...)
	if code != exitError {
		t.Fatalf("--fix: exit %d, want 1 (MTU and default route remain)\n%s", code, out)
	}
	if len(fixed.Changes) != 6 {
		t.Fatalf("--fix changed %+v, want the 6 per-NIC settings", fixed.Changes)
	}
	var file strings.Builder
	file.WriteString("# Written by `hitkit tune --fix`: iSCSI host tuning (see `hitkit tune`).\n")
	for _, ch := range fixed.Changes {
		if wantFixes[ch.Key] != ch.New || ch.Old == ch.New {
			t.Errorf("change %+v, want new value %q", ch, wantFixes[ch.Key])
		}
		if got := n.sysctl(t, strings.ReplaceAll(ch.Key, ".", "/")); got != ch.New {
			t.Errorf("%s reads %q after --fix, want %q", ch.Key, got, ch.New)
		}
		file.WriteString(ch.Key + " = " + ch.New + "\n")
	}
	if fixed.Persisted != filepath.Join(dir, hosttune.SysctlFile) {
		t.Errorf("persisted in %q", fixed.Persisted)
	}
	if got, err := os.ReadFile(filepath.Join(dir, hosttune.SysctlFile)); err != nil || string(got) != file.String() {
		t.Errorf("sysctl file: %v\n%s\nwant\n%s", err, got, file.String())
	}
	if got := n.sysctl(t, "net/core/rmem_max"); got != rmemBefore {
		t.Errorf("net.core.rmem_max changed from %s to %s without --fix-buffers", rmemBefore, got)
	}
	if len(findingsOf(fixed, "socket_buffers")) != len(buffers) {
		t.Errorf("socket buffer findings after --fix: %+v, before: %+v", findingsOf(fixed, "socket_buffers"), buffers)
	}

	// The second run: no sysctl findings; MTU and the default route are
	// still reported, and the portal probe finds that san0's jumbo frames do
	// not get through its 1500-byte switch port.
	code, again, out := n.tune(t, bin, append(nics, "--portal", "198.18.0.100")...)
	if code != exitError {
		t.Fatalf("second run: exit %d\n%s", code, out)
	}
	for _, check := range []string{"arp_ignore", "arp_announce", "rp_filter"} {
		if fs := findingsOf(again, check); len(fs) != 0 {
			t.Errorf("%s still reported after --fix: %+v", check, fs)
		}
	}
	if len(findingsOf(again, "mtu")) != 1 || len(findingsOf(again, "default_route")) != 1 {
		t.Errorf("MTU and default-route findings should remain: %+v", again.Findings)
	}
	p := again.Readings.Path
	if p == nil || p.NIC != "san0" || len(p.Probes) != 3 || !p.Probes[0].Answered || !p.Probes[1].Answered || p.Probes[2].Answered || p.Probes[2].Size != 9000 {
		t.Errorf("path reading %+v", p)
	}
	if pm := findingsOf(again, "path_mtu"); len(pm) != 1 || pm[0].NIC != "san0" || !strings.Contains(pm[0].Fix, "ip link set dev san0 mtu 1500") {
		t.Errorf("path MTU warnings on %v: %+v", pm, findingsOf(again, "path_mtu"))
	}

	// A clean host exits 0: match the MTUs (san0 and its switch port at
	// 1500) and drop the default route.
	tuneIP(t, "-n", n.host, "link", "set", "dev", "san0", "mtu", "1500")
	tuneIP(t, "-n", n.host, "route", "del", "default")
	code, clean, out := n.tune(t, bin, nics...)
	var left []string
	for _, f := range clean.Findings {
		if f.Level == hosttune.Warning {
			left = append(left, f.Check)
		}
	}
	// What is left is host-wide (the buffers, not fixed without
	// --fix-buffers) or veth's GRO, and the exit code says whether any is.
	for _, c := range left {
		if c != "socket_buffers" && c != "gro" {
			t.Errorf("after matching MTUs and dropping the default route: %+v", clean.Findings)
		}
	}
	if want := map[bool]int{true: exitOK, false: exitError}[len(left) == 0]; code != want {
		t.Errorf("exit %d with warnings %v, want %d\n%s", code, left, want, out)
	}

	if after := hostConf(t); !mapsEqual(before, after) {
		t.Fatalf("the test machine's own settings changed: %v -> %v", before, after)
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestTuneNICChoice checks how tune finds the NICs without --nic, and its
// usage errors.
func TestTuneNICChoice(t *testing.T) {
	n := newTuneNet(t)
	bin := buildHitkit(t)
	runtime := t.TempDir() // no hitkitd answers here

	code, rep, out := n.tune(t, bin, "--json", "--runtime-dir", runtime, "--subnet", "198.18.0.0/24")
	if rep.NICSource != "--subnet" || !slices.Equal(rep.NICs, []string{"san0", "san1"}) || code != exitError {
		t.Errorf("--subnet: exit %d, NICs %v from %s\n%s", code, rep.NICs, rep.NICSource, out)
	}
	code, rep, out = n.tune(t, bin, "--json", "--runtime-dir", runtime, "--subnet", "198.19.0.0/24")
	if code != exitError || rep.NICSource != "none" || len(findingsOf(rep, "nics")) != 1 {
		t.Errorf("no NICs: exit %d, %+v\n%s", code, rep, out)
	}
	code, _, out = n.tune(t, bin, "--runtime-dir", runtime)
	if code != exitError || !strings.Contains(out, "no iSCSI NICs found") {
		t.Errorf("no NICs, table: exit %d\n%s", code, out)
	}
	for _, args := range [][]string{
		{"--nic", "nosuch"},
		{"--portal", "not-an-ip"},
		{"--subnet", "198.18.0.0"},
		{"--fix-buffers"},
		{"extra-arg"},
	} {
		if code, _, out := n.tune(t, bin, args...); code != exitUsage || !strings.Contains(out, "hitkit: ") {
			t.Errorf("tune %v: exit %d, want 2\n%s", args, code, out)
		}
	}
}

// TestTuneDaemonNICs connects a lab volume through hitkitd on loopback
// sources and checks that tune, given no --nic, picks the NIC that carries
// the paths. It only reads this machine's settings (no --fix).
func TestTuneDaemonNICs(t *testing.T) {
	g, vol, secretFile := startCLILab(t)
	bin := buildHitkit(t)
	runtime, state := t.TempDir(), t.TempDir()
	dirs := []string{"--runtime-dir", runtime, "--state-dir", state}
	t.Cleanup(func() { stopDaemon(t, runtime) })
	code, _, errOut := labCLI(t, bin, append([]string{"mpio", "connect", "--portal", g.GroupAddr(), "--target", vol.IQN,
		"--chap-user", vol.CHAPUser, "--chap-secret-file", secretFile, "--source", "127.0.0.2,127.0.0.3"}, dirs...)...)
	if code != 0 {
		t.Fatalf("connect: exit %d: %s", code, errOut)
	}
	code, out, errOut := labCLI(t, bin, "tune", "--json", "--runtime-dir", runtime, "--subnet", "198.19.0.0/24")
	var rep tuneReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code == exitUsage {
		t.Fatalf("tune: exit %d, %v\n%s%s", code, err, out, errOut)
	}
	if rep.NICSource != "hitkitd" || !slices.Equal(rep.NICs, []string{"lo"}) {
		t.Fatalf("NICs %v from %s, want lo from hitkitd", rep.NICs, rep.NICSource)
	}
	if len(rep.Readings.NICs) != 1 || rep.Readings.NICs[0].Name != "lo" || rep.Readings.NICs[0].MTU == 0 {
		t.Fatalf("readings %+v", rep.Readings.NICs)
	}
}

package responder_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/vishvananda/netns"

	"github.com/hitkit/hitkit/array"
	"github.com/hitkit/hitkit/array/responder"
	"github.com/hitkit/hitkit/discovery"
	"github.com/hitkit/hitkit/internal/labtest"
	"github.com/hitkit/hitkit/setupapi"
)

func TestTXTRoundTrip(t *testing.T) {
	a := setupapi.Announcement{
		Serial: "HK0123456789", Model: responder.Model, Firmware: responder.Firmware, State: "uninitialized",
		MACs: responder.MACs("HK0123456789", 4), SetupEndpoint: "https://127.0.10.31:8444", Fingerprint: strings.Repeat("ab:", 31) + "ab",
	}
	txt, err := a.TXT()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range txt {
		if len(s) > 255 {
			t.Errorf("TXT string of %d bytes: %q", len(s), s)
		}
	}
	got, err := discovery.ParseSetupTXT(txt)
	if err != nil {
		t.Fatalf("ParseSetupTXT(%q): %v", txt, err)
	}
	want := discovery.Array{Serial: a.Serial, Model: a.Model, Firmware: a.Firmware, State: a.State, MACs: a.MACs, SetupEndpoint: a.SetupEndpoint, Fingerprint: a.Fingerprint}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("round trip = %+v, want %+v", got, want)
	}

	// No fingerprint and no MACs: the keys are left out, and still parse.
	a.Fingerprint, a.MACs = "", nil
	txt, _ = a.TXT()
	if got, err := discovery.ParseSetupTXT(txt); err != nil || got.Fingerprint != "" || got.MACs != nil {
		t.Fatalf("without fingerprint: %q = %+v, %v", txt, got, err)
	}
	a.SetupEndpoint = "https://" + strings.Repeat("x", 300)
	if txt, err := a.TXT(); err == nil {
		t.Fatalf("an endpoint of 308 bytes encoded as %q", txt)
	}
}

// TestMDNSInterfaceRefused: loopback cannot multicast, and a missing
// interface is named in the error; the group does not start.
func TestMDNSInterfaceRefused(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the lab group binds 127.0.x.y addresses")
	}
	for iface, says := range map[string]string{"lo": "loopback", "hk-no-such0": "hk-no-such0"} {
		r := responder.New()
		r.MDNSInterface = iface
		l, err := labtest.New(labtest.Options{Spec: respondingSpec(), Services: []array.Service{r}})
		if err == nil {
			l.Close()
			t.Fatalf("--mdns-interface %s: the group started", iface)
		}
		if !strings.Contains(err.Error(), says) {
			t.Errorf("--mdns-interface %s: %v, want it to say %q", iface, err, says)
		}
	}
}

// joinRequest asks to join the uninitialised member m to g's group at its
// default address.
func joinRequest(t *testing.T, g *array.Group, m int) array.SetupRequest {
	t.Helper()
	pw, err := os.ReadFile(array.MembershipPasswordFile(g.Dir()))
	if err != nil {
		t.Fatal(err)
	}
	b := g.Config().BaseIP.As4()
	at := func(last int) netip.Addr { b[3] = byte(last); return netip.AddrFrom4(b) }
	groupIP := netip.MustParseAddrPort(g.GroupAddr()).Addr()
	return array.SetupRequest{
		Member: m, Name: fmt.Sprintf("m%d", m), IP: netip.PrefixFrom(at(10*m+1), 24), Gateway: at(254),
		RAID: "raid10", GroupName: g.Name(), GroupIP: groupIP, MembershipPassword: strings.TrimSpace(string(pw)),
	}
}

// TestProbeSetupInfo: the probe answer carries what SetupInfo says, and
// a member that joins the group stops answering.
func TestProbeSetupInfo(t *testing.T) {
	r := responder.New()
	asked := make(chan int, 16)
	r.SetupInfo = func(m int) (string, string) {
		select {
		case asked <- m:
		default:
		}
		return fmt.Sprintf("https://127.0.0.1:%d", 9000+m), "fp-" + fmt.Sprint(m)
	}
	g, base := startGroupWith(t, r)
	m := uninitialized(t, g)
	addr, _ := responder.Addr(base, m.Number)
	got, err := discovery.ProbeUninitialized(context.Background(), []netip.Addr{addr.Addr()}, setupapi.ProbePort, time.Second)
	if err != nil || len(got) != 1 {
		t.Fatalf("probe = %+v, %v", got, err)
	}
	if got[0].SetupEndpoint != fmt.Sprintf("https://127.0.0.1:%d", 9000+m.Number) || got[0].Fingerprint != fmt.Sprintf("fp-%d", m.Number) {
		t.Errorf("probe answer %+v does not carry SetupInfo's endpoint and fingerprint", got[0])
	}
	if n := <-asked; n != m.Number {
		t.Errorf("SetupInfo asked for member %d, want %d", n, m.Number)
	}

	if _, err := g.SetUpMember(context.Background(), joinRequest(t, g, m.Number), array.SetupOptions{RAIDDelay: time.Millisecond}); err != nil {
		t.Fatalf("joining member %d: %v", m.Number, err)
	}
	got, err = discovery.ProbeUninitialized(context.Background(), []netip.Addr{addr.Addr()}, setupapi.ProbePort, 500*time.Millisecond)
	if err != nil || len(got) != 0 {
		t.Fatalf("probe after the member joined = %+v, %v; want no answer", got, err)
	}
}

// pairNet is two network namespaces joined by a veth pair on
// 198.18.N.0/24: the array's (arr0, .1) and the host's (san0, .2).
type pairNet struct {
	array, host string
	subnet      netip.Prefix
	arrayIP     netip.Addr
}

func newPairNet(t *testing.T) pairNet {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: builds network namespaces and a veth pair")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs ip(8) from iproute2")
	}
	id := make([]byte, 3)
	rand.Read(id)
	pfx := "hkr" + hex.EncodeToString(id)
	third := byte(2 + mrand.IntN(250))
	n := pairNet{array: pfx + "-a", host: pfx + "-h",
		subnet: netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18, third, 0}), 24), arrayIP: netip.AddrFrom4([4]byte{198, 18, third, 1})}
	if out, err := exec.Command("ip", "netns", "add", n.array).CombinedOutput(); err != nil {
		t.Skipf("no network namespace support: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", n.array).Run() })
	ipCmd(t, "netns", "add", n.host)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", n.host).Run() })
	ipCmd(t, "-n", n.array, "link", "add", "arr0", "type", "veth", "peer", "name", "san0", "netns", n.host)
	ipCmd(t, "-n", n.array, "addr", "add", n.arrayIP.String()+"/24", "dev", "arr0")
	ipCmd(t, "-n", n.host, "addr", "add", n.arrayIP.Next().String()+"/24", "dev", "san0")
	for _, ns := range []string{n.array, n.host} {
		ipCmd(t, "-n", ns, "link", "set", "lo", "up")
	}
	ipCmd(t, "-n", n.array, "link", "set", "arr0", "up")
	ipCmd(t, "-n", n.host, "link", "set", "san0", "up")
	// The kernel reports the carrier of a new veth a moment later;
	// discovery asks only on NICs that are up.
	for i := 0; ; i++ {
		out, _ := exec.Command("ip", "-n", n.host, "-br", "link", "show", "san0").Output()
		if strings.Contains(string(out), " UP ") {
			break
		}
		if i == 100 {
			t.Fatalf("san0 does not come up: %s", out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return n
}

func ipCmd(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// inNS runs f on a thread in namespace ns. The thread is never unlocked:
// it ends with its goroutine instead of going back to the scheduler in
// ns. Sockets f creates stay in ns, whichever thread uses them later.
func inNS(t *testing.T, ns string, f func() error) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		h, err := netns.GetFromName(ns)
		if err != nil {
			done <- err
			return
		}
		defer h.Close()
		if err := netns.Set(h); err != nil {
			done <- err
			return
		}
		done <- f()
	}()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// find runs FindUninitialized with mDNS only, in the host's namespace.
func find(t *testing.T, n pairNet, timeout time.Duration) []discovery.Array {
	t.Helper()
	var got []discovery.Array
	inNS(t, n.host, func() (err error) {
		got, err = discovery.FindUninitialized(context.Background(), discovery.UninitQuery{Subnets: []netip.Prefix{n.subnet}, Timeout: timeout})
		return err
	})
	return got
}

// garbage sends what is not a DNS-SD query for the service to the
// announcer's port 5353, by unicast from the host's namespace.
func garbage(t *testing.T, n pairNet) {
	t.Helper()
	var pkts [][]byte
	for range 50 {
		b := make([]byte, mrand.IntN(1500))
		rand.Read(b)
		pkts = append(pkts, b)
	}
	q := new(dns.Msg)
	q.SetQuestion(setupapi.MDNSService+".local.", dns.TypePTR)
	for _, change := range []func(m *dns.Msg){
		func(m *dns.Msg) { m.Opcode = dns.OpcodeUpdate },
		func(m *dns.Msg) { m.Rcode = dns.RcodeRefused },
		func(m *dns.Msg) { m.Truncated = true },
		func(m *dns.Msg) { m.Response = true },
		func(m *dns.Msg) { m.Question[0].Name = "hk-nothing.local." },
	} {
		m := q.Copy()
		change(m)
		b, err := m.Pack()
		if err != nil {
			t.Fatal(err)
		}
		pkts = append(pkts, b, b[:len(b)/2])
	}
	inNS(t, n.host, func() error {
		c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(n.arrayIP, 5353)))
		if err != nil {
			return err
		}
		defer c.Close()
		for _, p := range pkts {
			c.Write(p)
		}
		return nil
	})
}

// startInNS starts a lab group of one member and uninit uninitialised
// ones in the array's namespace, announcing them on arr0, with a setup
// endpoint of https://127.0.0.1:9000+m and the fingerprint "fp" each. It
// returns the group and the uninitialised members' numbers by serial.
func startInNS(t *testing.T, n pairNet, uninit int) (*array.Group, map[string]int) {
	t.Helper()
	r := responder.New()
	r.MDNSInterface = "arr0"
	r.SetupInfo = func(m int) (string, string) { return fmt.Sprintf("https://127.0.0.1:%d", 9000+m), "fp" }
	var l *labtest.Lab
	inNS(t, n.array, func() (err error) {
		spec := respondingSpec()
		spec.Uninitialized = uninit
		l, err = labtest.New(labtest.Options{Spec: spec, Services: []array.Service{r}})
		return err
	})
	t.Cleanup(func() { l.Close() })
	g := l.Group
	want := map[string]int{}
	for _, m := range g.Config().Members {
		if !m.Initialized {
			want[m.Serial] = m.Number
		}
	}
	if len(want) != uninit {
		t.Fatalf("%d uninitialised members, want %d", len(want), uninit)
	}
	return g, want
}

// TestMDNSWithDig asks the announcer with dig (BIND's), an independent
// DNS implementation, from the host's namespace. dig sends a unicast
// query to port 5353 with the unicast-response bit (the top bit of the
// class, RFC 6762 section 18.12) so that the answer echoes its ID.
func TestMDNSWithDig(t *testing.T) {
	n := newPairNet(t)
	if _, err := exec.LookPath("dig"); err != nil {
		t.Skip("needs dig from bind9-dnsutils (make deps)")
	}
	_, want := startInNS(t, n, 1)
	var serial string
	var number int
	for serial, number = range want {
	}
	out, err := exec.Command("ip", "netns", "exec", n.host, "dig", "@"+n.arrayIP.String(), "-p", "5353", "+norecurse",
		"+time=2", "+tries=3", "+nocmd", "+nostats", setupapi.MDNSService+".local", "PTR", "-c", "CLASS32769").CombinedOutput()
	if err != nil {
		t.Fatalf("dig: %v: %s", err, out)
	}
	inst := serial + "." + setupapi.MDNSService + ".local."
	for _, line := range []string{
		"status: NOERROR",
		"\tIN\tPTR\t" + inst,
		inst + " 120 IN SRV 10 1 " + fmt.Sprint(9000+number) + " " + serial + ".local.",
		serial + ".local.\t120\tIN\tA\t" + n.arrayIP.String(),
		`IN TXT "serial=` + serial + `" "model=PS-Lab" "firmware=lab-1.0" "state=uninitialized" "macs=`,
		`"setup=https://127.0.0.1:` + fmt.Sprint(9000+number) + `" "fingerprint=fp"`,
	} {
		if !strings.Contains(string(out), line) {
			t.Errorf("dig's answer has no %q:\n%s", line, out)
		}
	}
}

// TestMDNSInNetns runs a lab group in the array's namespace, announcing
// its uninitialised member on arr0, and finds it by mDNS from the host's
// namespace, also after a burst of garbage. When the member joins the
// group, the announcement stops within about a poll, and port 5353 is
// released.
func TestMDNSInNetns(t *testing.T) {
	n := newPairNet(t)
	g, want := startInNS(t, n, 2)

	got := find(t, n, time.Second)
	garbage(t, n)
	got2 := find(t, n, time.Second)
	for i, found := range [][]discovery.Array{got, got2} {
		if len(found) != len(want) {
			t.Fatalf("round %d: found %+v, want the serials %v", i, found, want)
		}
		for _, a := range found {
			m, ok := want[a.Serial]
			if !ok || a.Model != responder.Model || a.Firmware != responder.Firmware || a.State != "uninitialized" ||
				a.Address != n.arrayIP.String() || len(a.MACs) == 0 || a.Fingerprint != "fp" ||
				a.SetupEndpoint != fmt.Sprintf("https://127.0.0.1:%d", 9000+m) || !reflect.DeepEqual(a.Via, []string{"mdns"}) {
				t.Errorf("round %d: found %+v; want one of %v at %s", i, a, want, n.arrayIP)
			}
		}
	}

	// In the array's own namespace both ways reach the members: mDNS on
	// arr0 (multicast loops back to the announcer) and the probe on
	// loopback. Each member is listed once, at its lower address.
	var probe []netip.Addr
	for _, m := range want {
		a, _ := responder.Addr(g.Config().BaseIP, m)
		probe = append(probe, a.Addr())
	}
	var both []discovery.Array
	inNS(t, n.array, func() (err error) {
		both, err = discovery.FindUninitialized(context.Background(), discovery.UninitQuery{Subnets: []netip.Prefix{n.subnet}, Probe: probe, Timeout: time.Second})
		return err
	})
	if len(both) != len(want) {
		t.Fatalf("mDNS and probe together found %+v, want %v", both, want)
	}
	for _, a := range both {
		addr, _ := responder.Addr(g.Config().BaseIP, want[a.Serial])
		if !reflect.DeepEqual(a.Via, []string{"mdns", "probe"}) || a.Address != addr.Addr().String() || a.Fingerprint != "fp" {
			t.Errorf("found %+v, want it by mDNS and probe at %s", a, addr.Addr())
		}
	}

	// The first member joins: the other is still announced.
	numbers := []int{}
	for _, m := range want {
		numbers = append(numbers, m)
	}
	join := func(m int) {
		inNS(t, n.array, func() error {
			_, err := g.SetUpMember(context.Background(), joinRequest(t, g, m), array.SetupOptions{RAIDDelay: time.Millisecond})
			return err
		})
	}
	join(numbers[0])
	time.Sleep(2 * responder.PollInterval)
	if got := find(t, n, time.Second); len(got) != 1 || want[got[0].Serial] != numbers[1] {
		t.Fatalf("after member %d joined, found %+v; want member %d only", numbers[0], got, numbers[1])
	}
	// The last one joins: nothing is announced any more, and the
	// announcer leaves port 5353.
	join(numbers[1])
	start := time.Now()
	released := false
	for i := 0; i < 40 && !released; i++ {
		inNS(t, n.array, func() error {
			c, err := net.ListenUDP("udp4", &net.UDPAddr{Port: 5353})
			if err == nil {
				c.Close()
				released = true
			}
			return nil
		})
		if !released {
			time.Sleep(50 * time.Millisecond)
		}
	}
	if !released {
		t.Fatalf("port 5353 is still taken %v after the last member joined", time.Since(start))
	}
	t.Logf("announcement stopped %v after the last member joined", time.Since(start))
	if got := find(t, n, time.Second); len(got) != 0 {
		t.Fatalf("after every member joined, found %+v", got)
	}
}

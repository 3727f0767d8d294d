package array

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hitkit/hitkit/internal/testlog"
)

// testBase picks a random 127.0.X.0 base, away from the default
// 127.0.10.0, so that tests and a lab someone runs by hand do not clash.
func testBase() netip.Addr {
	return netip.AddrFrom4([4]byte{127, 0, byte(100 + rand.IntN(100)), 0})
}

// startGroup starts a group in a fresh directory, retrying on another
// base address if the random one is taken.
func startGroup(t *testing.T, spec Spec) *Group {
	t.Helper()
	dir := t.TempDir()
	var err error
	for range 5 {
		spec.BaseIP = testBase()
		var g *Group
		g, err = Start(dir, spec, Options{Logger: testlog.FailureLog(t)})
		if err == nil {
			t.Cleanup(func() { g.Close() })
			return g
		}
		os.Remove(configFile(dir))
	}
	t.Fatal(err)
	return nil
}

func TestCreateWritesConfigAndSecrets(t *testing.T) {
	dir := t.TempDir()
	cfg, err := Create(dir, Spec{BaseIP: testBase()})
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Members) != 3 || !cfg.Members[0].Initialized || !cfg.Members[1].Initialized || cfg.Members[2].Initialized {
		t.Fatalf("default members: %+v", cfg.Members)
	}
	if cfg.Members[2].Ports != 0 || cfg.Members[2].Serial == "" {
		t.Fatalf("the uninitialised member: %+v", cfg.Members[2])
	}
	if len(cfg.Volumes) != 1 || cfg.Volumes[0].Name != "vol1" || cfg.Volumes[0].Size != 1<<30 ||
		cfg.Volumes[0].IQN != "iqn.2026-11.org.hitkit.lab:lab:vol1" {
		t.Fatalf("default volume: %+v", cfg.Volumes)
	}
	for _, path := range []string{AdminPasswordFile(dir), CHAPSecretFile(dir, "vol1"), MutualCHAPFile(dir)} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v; want 0600", path, fi.Mode().Perm())
		}
		s, _ := readSecret(path)
		if len(s) != secretLength {
			t.Errorf("%s holds a %d-character secret", path, len(s))
		}
	}
	b, _ := os.ReadFile(configFile(dir))
	secret, _ := readSecret(CHAPSecretFile(dir, "vol1"))
	if bytes.Contains(b, []byte(secret)) {
		t.Fatal("group.json contains the CHAP secret")
	}
	if _, err := Create(dir, Spec{}); err == nil {
		t.Fatal("Create over an existing group succeeded")
	}
}

func TestConfigValidation(t *testing.T) {
	for _, s := range []Spec{
		{BaseIP: netip.MustParseAddr("198.18.0.0")}, // not loopback
		{Members: 30}, // does not fit the /24
		{PortsPerMember: 10},
		{Volumes: []VolumeSpec{{Name: "Bad:Name", Size: 1 << 20}}},
		{Volumes: []VolumeSpec{{Name: "v", Size: 1000}}},
		{Volumes: []VolumeSpec{{Name: "v", Size: 1 << 20}, {Name: "v", Size: 1 << 20}}},
	} {
		if _, err := NewConfig(s); err == nil {
			t.Errorf("NewConfig(%+v) succeeded", s)
		}
	}
}

// A group stopped and started again from its directory serves the same
// volumes, with the same identity and data.
func TestGroupPersistence(t *testing.T) {
	g := startGroup(t, Spec{Volumes: []VolumeSpec{{Name: "data", Size: 8 << 20}}, PageSize: 64 << 10})
	dir, before := g.Dir(), g.Config()
	v, _ := g.Volume("data")
	payload := randomBytes(300<<10, 9)
	if _, err := v.WriteAt(payload, 100<<10); err != nil {
		t.Fatal(err)
	}
	if err := g.ResizeVolume("data", 4<<20, false); err == nil {
		t.Fatal("a shrink without asking succeeded")
	}
	if err := g.ResizeVolume("data", 16<<20, false); err != nil {
		t.Fatal(err)
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(ControlSocket(dir)); !os.IsNotExist(err) {
		t.Fatalf("control socket still there after Close: %v", err)
	}
	g2, err := Open(dir, Options{Logger: testlog.FailureLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer g2.Close()
	after := g2.Config()
	if after.Volumes[0].Serial != before.Volumes[0].Serial || after.Volumes[0].Size != 16<<20 ||
		after.Members[0].Serial != before.Members[0].Serial {
		t.Fatalf("configuration changed across restart:\n%+v\n%+v", before, after)
	}
	v2, _ := g2.Volume("data")
	got := make([]byte, len(payload))
	v2.ReadAt(got, 100<<10)
	if !bytes.Equal(got, payload) {
		t.Fatal("data changed across restart")
	}
	pm, _ := g2.PageMap("data")
	if pm.PageSize != 64<<10 || len(pm.Members) != 2 || pm.Pages() != 256 {
		t.Fatalf("page map after restart: %+v", pm)
	}
}

func dialable(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err == nil {
		c.Close()
	}
	return err == nil
}

// Faults act on the ports as advertised, show in the status, and clear.
func TestFaultsAndControlSocket(t *testing.T) {
	g := startGroup(t, Spec{Volumes: []VolumeSpec{{Name: "v", Size: 4 << 20}}})
	c := NewClient(g.Dir())
	if err := c.Ping(); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(ControlSocket(g.Dir())); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("control socket: %v, %v", fi.Mode(), err)
	}
	base := g.Config().BaseIP
	p11, p12, p21 := PortAddr(base, 1, 1), PortAddr(base, 1, 2), PortAddr(base, 2, 1)
	for _, a := range []string{g.GroupAddr(), p11, p12, p21} {
		if !dialable(a) {
			t.Fatalf("%s is not listening", a)
		}
	}
	if dialable(PortAddr(base, 3, 1)) {
		t.Fatal("the uninitialised member serves iSCSI")
	}

	if _, err := c.Fault(FaultRequest{Kind: FaultPortDown, Port: strings.TrimSuffix(p11, ":3260")}); err != nil {
		t.Fatal(err)
	}
	if dialable(p11) {
		t.Fatal("a port that is down accepts connections")
	}
	if _, err := c.Fault(FaultRequest{Kind: FaultLatency, Port: p21, Latency: Duration(5 * time.Millisecond)}); err != nil {
		t.Fatal(err)
	}
	st, err := c.Status()
	if err != nil {
		t.Fatal(err)
	}
	if st.Members[0].Ports[0].State != "down" || st.Members[1].Ports[0].Latency != Duration(5*time.Millisecond) || len(st.Faults) != 2 {
		t.Fatalf("status after faults: ports %+v %+v, faults %+v", st.Members[0].Ports, st.Members[1].Ports, st.Faults)
	}

	// A failover takes every port of the member down for a while.
	if _, err := c.Fault(FaultRequest{Kind: FaultFailover, Member: 1, Duration: Duration(300 * time.Millisecond)}); err != nil {
		t.Fatal(err)
	}
	if dialable(p12) {
		t.Fatal("a port of a failing-over member accepts connections")
	}
	deadline := time.Now().Add(5 * time.Second)
	for !dialable(p12) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if !dialable(p12) {
		t.Fatal("the member's port did not come back after the failover")
	}
	if dialable(p11) {
		t.Fatal("the failover's end brought up a port that was down on its own")
	}

	if _, err := c.Fault(FaultRequest{Kind: FaultClear}); err != nil {
		t.Fatal(err)
	}
	if !dialable(p11) {
		t.Fatal("clear did not bring the port up")
	}
	if st, _ := c.Status(); len(st.Faults) != 0 {
		t.Fatalf("faults after clear: %+v", st.Faults)
	}
	if _, err := c.Fault(FaultRequest{Kind: "meltdown"}); err == nil {
		t.Fatal("an unknown fault was accepted")
	}
	if _, err := c.Fault(FaultRequest{Kind: FaultPortDown, Port: "127.0.0.1:1"}); err == nil {
		t.Fatal("a fault on a port that is not the group's was accepted")
	}

	if err := c.Down(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-g.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the group did not stop on a down request")
	}
	if err := c.Ping(); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("ping after down = %v; want ErrNotRunning", err)
	}
}

func TestSecondGroupOnSameDirRefused(t *testing.T) {
	g := startGroup(t, Spec{Volumes: []VolumeSpec{{Name: "v", Size: 1 << 20}}})
	_, err := Open(g.Dir(), Options{Logger: testlog.FailureLog(t)})
	if err == nil {
		t.Fatal("a second group started on the same directory")
	}
	if !strings.Contains(err.Error(), "already") {
		t.Fatalf("unclear error: %v", err)
	}
}

// The group IP spreads new sessions over the member ports: a redirect
// counts as a session for a while, and ports that are down, blackholed
// or failing over get none.
func TestRedirectSpreadsLogins(t *testing.T) {
	g := startGroup(t, Spec{Volumes: []VolumeSpec{{Name: "v", Size: 1 << 20}}})
	v, _ := g.volume("v")
	base := g.Config().BaseIP
	var got []string
	for range 5 {
		got = append(got, g.leastBusyPort(v).Addr)
	}
	want := []string{PortAddr(base, 1, 1), PortAddr(base, 1, 2), PortAddr(base, 2, 1), PortAddr(base, 2, 2), PortAddr(base, 1, 1)}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("redirects went to %v; want %v", got, want)
	}
	g.mu.Lock()
	g.redirects = nil
	g.mu.Unlock()
	g.Inject(FaultRequest{Kind: FaultPortDown, Port: PortAddr(base, 1, 1)})
	g.Inject(FaultRequest{Kind: FaultBlackhole, Port: PortAddr(base, 1, 2)})
	g.Inject(FaultRequest{Kind: FaultFailover, Member: 2, Duration: Duration(time.Minute)})
	if p := g.leastBusyPort(v); p != nil {
		t.Fatalf("redirected to %s with every port unusable", p.Addr)
	}
	if st := g.Status(); st.Members[0].Ports[1].State != "blackholed" || st.Members[1].State != MemberFailingOver || st.Members[1].Ports[0].State != "down" {
		t.Fatalf("status: %+v", st.Members)
	}
	g.ClearFaults()
	if p := g.leastBusyPort(v); p == nil || p.Addr != PortAddr(base, 1, 1) {
		t.Fatalf("after clear, redirected to %v", p)
	}
}

package discovery

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
)

var testNICs = []NIC{
	{Name: "lo", Index: 1, Up: true, Loopback: true, Addrs: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/8")}},
	{Name: "eth0", Index: 2, Up: true, DefaultRoute: true, Addrs: []netip.Prefix{netip.MustParsePrefix("198.18.0.2/24")}},
	{Name: "eth1", Index: 3, Up: true, Addrs: []netip.Prefix{netip.MustParsePrefix("198.18.1.2/24")}},
	{Name: "eth2", Index: 4, Up: true, Addrs: []netip.Prefix{netip.MustParsePrefix("198.18.2.2/24"), netip.MustParsePrefix("198.18.2.3/24")}},
	{Name: "eth3", Index: 5, Up: false, Addrs: []netip.Prefix{netip.MustParsePrefix("198.18.1.9/24")}},
}

// noRoutes is a routing table with only the connected subnets.
func noRoutes(NIC, netip.Addr, netip.Addr) bool { return false }

func pathList(paths []Path) string {
	s := make([]string, len(paths))
	for i, p := range paths {
		s[i] = p.String()
	}
	return strings.Join(s, " ")
}

func TestPlan(t *testing.T) {
	addr := netip.MustParseAddr
	pfx := netip.MustParsePrefix
	// eth2 routes to 198.18.1.0/24 through a gateway; nothing else does.
	viaEth2 := func(n NIC, _, portal netip.Addr) bool {
		return n.Name == "eth2" && pfx("198.18.1.0/24").Contains(portal)
	}
	tests := []struct {
		name  string
		req   PlanRequest
		reach reachFunc
		want  string
	}{
		{"same subnet only", PlanRequest{Portal: addr("198.18.1.1")}, noRoutes, "eth1/198.18.1.2"},
		{"routed", PlanRequest{Portal: addr("198.18.1.1")}, viaEth2, "eth1/198.18.1.2 eth2/198.18.2.2 eth2/198.18.2.3"},
		{"by nic", PlanRequest{Portal: addr("198.18.1.1"), NICs: []string{"eth2"}}, viaEth2, "eth2/198.18.2.2 eth2/198.18.2.3"},
		{"by source", PlanRequest{Portal: addr("198.18.1.1"), Sources: []netip.Addr{addr("198.18.2.3")}}, viaEth2, "eth2/198.18.2.3"},
		{"include", PlanRequest{Portal: addr("198.18.1.1"), Include: []netip.Prefix{pfx("198.18.2.0/24")}}, viaEth2, "eth2/198.18.2.2 eth2/198.18.2.3"},
		{"exclude", PlanRequest{Portal: addr("198.18.1.1"), Exclude: []netip.Prefix{pfx("198.18.2.2/32")}}, viaEth2, "eth1/198.18.1.2 eth2/198.18.2.3"},
		{"loopback default", PlanRequest{Portal: addr("127.0.0.1")}, noRoutes, "lo/127.0.0.1"},
		{"loopback sources", PlanRequest{Portal: addr("127.0.0.1"), Sources: []netip.Addr{addr("127.0.0.2"), addr("127.0.0.3")}}, noRoutes, "lo/127.0.0.2 lo/127.0.0.3"},
		{"loopback exclude", PlanRequest{Portal: addr("127.0.0.1"), Sources: []netip.Addr{addr("127.0.0.2"), addr("127.0.0.3")}, Exclude: []netip.Prefix{pfx("127.0.0.3/32")}}, noRoutes, "lo/127.0.0.2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			paths, err := plan(tt.req, testNICs, tt.reach)
			if err != nil {
				t.Fatal(err)
			}
			if got := pathList(paths); got != tt.want {
				t.Errorf("paths %q, want %q", got, tt.want)
			}
		})
	}
}

func TestPlanErrors(t *testing.T) {
	addr := netip.MustParseAddr
	pfx := netip.MustParsePrefix
	tests := []struct {
		name string
		req  PlanRequest
		want []string // fragments of the message
	}{
		{"down and excluded", PlanRequest{Portal: addr("198.18.1.1"), NICs: []string{"eth3", "eth1"}, Exclude: []netip.Prefix{pfx("198.18.1.0/25")}},
			[]string{"no NIC can reach 198.18.1.1", "eth3 is down", "eth1 (198.18.1.2) is excluded by --exclude-subnet 198.18.1.0/25"}},
		{"no route", PlanRequest{Portal: addr("198.18.9.1"), NICs: []string{"eth1"}},
			[]string{"eth1 (198.18.1.2) has no route to 198.18.9.1"}},
		{"not included", PlanRequest{Portal: addr("198.18.1.1"), NICs: []string{"eth1"}, Include: []netip.Prefix{pfx("198.18.2.0/24")}},
			[]string{"outside every --include-subnet"}},
		{"unknown nic", PlanRequest{Portal: addr("198.18.1.1"), NICs: []string{"eth7"}},
			[]string{"--nic eth7: no such NIC", "eth0, eth1"}},
		{"foreign source", PlanRequest{Portal: addr("198.18.1.1"), Sources: []netip.Addr{addr("198.18.7.7")}},
			[]string{"--source 198.18.7.7: not an address of this host"}},
		{"loopback from a NIC", PlanRequest{Portal: addr("127.0.0.1"), Sources: []netip.Addr{addr("198.18.1.2")}},
			[]string{"use 127.x.y.z sources"}},
		{"loopback wrong nic", PlanRequest{Portal: addr("127.0.0.1"), NICs: []string{"eth1"}},
			[]string{"only --nic lo reaches it"}},
		{"ipv6", PlanRequest{Portal: addr("2001:db8::1")}, []string{"not an IPv4 address"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			paths, err := plan(tt.req, testNICs, noRoutes)
			if err == nil {
				t.Fatalf("no error; paths %s", pathList(paths))
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

// TestHostLoopback plans against the real host: every Linux host has a
// loopback NIC that is up.
func TestHostLoopback(t *testing.T) {
	nics, err := Interfaces()
	if err != nil {
		t.Skipf("netlink unavailable: %v", err)
	}
	i := slices.IndexFunc(nics, func(n NIC) bool { return n.Loopback })
	if i < 0 || !nics[i].Up {
		t.Fatalf("no loopback NIC that is up in %+v", nics)
	}
	paths, err := Plan(PlanRequest{Portal: netip.MustParseAddr("127.0.0.1"),
		Sources: []netip.Addr{netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("127.0.0.3")}})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := pathList(paths), nics[i].Name+"/127.0.0.2 "+nics[i].Name+"/127.0.0.3"; got != want {
		t.Errorf("paths %q, want %q", got, want)
	}
}

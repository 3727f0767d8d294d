package hosttune

import (
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hitkit/hitkit/discovery"
)

// goodSysctls are readings that follow every rule, for two NICs a and b.
func goodSysctls() map[string]string {
	m := map[string]string{
		"net.core.rmem_max": "16777216", "net.core.wmem_max": "33554432",
		"net.ipv4.tcp_rmem": "4096 131072 16777216", "net.ipv4.tcp_wmem": "4096 16384 16777216",
	}
	for _, nic := range []string{"all", "a", "b"} {
		m[ConfKey(nic, "arp_ignore")] = "1"
		m[ConfKey(nic, "arp_announce")] = "2"
		m[ConfKey(nic, "rp_filter")] = "2"
	}
	m[ConfKey("all", "arp_ignore")] = "0"
	m[ConfKey("all", "rp_filter")] = "0"
	m[ConfKey("all", "arp_announce")] = "0"
	return m
}

func goodNICs() []NICReading {
	on := true
	return []NICReading{
		{Name: "a", MTU: 9000, Pause: &Pause{RX: true, TX: true}, GRO: &on},
		{Name: "b", MTU: 9000, Pause: &Pause{RX: true, TX: true}, GRO: &on},
	}
}

// brief is a finding reduced to what the table asserts.
type brief struct {
	check, nic string
	level      Level
	key, value string
}

func briefs(fs []Finding) []brief {
	var out []brief
	for _, f := range fs {
		b := brief{check: f.Check, nic: f.NIC, level: f.Level}
		if f.Sysctl != nil {
			b.key, b.value = f.Sysctl.Key, f.Sysctl.Value
		}
		out = append(out, b)
	}
	return out
}

func TestCheckRules(t *testing.T) {
	cases := []struct {
		name   string
		sysctl map[string]string // overrides of goodSysctls; "" deletes
		nics   func([]NICReading)
		path   *PathReading
		want   []brief
		fix    string // in the last finding's fix, when set
	}{
		{name: "clean"},
		{name: "wrong per-NIC values",
			sysctl: map[string]string{"net.ipv4.conf.a.arp_ignore": "0", "net.ipv4.conf.b.arp_announce": "0", "net.ipv4.conf.a.rp_filter": "1"},
			want: []brief{
				{"arp_ignore", "a", Warning, "net.ipv4.conf.a.arp_ignore", "1"},
				{"arp_announce", "b", Warning, "net.ipv4.conf.b.arp_announce", "2"},
				{"rp_filter", "a", Warning, "net.ipv4.conf.a.rp_filter", "2"},
			}},
		// The kernel takes max(all, NIC): all=1 makes NICs with rp_filter=0
		// strict, and the NICs' own 2 still wins over all=1.
		{name: "rp_filter all=1 with NIC 0 and 2",
			sysctl: map[string]string{"net.ipv4.conf.all.rp_filter": "1", "net.ipv4.conf.a.rp_filter": "0"},
			want:   []brief{{"rp_filter", "a", Warning, "net.ipv4.conf.a.rp_filter", "2"}}},
		{name: "arp_ignore all=1 covers a NIC at 0",
			sysctl: map[string]string{"net.ipv4.conf.all.arp_ignore": "1", "net.ipv4.conf.a.arp_ignore": "0"}},
		{name: "arp_ignore all=2 overrides every NIC",
			sysctl: map[string]string{"net.ipv4.conf.all.arp_ignore": "2", "net.ipv4.conf.a.arp_ignore": "0"},
			want:   []brief{{"arp_ignore", "all", Warning, "net.ipv4.conf.all.arp_ignore", "1"}}},
		{name: "arp_ignore NIC above 1 with all=2",
			sysctl: map[string]string{"net.ipv4.conf.all.arp_ignore": "2", "net.ipv4.conf.a.arp_ignore": "3"},
			want: []brief{
				{"arp_ignore", "all", Warning, "net.ipv4.conf.all.arp_ignore", "1"},
				{"arp_ignore", "a", Warning, "net.ipv4.conf.a.arp_ignore", "1"},
			}},
		{name: "arp_announce via all is fine",
			sysctl: map[string]string{"net.ipv4.conf.all.arp_announce": "2", "net.ipv4.conf.a.arp_announce": "0"}},
		{name: "unreadable NIC key is info",
			sysctl: map[string]string{"net.ipv4.conf.b.rp_filter": ""},
			want:   []brief{{"rp_filter", "b", Info, "", ""}}},
		{name: "socket buffers raise only the maximum",
			sysctl: map[string]string{"net.core.rmem_max": "212992", "net.ipv4.tcp_wmem": "4096 16384 4194304"},
			want: []brief{
				{"socket_buffers", "", Warning, "net.core.rmem_max", "16777216"},
				{"socket_buffers", "", Warning, "net.ipv4.tcp_wmem", "4096 16384 16777216"},
			}},
		{name: "MTU mismatch names the smaller NIC",
			nics: func(n []NICReading) { n[1].MTU = 1500 },
			want: []brief{{"mtu", "b", Warning, "", ""}}},
		{name: "flow control off, GRO off, not readable",
			nics: func(n []NICReading) {
				off := false
				n[0].Pause, n[0].GRO = &Pause{RX: true}, &off
				n[1].Pause, n[1].PauseErr, n[1].GRO, n[1].GROErr = nil, "not supported", nil, "not supported"
			},
			want: []brief{
				{"flow_control", "a", Warning, "", ""}, {"gro", "a", Warning, "", ""},
				{"flow_control", "b", Info, "", ""}, {"gro", "b", Info, "", ""},
			}},
		{name: "default route on an iSCSI NIC",
			nics: func(n []NICReading) { n[0].DefaultRoute, n[0].Gateway = true, "198.18.0.254" },
			want: []brief{{"default_route", "a", Warning, "", ""}}},
		{name: "jumbo frames not answered on the path",
			path: &PathReading{Portal: netip.MustParseAddr("198.18.0.100"), NIC: "a", NICMTU: 9000,
				Probes: []Probe{{576, true}, {1500, true}, {9000, false}}},
			want: []brief{{"path_mtu", "a", Warning, "", ""}},
			fix:  "ip link set dev a mtu 1500"},
		{name: "route mtu below the NIC's and portal silent",
			path: &PathReading{Portal: netip.MustParseAddr("198.18.0.100"), NIC: "b", NICMTU: 9000, RouteMTU: 1500,
				Probes: []Probe{{576, false}, {1500, false}}},
			want: []brief{{"path_mtu", "b", Warning, "", ""}, {"path_mtu", "b", Info, "", ""}}},
		{name: "portal behind a non-iSCSI NIC",
			path: &PathReading{Portal: netip.MustParseAddr("198.18.0.100"), NIC: "eth9", NICMTU: 9000,
				Probes: []Probe{{576, true}, {9000, true}}},
			want: []brief{{"path_mtu", "eth9", Warning, "", ""}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := Readings{Sysctl: goodSysctls(), NICs: goodNICs(), Path: tc.path}
			for k, v := range tc.sysctl {
				if v == "" {
					delete(r.Sysctl, k)
				} else {
					r.Sysctl[k] = v
				}
			}
			if tc.nics != nil {
				tc.nics(r.NICs)
			}
			fs := Check(r)
			if got := briefs(fs); !slices.Equal(got, tc.want) {
				t.Fatalf("findings\n got %+v\nwant %+v", got, tc.want)
			}
			if tc.fix != "" && !strings.Contains(fs[len(fs)-1].Fix, tc.fix) {
				t.Errorf("fix %q lacks %q", fs[len(fs)-1].Fix, tc.fix)
			}
			for _, f := range fs {
				if f.What == "" || f.Why == "" || (f.Level == Warning && f.Fix == "") {
					t.Errorf("finding %+v lacks what, why or fix", f)
				}
				if f.Sysctl != nil && !strings.HasPrefix(f.Fix, "sysctl -w "+f.Sysctl.Key+"=") {
					t.Errorf("fix %q does not set %s", f.Fix, f.Sysctl.Key)
				}
			}
		})
	}
}

func TestConfKeyVLAN(t *testing.T) {
	key := ConfKey("eth0.100", "rp_filter")
	if key != "net.ipv4.conf.eth0/100.rp_filter" {
		t.Fatalf("key %q", key)
	}
	s := Sysctls{Root: "/proc/sys"}
	if p := s.path(key); p != "/proc/sys/net/ipv4/conf/eth0.100/rp_filter" {
		t.Fatalf("path %q", p)
	}
}

// TestApplyAndPersist writes into a directory tree laid out like
// /proc/sys, and checks the values, the host-wide opt-in and the merged
// sysctl.d file.
func TestApplyAndPersist(t *testing.T) {
	root := t.TempDir()
	s := Sysctls{Root: root}
	files := map[string]string{
		"net/ipv4/conf/a/rp_filter":        "1\n",
		"net/ipv4/conf/eth0.100/rp_filter": "0\n",
		"net/ipv4/tcp_rmem":                "4096\t131072\t6291456\n",
	}
	for p, v := range files {
		os.MkdirAll(filepath.Join(root, filepath.Dir(p)), 0o755)
		if err := os.WriteFile(filepath.Join(root, p), []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	fs := Check(Readings{
		NICs: []NICReading{{Name: "a"}, {Name: "eth0.100"}},
		Sysctl: map[string]string{
			"net.ipv4.conf.all.rp_filter": "0", "net.ipv4.conf.a.rp_filter": "1", "net.ipv4.conf.eth0/100.rp_filter": "0",
			"net.ipv4.tcp_rmem": "4096 131072 6291456",
		},
	})
	changes, err := s.Apply(fs, false)
	if err != nil {
		t.Fatal(err)
	}
	want := []Change{{"net.ipv4.conf.a.rp_filter", "1", "2"}, {"net.ipv4.conf.eth0/100.rp_filter", "0", "2"}}
	if !slices.Equal(changes, want) {
		t.Fatalf("changes %+v, want %+v", changes, want)
	}
	if v, _ := s.Read("net.ipv4.tcp_rmem"); v != "4096 131072 6291456" {
		t.Fatalf("tcp_rmem changed without the host-wide opt-in: %q", v)
	}
	if v, _ := s.Read("net.ipv4.conf.eth0/100.rp_filter"); v != "2" {
		t.Fatalf("eth0.100 rp_filter reads %q", v)
	}

	dir := t.TempDir()
	conf := filepath.Join(dir, SysctlFile)
	os.WriteFile(conf, []byte("# mine\nnet.ipv4.conf.a.rp_filter = 1\nvm.swappiness = 10\n"), 0o644)
	if _, err := Persist(dir, changes); err != nil {
		t.Fatal(err)
	}
	more, err := s.Apply(fs, true)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(more, []Change{
		{"net.ipv4.conf.a.rp_filter", "2", "2"}, {"net.ipv4.conf.eth0/100.rp_filter", "2", "2"},
		{"net.ipv4.tcp_rmem", "4096 131072 6291456", "4096 131072 16777216"},
	}) {
		t.Fatalf("second apply %+v", more)
	}
	if _, err := Persist(dir, more[2:]); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(conf)
	wantFile := "# mine\nnet.ipv4.conf.a.rp_filter = 2\nvm.swappiness = 10\n" +
		"net.ipv4.conf.eth0/100.rp_filter = 2\nnet.ipv4.tcp_rmem = 4096 131072 16777216\n"
	if string(got) != wantFile {
		t.Fatalf("sysctl file\n%s\nwant\n%s", got, wantFile)
	}
}

func TestNICSelection(t *testing.T) {
	nics := []discovery.NIC{
		{Name: "lo", Loopback: true, Addrs: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/8")}},
		{Name: "a", Addrs: []netip.Prefix{netip.MustParsePrefix("198.18.0.1/24")}},
		{Name: "b", Addrs: []netip.Prefix{netip.MustParsePrefix("198.18.0.2/24")}},
		{Name: "c", Addrs: []netip.Prefix{netip.MustParsePrefix("198.19.5.1/24")}},
	}
	got := NICsOnSubnets(nics, []netip.Prefix{netip.MustParsePrefix("198.18.0.0/24")})
	if !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("on subnet: %v", got)
	}
	got = NICsWithAddrs(nics, []netip.Addr{netip.MustParseAddr("198.19.5.1"), netip.MustParseAddr("198.18.0.2")})
	if !slices.Equal(got, []string{"b", "c"}) {
		t.Fatalf("with addresses: %v", got)
	}
	got = NICsWithAddrs(nics, []netip.Addr{netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("198.18.0.3")})
	if !slices.Equal(got, []string{"lo"}) {
		t.Fatalf("loopback and an unowned address on a's subnet: %v", got)
	}
	if got := NICsOnSubnets(nics, nil); got != nil {
		t.Fatalf("no subnets: %v", got)
	}
}

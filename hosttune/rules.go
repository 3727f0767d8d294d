// Package hosttune checks a host's network settings against iSCSI best
// practice for several NICs on one subnet (ARP and reverse-path filtering,
// MTUs end to end, socket buffers, flow control, GRO, the default route)
// and fixes the sysctl ones on request.
//
// Reading the host (Read) and judging it (Check) are separate, so that the
// rules can be tested with readings made up in a table.
package hosttune

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// Level says whether a finding needs action.
type Level string

const (
	// Warning findings need a change; they make `hitkit tune` exit 1.
	Warning Level = "warning"
	// Info findings tell what could not be checked, or why something is fine.
	Info Level = "info"
)

// Finding is one thing that differs from best practice: what, why, and the
// exact fix.
type Finding struct {
	Check string `json:"check"`
	NIC   string `json:"nic,omitempty"`
	Level Level  `json:"level"`
	What  string `json:"what"`
	Why   string `json:"why"`
	Fix   string `json:"fix,omitempty"`
	// Sysctl is set when --fix can apply the fix itself.
	Sysctl *SysctlFix `json:"sysctl,omitempty"`
}

// SysctlFix is a sysctl value to set.
type SysctlFix struct {
	Key   string `json:"key"` // dotted, as sysctl(8) takes it
	Value string `json:"value"`
	// HostWide keys (the socket buffers) change every socket on the host,
	// so applying them needs a separate opt-in.
	HostWide bool `json:"host_wide,omitempty"`
}

// Readings is what Read found on the host, and what Check judges.
type Readings struct {
	NICs []NICReading `json:"nics"`
	// Sysctl holds the values read, by dotted key. A key that could not be
	// read is absent.
	Sysctl map[string]string `json:"sysctl"`
	Path   *PathReading      `json:"path,omitempty"` // with a portal only
}

// NICReading is one iSCSI NIC.
type NICReading struct {
	Name         string `json:"name"`
	MTU          int    `json:"mtu"`
	DefaultRoute bool   `json:"default_route"`
	// Gateway of the default route through this NIC, if any.
	Gateway  string `json:"gateway,omitempty"`
	Pause    *Pause `json:"pause,omitempty"` // nil: not readable
	PauseErr string `json:"pause_error,omitempty"`
	GRO      *bool  `json:"gro,omitempty"` // nil: not readable
	GROErr   string `json:"gro_error,omitempty"`
}

// Pause is a NIC's 802.3x flow control setting.
type Pause struct {
	Autoneg bool `json:"autoneg"`
	RX      bool `json:"rx"`
	TX      bool `json:"tx"`
}

// PathReading is the way to the array's group IP.
type PathReading struct {
	Portal   netip.Addr `json:"portal"`
	NIC      string     `json:"nic"`       // the NIC the route leaves through
	NICMTU   int        `json:"nic_mtu"`   // that NIC's MTU
	RouteMTU int        `json:"route_mtu"` // the route's own mtu, 0 when unset
	// Probes are the don't-fragment ICMP echoes sent to the portal, by
	// size of the IP packet; absent when not probed.
	Probes   []Probe `json:"probes,omitempty"`
	ProbeErr string  `json:"probe_error,omitempty"`
}

// Probe is one don't-fragment echo size and whether it was answered.
type Probe struct {
	Size     int  `json:"size"`
	Answered bool `json:"answered"`
}

// Recommended values. The socket buffer maximum is what 10GbE iSCSI
// guides publish: 16 MiB lets TCP grow a session's window well past the
// bandwidth-delay product of 10 Gb/s (1.25 MB per millisecond of round
// trip), with room for the queueing delay of a busy array or switch.
const (
	wantArpIgnore   = 1
	wantArpAnnounce = 2
	wantRPFilter    = 2
	// MinSocketBuffer is the recommended minimum of net.core.rmem_max,
	// wmem_max and the maximum (third) field of tcp_rmem and tcp_wmem.
	MinSocketBuffer = 16 << 20
)

// ConfKey is the sysctl key of an IPv4 setting of a NIC (or "all"). A dot
// in a NIC name (a VLAN, eth0.100) is written as '/', which is how
// sysctl(8) and sysctl.d(5) tell it apart from the separators.
func ConfKey(nic, name string) string {
	return "net.ipv4.conf." + strings.ReplaceAll(nic, ".", "/") + "." + name
}

// Check judges the readings; the findings come in a stable order: per-NIC
// sysctls, MTUs, the path to the array, socket buffers, flow control and
// GRO, the default route.
func Check(r Readings) []Finding {
	var out []Finding
	out = append(out, checkConf(r)...)
	out = append(out, checkMTU(r)...)
	out = append(out, checkPath(r)...)
	out = append(out, checkBuffers(r)...)
	for _, n := range r.NICs {
		out = append(out, checkOffload(n)...)
	}
	for _, n := range r.NICs {
		out = append(out, checkDefaultRoute(n)...)
	}
	return out
}

// Warnings counts the findings that need action.
func Warnings(fs []Finding) int {
	n := 0
	for _, f := range fs {
		if f.Level == Warning {
			n++
		}
	}
	return n
}

const (
	whyArpIgnore = "with several NICs on one subnet, arp_ignore=0 lets every NIC answer ARP for every local address, " +
		"so the switch and the array learn one NIC's MAC for all of them and every path's traffic arrives on that NIC; " +
		"1 answers only for the addresses of the NIC the request came in on"
	whyArpIgnoreAll = "the kernel uses the larger of conf.all.arp_ignore and the NIC's own value, " +
		"so an all value above 1 overrides the NIC's 1"
	whyArpAnnounce = "arp_announce=2 makes a NIC use its own address as the source of its ARP requests, " +
		"so the array maps each host address to the MAC of the NIC that owns it; the kernel uses the larger of conf.all and the NIC's value"
	whyRPFilter = "strict reverse-path filtering (1) drops packets that arrive on a NIC other than the one the route back points at, " +
		"which with several NICs on one subnet is every path but one; 2 (loose) only checks that the source is reachable at all. " +
		"The kernel uses the larger of conf.all.rp_filter and the NIC's value, so all=1 makes every NIC strict"
)

// confRule is one per-NIC sysctl and how the kernel combines it with
// conf.all: for these three it takes the larger value.
type confRule struct {
	name string
	want int
	why  string
}

var confRules = []confRule{
	{"arp_ignore", wantArpIgnore, whyArpIgnore},
	{"arp_announce", wantArpAnnounce, whyArpAnnounce},
	{"rp_filter", wantRPFilter, whyRPFilter},
}

func checkConf(r Readings) []Finding {
	var out []Finding
	for _, rule := range confRules {
		all, allOK := sysctlInt(r.Sysctl, ConfKey("all", rule.name))
		if !allOK {
			out = append(out, notReadable(rule.name, "all", ConfKey("all", rule.name)))
		}
		// Only arp_ignore can have an all value above the wanted one
		// (rp_filter and arp_announce top out at 2); lowering all is the
		// only way the NIC gets the wanted value then.
		if allOK && all > rule.want {
			out = append(out, Finding{
				Check: rule.name, NIC: "all", Level: Warning,
				What:   fmt.Sprintf("%s=%d overrides every NIC's value (want %d)", ConfKey("all", rule.name), all, rule.want),
				Why:    whyArpIgnoreAll,
				Fix:    sysctlLine(ConfKey("all", rule.name), strconv.Itoa(rule.want)),
				Sysctl: &SysctlFix{Key: ConfKey("all", rule.name), Value: strconv.Itoa(rule.want)},
			})
			all = rule.want
		}
		for _, n := range r.NICs {
			key := ConfKey(n.Name, rule.name)
			dev, ok := sysctlInt(r.Sysctl, key)
			if !ok {
				out = append(out, notReadable(rule.name, n.Name, key))
				continue
			}
			if eff := max(dev, all); eff != rule.want {
				out = append(out, Finding{
					Check: rule.name, NIC: n.Name, Level: Warning,
					What:   fmt.Sprintf("%s=%d (effective %d with all=%d), want %d", key, dev, eff, all, rule.want),
					Why:    rule.why,
					Fix:    sysctlLine(key, strconv.Itoa(rule.want)),
					Sysctl: &SysctlFix{Key: key, Value: strconv.Itoa(rule.want)},
				})
			}
		}
	}
	return out
}

func notReadable(check, nic, key string) Finding {
	return Finding{Check: check, NIC: nic, Level: Info,
		What: key + " is not readable", Why: "the kernel does not offer this sysctl here, so it cannot be checked"}
}

func sysctlLine(key, value string) string {
	if strings.Contains(value, " ") {
		return fmt.Sprintf("sysctl -w %s='%s'", key, value)
	}
	return fmt.Sprintf("sysctl -w %s=%s", key, value)
}

func sysctlInt(m map[string]string, key string) (int, bool) {
	s, ok := m[key]
	if !ok {
		return 0, false
	}
	v, err := strconv.Atoi(strings.TrimSpace(s))
	return v, err == nil
}

const whyMTU = "every port on a path must agree on the MTU: a NIC whose MTU is larger than its switch or array port's " +
	"logs in fine (small frames) and then stalls on the first large transfer (the classic jumbo-frame mismatch), and paths " +
	"with different MTUs behave differently under the same load. ip link changes last until reboot: " +
	"set the MTU in the NIC's network configuration too"

func checkMTU(r Readings) []Finding {
	if len(r.NICs) < 2 {
		return nil
	}
	top := slices.MaxFunc(r.NICs, func(a, b NICReading) int { return a.MTU - b.MTU }).MTU
	var parts []string
	for _, n := range r.NICs {
		parts = append(parts, fmt.Sprintf("%s=%d", n.Name, n.MTU))
	}
	var out []Finding
	for _, n := range r.NICs {
		if n.MTU == top {
			continue
		}
		out = append(out, Finding{
			Check: "mtu", NIC: n.Name, Level: Warning,
			What: fmt.Sprintf("MTU %d differs from the other iSCSI NICs (%s)", n.MTU, strings.Join(parts, ", ")),
			Why:  whyMTU,
			Fix:  fmt.Sprintf("ip link set dev %s mtu %d (if its switch and array ports take %d; else lower the others)", n.Name, top, top),
		})
	}
	return out
}

func checkPath(r Readings) []Finding {
	p := r.Path
	if p == nil {
		return nil
	}
	var out []Finding
	iscsi := slices.ContainsFunc(r.NICs, func(n NICReading) bool { return n.Name == p.NIC })
	if !iscsi && len(r.NICs) > 0 {
		out = append(out, Finding{
			Check: "path_mtu", NIC: p.NIC, Level: Warning,
			What: fmt.Sprintf("the route to the portal %s leaves through %s, which is not one of the iSCSI NICs", p.Portal, p.NIC),
			Why:  "sessions to the group IP (discovery, and logins before the redirect) then take a NIC that is not tuned or sized for iSCSI",
			Fix:  fmt.Sprintf("give an iSCSI NIC an address on the portal's subnet, or check with: ip route get %s", p.Portal),
		})
	}
	if p.RouteMTU > 0 && p.RouteMTU < p.NICMTU {
		out = append(out, Finding{
			Check: "path_mtu", NIC: p.NIC, Level: Warning,
			What: fmt.Sprintf("the route to %s has mtu %d, below the MTU %d of %s", p.Portal, p.RouteMTU, p.NICMTU, p.NIC),
			Why:  whyMTU,
			Fix:  fmt.Sprintf("ip route get %s shows the route; remove its mtu (ip route change ... without mtu) or match the NICs to %d", p.Portal, p.RouteMTU),
		})
	}
	out = append(out, checkProbes(p)...)
	return out
}

func checkProbes(p *PathReading) []Finding {
	if p.ProbeErr != "" {
		return []Finding{{Check: "path_mtu", NIC: p.NIC, Level: Info,
			What: fmt.Sprintf("no don't-fragment probe of %s: %s", p.Portal, p.ProbeErr),
			Why:  "the path MTU to the array was checked from the routes only"}}
	}
	if len(p.Probes) == 0 {
		return nil
	}
	small, big := p.Probes[0], p.Probes[len(p.Probes)-1]
	switch {
	case !small.Answered:
		return []Finding{{Check: "path_mtu", NIC: p.NIC, Level: Info,
			What: fmt.Sprintf("%s did not answer a %d-byte echo, so the path MTU could not be probed", p.Portal, small.Size),
			Why:  "the array or a firewall does not answer ICMP echo; the path MTU was checked from the routes only"}}
	case !big.Answered:
		fit := largestAnswered(p.Probes)
		lower := fmt.Sprintf("ip link set dev %s mtu %d", p.NIC, fit)
		if fit == small.Size {
			lower = fmt.Sprintf("find the path's MTU with ping -M do -s SIZE %s and set it with ip link set dev %s mtu MTU", p.Portal, p.NIC)
		}
		return []Finding{{Check: "path_mtu", NIC: p.NIC, Level: Warning,
			What: fmt.Sprintf("%s answers %d-byte packets but not %d-byte ones sent with don't-fragment; %s has MTU %d",
				p.Portal, fit, big.Size, p.NIC, p.NICMTU),
			Why: whyMTU,
			Fix: fmt.Sprintf("set the switch and array ports to MTU %d, or lower %s to what gets through: %s",
				p.NICMTU, p.NIC, lower)}}
	}
	return nil
}

func largestAnswered(ps []Probe) int {
	best := 0
	for _, p := range ps {
		if p.Answered && p.Size > best {
			best = p.Size
		}
	}
	return best
}

const whyBuffers = "the maximum socket buffer bounds a TCP session's window, and so its throughput at a given round trip: " +
	"10 Gb/s needs 1.25 MB per millisecond of round trip, and a busy array or switch adds milliseconds; " +
	"net.core.rmem_max/wmem_max cap what a program may ask for, the third field of tcp_rmem/tcp_wmem caps autotuning. " +
	"16 MiB is the usual recommendation for 10GbE iSCSI hosts. These settings apply to every socket on the host, " +
	"so --fix applies them only with --fix-buffers"

// bufferKeys are the socket buffer sysctls whose maximum (their last
// field) checkBuffers compares with MinSocketBuffer.
var bufferKeys = []string{"net.core.rmem_max", "net.core.wmem_max", "net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem"}

// checkBuffers compares the socket buffer maxima with MinSocketBuffer.
// Fixes only raise the maximum; the minimum and default fields of
// tcp_rmem and tcp_wmem are kept.
func checkBuffers(r Readings) []Finding {
	var out []Finding
	for _, key := range bufferKeys {
		raw, ok := r.Sysctl[key]
		if !ok {
			out = append(out, notReadable("socket_buffers", "", key))
			continue
		}
		fields := strings.Fields(raw)
		if len(fields) == 0 {
			out = append(out, notReadable("socket_buffers", "", key))
			continue
		}
		top, err := strconv.Atoi(fields[len(fields)-1])
		if err != nil || top >= MinSocketBuffer {
			continue
		}
		fields[len(fields)-1] = strconv.Itoa(MinSocketBuffer)
		want := strings.Join(fields, " ")
		out = append(out, Finding{
			Check: "socket_buffers", Level: Warning,
			What:   fmt.Sprintf("%s maximum is %d, below %d (16 MiB)", key, top, MinSocketBuffer),
			Why:    whyBuffers,
			Fix:    sysctlLine(key, want),
			Sysctl: &SysctlFix{Key: key, Value: want, HostWide: true},
		})
	}
	return out
}

func checkOffload(n NICReading) []Finding {
	var out []Finding
	switch {
	case n.Pause == nil:
		out = append(out, Finding{Check: "flow_control", NIC: n.Name, Level: Info,
			What: "flow control is not readable: " + n.PauseErr,
			Why:  "the driver does not report 802.3x pause settings (virtual NICs such as veth do not have them)"})
	case !n.Pause.RX || !n.Pause.TX:
		out = append(out, Finding{Check: "flow_control", NIC: n.Name, Level: Warning,
			What: fmt.Sprintf("flow control rx %s, tx %s", onOff(n.Pause.RX), onOff(n.Pause.TX)),
			Why: "iSCSI traffic comes in bursts; without 802.3x pause frames an overrun switch buffer drops frames and " +
				"TCP backs off for milliseconds. Array vendors recommend flow control on for iSCSI ports (unless the network uses DCB)",
			Fix: fmt.Sprintf("ethtool -A %s rx on tx on (and in the NIC's network configuration to keep it)", n.Name)})
	}
	switch {
	case n.GRO == nil:
		out = append(out, Finding{Check: "gro", NIC: n.Name, Level: Info,
			What: "GRO is not readable: " + n.GROErr,
			Why:  "the driver does not report generic receive offload"})
	case !*n.GRO:
		out = append(out, Finding{Check: "gro", NIC: n.Name, Level: Warning,
			What: "generic receive offload (GRO) is off",
			Why: "GRO merges the segments of a large read into few packets before the TCP stack, " +
				"which saves CPU per byte at 10 Gb/s and so leaves the initiator's cores for I/O",
			Fix: fmt.Sprintf("ethtool -K %s gro on", n.Name)})
	}
	return out
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

func checkDefaultRoute(n NICReading) []Finding {
	if !n.DefaultRoute {
		return nil
	}
	del := fmt.Sprintf("ip route del default dev %s", n.Name)
	if n.Gateway != "" {
		del = fmt.Sprintf("ip route del default via %s dev %s", n.Gateway, n.Name)
	}
	return []Finding{{Check: "default_route", NIC: n.Name, Level: Warning,
		What: "the default route leaves through iSCSI NIC " + n.Name,
		Why: "all the host's other traffic then shares the storage link with the sessions and competes with their I/O, " +
			"and a storage network is best kept unreachable from elsewhere",
		Fix: del + "; ip route add default via GATEWAY dev NIC (a NIC that does not carry iSCSI)"}}
}

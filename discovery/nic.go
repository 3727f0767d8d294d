// Package discovery finds what the host can use to reach an array: its
// NICs and their addresses, which of them reach a portal (the session
// plan), and when a NIC loses its carrier.
//
// It has types of its own and imports nothing of the initiator or mpio, so
// that the CLI, the daemon and health checks can all use it.
package discovery

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// NIC is one network interface as the session plan sees it.
type NIC struct {
	Name  string `json:"name"`
	Index int    `json:"index"`
	MTU   int    `json:"mtu"`
	// Up says the NIC is administratively up and has a carrier: the kernel
	// reports LOWER_UP and an operational state that is up (or unknown,
	// as loopback and some virtual NICs report).
	Up       bool           `json:"up"`
	Loopback bool           `json:"loopback,omitempty"`
	SpeedMbs int            `json:"speed_mbs,omitempty"` // 0 when the driver does not tell
	Addrs    []netip.Prefix `json:"addrs"`               // IPv4 only
	// DefaultRoute says the main table's default route leaves through
	// this NIC: iSCSI on it shares the link with everything else.
	DefaultRoute bool `json:"default_route,omitempty"`
	// DefaultGateway is that route's gateway through this NIC, when it
	// names one: what `ip route del default via GW dev NIC` needs.
	DefaultGateway string `json:"default_gateway,omitempty"`
}

// Interfaces lists the host's NICs, in index order.
func Interfaces() ([]NIC, error) {
	links, err := netlink.LinkList()
	if err != nil {
		return nil, fmt.Errorf("list NICs: %w", err)
	}
	defaults, err := defaultRouteLinks()
	if err != nil {
		return nil, err
	}
	nics := make([]NIC, 0, len(links))
	for _, l := range links {
		n, err := nicOf(l)
		if err != nil {
			return nil, err
		}
		n.DefaultGateway, n.DefaultRoute = defaults[n.Index]
		nics = append(nics, n)
	}
	return nics, nil
}

func nicOf(l netlink.Link) (NIC, error) {
	a := l.Attrs()
	n := NIC{
		Name: a.Name, Index: a.Index, MTU: a.MTU,
		Up:       carrierUp(l),
		Loopback: a.Flags&net.FlagLoopback != 0,
		SpeedMbs: readSpeed(a.Name),
	}
	addrs, err := netlink.AddrList(l, netlink.FAMILY_V4)
	if err != nil {
		return NIC{}, fmt.Errorf("list the addresses of %s: %w", a.Name, err)
	}
	for _, ad := range addrs {
		if p, ok := prefixOf(ad.IPNet); ok {
			n.Addrs = append(n.Addrs, p)
		}
	}
	return n, nil
}

// carrierUp reads a link's carrier the way the kernel reports it: a NIC
// whose cable (or veth peer, or bridge port) is gone keeps IFF_UP but
// loses IFF_LOWER_UP, and its operational state leaves "up".
func carrierUp(l netlink.Link) bool {
	a := l.Attrs()
	if a.RawFlags&unix.IFF_UP == 0 || a.RawFlags&unix.IFF_LOWER_UP == 0 {
		return false
	}
	return a.OperState == netlink.OperUp || a.OperState == netlink.OperUnknown
}

// readSpeed is the link speed in Mb/s from sysfs, or 0: virtual NICs and
// NICs without a carrier have none (the kernel answers -1 or EINVAL).
func readSpeed(name string) int {
	b, err := os.ReadFile("/sys/class/net/" + name + "/speed")
	if err != nil {
		return 0
	}
	v, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || v < 0 {
		return 0
	}
	return v
}

func prefixOf(n *net.IPNet) (netip.Prefix, bool) {
	if n == nil {
		return netip.Prefix{}, false
	}
	ip, ok := netip.AddrFromSlice(n.IP.To4())
	if !ok {
		return netip.Prefix{}, false
	}
	ones, _ := n.Mask.Size()
	return netip.PrefixFrom(ip, ones), true
}

// defaultRouteLinks maps the link indexes that carry an IPv4 default
// route of the main table to that route's gateway ("" when it has none).
func defaultRouteLinks() (map[int]string, error) {
	routes, err := netlink.RouteListFiltered(netlink.FAMILY_V4,
		&netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
	if err != nil && !errors.Is(err, unix.ENOENT) {
		return nil, fmt.Errorf("list routes: %w", err)
	}
	out := map[int]string{}
	for _, r := range routes {
		if !isDefault(r) {
			continue
		}
		out[r.LinkIndex] = gatewayOf(r.Gw)
		for _, nh := range r.MultiPath {
			out[nh.LinkIndex] = gatewayOf(nh.Gw)
		}
	}
	return out, nil
}

// gatewayOf writes a route's gateway, "" when it has none.
func gatewayOf(gw net.IP) string {
	if gw == nil {
		return ""
	}
	return gw.String()
}

func isDefault(r netlink.Route) bool {
	if r.Dst == nil {
		return true
	}
	ones, _ := r.Dst.Mask.Size()
	return ones == 0
}

package discovery

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// PlanRequest is what the user asked for with `hitkit mpio connect`.
type PlanRequest struct {
	Portal  netip.Addr   // the group IP (or the target's portal)
	NICs    []string     // --nic: only these NICs; empty means all
	Sources []netip.Addr // --source: only these local addresses; empty means all
	Include []netip.Prefix
	Exclude []netip.Prefix
}

// Path is one way out of the host towards the portal: a session binds
// Source, and SO_BINDTODEVICE binds it to NIC.
type Path struct {
	NIC    string     `json:"nic"`
	Source netip.Addr `json:"source"`
}

func (p Path) String() string { return p.NIC + "/" + p.Source.String() }

// Plan lists the paths that can reach req.Portal: one per IPv4 address of
// every NIC that is up, is selected by --nic and --source, lies in the
// included and outside the excluded subnets, and has a route to the portal
// from that address through that NIC. A portal on loopback is reached from
// loopback sources, so that several 127.x.y.z addresses can play the part
// of several NICs. When no path is left, the error says why for every NIC.
func Plan(req PlanRequest) ([]Path, error) {
	nics, err := Interfaces()
	if err != nil {
		return nil, err
	}
	return plan(req, nics, routeReaches)
}

// reachFunc says whether src on nic reaches portal.
type reachFunc func(nic NIC, src, portal netip.Addr) bool

func plan(req PlanRequest, nics []NIC, reach reachFunc) ([]Path, error) {
	if !req.Portal.Is4() && !req.Portal.Is4In6() {
		return nil, fmt.Errorf("portal %v is not an IPv4 address", req.Portal)
	}
	req.Portal = req.Portal.Unmap()
	if err := checkNICNames(req.NICs, nics); err != nil {
		return nil, err
	}
	if req.Portal.IsLoopback() {
		return planLoopback(req, nics)
	}
	if err := checkSources(req.Sources, nics); err != nil {
		return nil, err
	}
	var paths []Path
	var why []string
	for _, n := range nics {
		if !selected(req, n) {
			continue
		}
		p, reasons := nicPaths(req, n, reach)
		paths = append(paths, p...)
		why = append(why, reasons...)
	}
	if len(paths) == 0 {
		return nil, noPathError(req.Portal, why)
	}
	return paths, nil
}

// selected says whether the user's --nic and --source leave n in the plan
// at all. NICs that the user did not pick are not worth a reason.
func selected(req PlanRequest, n NIC) bool {
	if len(req.NICs) > 0 {
		return slices.Contains(req.NICs, n.Name)
	}
	if n.Loopback {
		return false // the portal is not on loopback
	}
	if len(req.Sources) > 0 {
		return slices.ContainsFunc(n.Addrs, func(p netip.Prefix) bool { return slices.Contains(req.Sources, p.Addr()) })
	}
	return true
}

// nicPaths are n's paths to the portal, and why its other addresses are
// not used.
func nicPaths(req PlanRequest, n NIC, reach reachFunc) ([]Path, []string) {
	if !n.Up {
		return nil, []string{n.Name + " is down (no carrier)"}
	}
	if len(n.Addrs) == 0 {
		return nil, []string{n.Name + " has no IPv4 address"}
	}
	var paths []Path
	var why []string
	for _, a := range n.Addrs {
		src := a.Addr()
		if len(req.Sources) > 0 && !slices.Contains(req.Sources, src) {
			continue
		}
		if reason := filtered(req, src); reason != "" {
			why = append(why, fmt.Sprintf("%s (%v) %s", n.Name, src, reason))
			continue
		}
		if !a.Contains(req.Portal) && !reach(n, src, req.Portal) {
			why = append(why, fmt.Sprintf("%s (%v) has no route to %v", n.Name, src, req.Portal))
			continue
		}
		paths = append(paths, Path{NIC: n.Name, Source: src})
	}
	return paths, why
}

// filtered says why the include and exclude subnets rule src out, or "".
func filtered(req PlanRequest, src netip.Addr) string {
	for _, x := range req.Exclude {
		if x.Contains(src) {
			return "is excluded by --exclude-subnet " + x.String()
		}
	}
	if len(req.Include) > 0 && !slices.ContainsFunc(req.Include, func(p netip.Prefix) bool { return p.Contains(src) }) {
		return "is outside every --include-subnet"
	}
	return ""
}

// planLoopback serves a portal on 127/8: every loopback address reaches
// it, whether or not it is configured on lo, so --source picks them.
func planLoopback(req PlanRequest, nics []NIC) ([]Path, error) {
	i := slices.IndexFunc(nics, func(n NIC) bool { return n.Loopback })
	if i < 0 {
		return nil, fmt.Errorf("portal %v is on loopback, but the host has no loopback NIC", req.Portal)
	}
	lo := nics[i]
	if len(req.NICs) > 0 && !slices.Contains(req.NICs, lo.Name) {
		return nil, fmt.Errorf("portal %v is on loopback: only --nic %s reaches it, not %s", req.Portal, lo.Name, strings.Join(req.NICs, ","))
	}
	sources := req.Sources
	if len(sources) == 0 {
		for _, a := range lo.Addrs {
			sources = append(sources, a.Addr())
		}
	}
	var paths []Path
	var why []string
	for _, src := range sources {
		if !src.Unmap().IsLoopback() {
			return nil, fmt.Errorf("source %v cannot reach portal %v on loopback: use 127.x.y.z sources", src, req.Portal)
		}
		if reason := filtered(req, src); reason != "" {
			why = append(why, fmt.Sprintf("%s (%v) %s", lo.Name, src, reason))
			continue
		}
		paths = append(paths, Path{NIC: lo.Name, Source: src.Unmap()})
	}
	if len(paths) == 0 {
		return nil, noPathError(req.Portal, why)
	}
	return paths, nil
}

func checkNICNames(names []string, nics []NIC) error {
	for _, name := range names {
		if !slices.ContainsFunc(nics, func(n NIC) bool { return n.Name == name }) {
			have := make([]string, len(nics))
			for i, n := range nics {
				have[i] = n.Name
			}
			return fmt.Errorf("--nic %s: no such NIC on this host (it has %s)", name, strings.Join(have, ", "))
		}
	}
	return nil
}

func checkSources(sources []netip.Addr, nics []NIC) error {
	for _, s := range sources {
		mine := slices.ContainsFunc(nics, func(n NIC) bool {
			return slices.ContainsFunc(n.Addrs, func(p netip.Prefix) bool { return p.Addr() == s.Unmap() })
		})
		if !mine {
			return fmt.Errorf("--source %v: not an address of this host; `ip -4 addr` lists them", s)
		}
	}
	return nil
}

func noPathError(portal netip.Addr, why []string) error {
	if len(why) == 0 {
		return fmt.Errorf("no NIC can reach %v: no NIC with an IPv4 address matches --nic and --source", portal)
	}
	return fmt.Errorf("no NIC can reach %v: %s", portal, strings.Join(why, ", "))
}

// routeReaches asks the kernel for the route to portal from src out of
// nic, as a session bound to both (SO_BINDTODEVICE) would be routed. The
// kernel answers such a lookup even without a route, assuming the portal
// is on the NIC's link; so a route without a gateway counts only when the
// NIC has a route of its own that covers the portal.
func routeReaches(nic NIC, src, portal netip.Addr) bool {
	dst := net.IP(portal.AsSlice())
	routes, err := netlink.RouteGetWithOptions(dst, &netlink.RouteGetOptions{Oif: nic.Name, SrcAddr: net.IP(src.AsSlice())})
	if err != nil || len(routes) == 0 || routes[0].LinkIndex != nic.Index {
		return false
	}
	return routes[0].Gw != nil || linkRouteCovers(nic.Index, dst)
}

// linkRouteCovers says whether a route through the link covers dst.
func linkRouteCovers(index int, dst net.IP) bool {
	routes, err := netlink.RouteListFiltered(netlink.FAMILY_V4,
		&netlink.Route{LinkIndex: index, Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_OIF|netlink.RT_FILTER_TABLE)
	if err != nil {
		return false
	}
	for _, r := range routes {
		if r.Type == unix.RTN_UNICAST && (r.Dst == nil || r.Dst.Contains(dst)) {
			return true
		}
	}
	return false
}

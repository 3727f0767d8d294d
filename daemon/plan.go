package daemon

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/hitkit/hitkit/discovery"
	"github.com/hitkit/hitkit/groupapi"
	"github.com/hitkit/hitkit/mpio"
)

// sessionPlan is how a volume's sessions leave the host.
type sessionPlan struct {
	Paths    []mpio.PathSpec
	Sessions int
}

// planPaths turns a request into paths and a session count. The paths
// come from discovery.Plan: every NIC address that can reach the portal,
// narrowed by --nic, --source and the subnet filters. A session binds its
// path's source address, and its NIC too (SO_BINDTODEVICE) when the user
// named NICs. The session count is sessions-per-slice for each member the
// volume spans, capped by max-sessions; without the management API the
// members are unknown, so it assumes two, the common case in a group.
func planPaths(r ConnectRequest) (sessionPlan, error) {
	req, err := planRequest(r)
	if err != nil {
		return sessionPlan{}, err
	}
	found, err := discovery.Plan(req)
	if err != nil {
		return sessionPlan{}, err
	}
	var plan sessionPlan
	for _, p := range found {
		spec := mpio.PathSpec{SourceAddr: p.Source.String()}
		if len(r.NICs) > 0 {
			spec.Device = p.NIC
		}
		plan.Paths = append(plan.Paths, spec)
	}
	const assumedMembers = 2
	plan.Sessions = sessionCount(r, assumedMembers)
	return plan, nil
}

// sessionCount is sessions-per-slice for each of members, capped by
// max-sessions.
func sessionCount(r ConnectRequest, members int) int {
	perSlice, maxSessions := r.SessionsPerSlice, r.MaxSessions
	if perSlice == 0 {
		perSlice = DefaultSessionsPerSlice
	}
	if maxSessions == 0 {
		maxSessions = DefaultMaxSessions
	}
	return min(maxSessions, perSlice*max(members, 1))
}

// GroupAPIAddr is where the group's management API is: GroupAPI, or the
// portal's host (groupapi.Dial adds the default port).
func (r ConnectRequest) GroupAPIAddr() string {
	if r.GroupAPI != "" {
		return r.GroupAPI
	}
	if h, _, err := net.SplitHostPort(r.Portal); err == nil {
		return h
	}
	return r.Portal
}

// fetchPageMap asks the group's management API which member holds which
// page of the volume whose IQN is the request's target, and at which
// portals those members listen.
func fetchPageMap(r ConnectRequest) (*mpio.PageMap, error) {
	c, err := groupapi.Dial(r.GroupAPIAddr(), r.GroupFingerprint, []byte(r.GroupAdminPassword))
	if err != nil {
		return nil, fmt.Errorf("group management API: %w", err)
	}
	defer c.Close()
	vols, err := c.Volumes()
	if err != nil {
		return nil, fmt.Errorf("group management API: %w", err)
	}
	name := ""
	for _, v := range vols {
		if v.IQN == r.Target {
			name = v.Name
		}
	}
	if name == "" {
		return nil, fmt.Errorf("group management API: no volume has the target name %s", r.Target)
	}
	pm, err := c.PageMap(name)
	if err != nil {
		return nil, fmt.Errorf("group management API: page map of %s: %w", name, err)
	}
	if pm.PageSize <= 0 || len(pm.Members) == 0 {
		return nil, fmt.Errorf("group management API: volume %s has an empty page map", name)
	}
	return &mpio.PageMap{PageSize: pm.PageSize, Members: pm.Members, Ports: pm.Ports}, nil
}

// planRequest reads the request's portal, sources and subnets.
func planRequest(r ConnectRequest) (discovery.PlanRequest, error) {
	var req discovery.PlanRequest
	var err error
	if req.Portal, err = portalAddr(r.Portal); err != nil {
		return req, err
	}
	for _, s := range r.Sources {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return req, fmt.Errorf("source address %q: %v", s, err)
		}
		req.Sources = append(req.Sources, a)
	}
	req.NICs = r.NICs
	if req.Include, err = parsePrefixes(r.IncludeSubnets); err != nil {
		return req, err
	}
	req.Exclude, err = parsePrefixes(r.ExcludeSubnets)
	return req, err
}

// portalAddr is the IPv4 address of a HOST[:PORT] portal.
func portalAddr(portal string) (netip.Addr, error) {
	host := portal
	if h, _, err := net.SplitHostPort(portal); err == nil {
		host = h
	}
	if a, err := netip.ParseAddr(host); err == nil {
		return a, nil
	}
	ips, err := net.LookupIP(host)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("portal %q: %v", portal, err)
	}
	for _, ip := range ips {
		if a, ok := netip.AddrFromSlice(ip.To4()); ok {
			return a, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("portal %q has no IPv4 address", portal)
}

func parsePrefixes(ss []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range ss {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("subnet %q: %v", s, err)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

package daemon

import (
	"fmt"
	"net/netip"

	"github.com/hitkit/hitkit/mpio"
)

// sessionPlan is how a volume's sessions leave the host.
type sessionPlan struct {
	Paths    []mpio.PathSpec
	Sessions int
}

// planPaths turns a request into paths and a session count: one path per
// source address or NIC (none given: one unbound path), and
// sessions-per-slice sessions for each member the volume spans, capped by
// max-sessions. Without the management API the members are unknown, so it
// assumes two, the common case in a PS-Series group.
//
// It is the single place to switch to NIC enumeration (discovery.Plan).
func planPaths(r ConnectRequest) (sessionPlan, error) {
	include, err := parsePrefixes(r.IncludeSubnets)
	if err != nil {
		return sessionPlan{}, err
	}
	exclude, err := parsePrefixes(r.ExcludeSubnets)
	if err != nil {
		return sessionPlan{}, err
	}
	var plan sessionPlan
	for _, s := range r.Sources {
		addr, err := netip.ParseAddr(s)
		if err != nil {
			return sessionPlan{}, fmt.Errorf("source address %q: %v", s, err)
		}
		if (len(include) > 0 && !containedIn(addr, include)) || containedIn(addr, exclude) {
			continue
		}
		plan.Paths = append(plan.Paths, mpio.PathSpec{SourceAddr: addr.String()})
	}
	if len(r.Sources) > 0 && len(plan.Paths) == 0 {
		return sessionPlan{}, fmt.Errorf("the subnet filters leave none of the source addresses %v", r.Sources)
	}
	for _, nic := range r.NICs {
		plan.Paths = append(plan.Paths, mpio.PathSpec{Device: nic})
	}

	perSlice, maxSessions := r.SessionsPerSlice, r.MaxSessions
	if perSlice == 0 {
		perSlice = DefaultSessionsPerSlice
	}
	if maxSessions == 0 {
		maxSessions = DefaultMaxSessions
	}
	const assumedMembers = 2
	plan.Sessions = min(maxSessions, perSlice*assumedMembers)
	return plan, nil
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

func containedIn(a netip.Addr, ps []netip.Prefix) bool {
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

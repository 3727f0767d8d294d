package hosttune

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/hitkit/hitkit/discovery"
)

// NICsOnSubnets names the NICs with an address on one of the subnets.
func NICsOnSubnets(nics []discovery.NIC, subnets []netip.Prefix) []string {
	var out []string
	for _, n := range nics {
		if slices.ContainsFunc(n.Addrs, func(a netip.Prefix) bool {
			return slices.ContainsFunc(subnets, func(s netip.Prefix) bool { return s.Contains(a.Addr()) })
		}) {
			out = append(out, n.Name)
		}
	}
	return out
}

// NICsWithAddrs names the NICs that own one of the addresses (the local
// addresses of connected paths), in the NICs' order. A NIC owns its own
// addresses; loopback owns its whole prefix (127.0.0.2 is local though only
// 127.0.0.1/8 is configured). Other NICs' prefixes do not count: with
// several NICs on one subnet, each prefix holds the others' addresses.
func NICsWithAddrs(nics []discovery.NIC, addrs []netip.Addr) []string {
	var out []string
	for _, n := range nics {
		owns := func(a netip.Prefix) bool {
			if n.Loopback {
				return slices.ContainsFunc(addrs, a.Contains)
			}
			return slices.Contains(addrs, a.Addr())
		}
		if slices.ContainsFunc(n.Addrs, owns) {
			out = append(out, n.Name)
		}
	}
	return out
}

// Read takes the readings of the named NICs (which must be among nics,
// from discovery.Interfaces) and of the host-wide settings, through the
// kernel settings under sys.
func Read(sys Sysctls, nics []discovery.NIC, names []string) (Readings, error) {
	r := Readings{Sysctl: map[string]string{}}
	et, err := openEthtool()
	if err != nil {
		return r, err
	}
	defer et.Close()
	for _, name := range names {
		i := slices.IndexFunc(nics, func(n discovery.NIC) bool { return n.Name == name })
		if i < 0 {
			return r, fmt.Errorf("no NIC named %q", name)
		}
		r.NICs = append(r.NICs, readNIC(et, nics[i]))
	}
	keys := slices.Clone(bufferKeys)
	for _, rule := range confRules {
		keys = append(keys, ConfKey("all", rule.name))
		for _, n := range r.NICs {
			keys = append(keys, ConfKey(n.Name, rule.name))
		}
	}
	for _, k := range keys {
		if v, err := sys.Read(k); err == nil {
			r.Sysctl[k] = v
		}
	}
	return r, nil
}

func readNIC(et *ethtool, n discovery.NIC) NICReading {
	out := NICReading{Name: n.Name, MTU: n.MTU, DefaultRoute: n.DefaultRoute, Gateway: n.DefaultGateway}
	if p, err := et.Pause(n.Name); err == nil {
		out.Pause = &p
	} else {
		out.PauseErr = err.Error()
	}
	if g, err := et.GRO(n.Name); err == nil {
		out.GRO = &g
	} else {
		out.GROErr = err.Error()
	}
	return out
}

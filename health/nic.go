package health

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"

	"github.com/hitkit/hitkit/discovery"
)

// checkNICs looks at the NICs that carry the volumes' paths: each must
// have its carrier, and they should agree on MTU and speed. A jumbo-frame
// NIC beside a 1500-byte one is the classic: small I/O works, large
// frames are dropped somewhere, and sessions stall under load.
func checkNICs(r *Report, list func() ([]discovery.NIC, error)) {
	nics, err := list()
	if err != nil {
		r.add(Unknown, CheckNIC, "nics", fmt.Sprintf("cannot list the NICs: %v", err))
		return
	}
	carrying := map[string]*NICReport{}
	for _, v := range r.Volumes {
		for _, p := range v.Paths {
			n := nicOf(nics, p.NIC, p.Source)
			if n == nil {
				if p.NIC != "" || p.Source != "" {
					r.add(Warning, CheckNIC, fmt.Sprintf("%s path %d", v.Name, p.ID),
						fmt.Sprintf("no NIC has %s any more: the path cannot log in", strings.Trim(p.NIC+" "+p.Source, " ")))
				}
				continue
			}
			if carrying[n.Name] == nil {
				carrying[n.Name] = &NICReport{Name: n.Name, Up: n.Up, MTU: n.MTU, SpeedMbs: n.SpeedMbs}
			}
			carrying[n.Name].Paths++
		}
	}
	names := make([]string, 0, len(carrying))
	for name := range carrying {
		names = append(names, name)
	}
	sort.Strings(names)
	mtus, speeds := map[int][]string{}, map[int][]string{}
	for _, name := range names {
		n := carrying[name]
		r.NICs = append(r.NICs, *n)
		if !n.Up {
			r.add(Warning, CheckNIC, "nic "+name, fmt.Sprintf("no carrier: its %d path(s) are down until the link returns", n.Paths))
		} else {
			r.add(OK, CheckNIC, "nic "+name, fmt.Sprintf("carrier up, MTU %d, speed %s, %d path(s)", n.MTU, speed(n.SpeedMbs), n.Paths))
		}
		mtus[n.MTU] = append(mtus[n.MTU], name)
		if n.SpeedMbs > 0 {
			speeds[n.SpeedMbs] = append(speeds[n.SpeedMbs], name)
		}
	}
	if len(mtus) > 1 {
		r.add(Warning, CheckNIC, "nics", "MTU differs between the NICs carrying paths ("+describe(mtus, "")+
			"): set the same MTU on every iSCSI NIC, switch port and array port (hitkit tune checks the path)")
	}
	if len(speeds) > 1 {
		r.add(Warning, CheckNIC, "nics", "link speed differs between the NICs carrying paths ("+describe(speeds, " Mb/s")+
			"): the slower links hold back the policy's balance; check for a port that negotiated down")
	}
}

// nicOf finds the NIC a path leaves through: by name, or by its source
// address.
func nicOf(nics []discovery.NIC, name, source string) *discovery.NIC {
	src, _ := netip.ParseAddr(source)
	for i, n := range nics {
		if name != "" {
			if n.Name == name {
				return &nics[i]
			}
			continue
		}
		for _, a := range n.Addrs {
			if src.IsValid() && a.Addr() == src {
				return &nics[i]
			}
		}
	}
	// All of 127/8 is local: 127.0.0.2 can be bound though only
	// 127.0.0.1/8 is on lo.
	for i, n := range nics {
		for _, a := range n.Addrs {
			if name == "" && n.Loopback && src.IsValid() && a.Contains(src) {
				return &nics[i]
			}
		}
	}
	return nil
}

func speed(mbs int) string {
	if mbs == 0 {
		return "unknown"
	}
	return fmt.Sprintf("%d Mb/s", mbs)
}

// describe lists values and the NICs that have them: "9000: eth1; 1500: eth2".
func describe(by map[int][]string, unit string) string {
	var keys []int
	for k := range by {
		keys = append(keys, k)
	}
	sort.Ints(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%d%s: %s", k, unit, strings.Join(by[k], ", ")))
	}
	return strings.Join(parts, "; ")
}

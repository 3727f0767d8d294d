package mpio

import (
	"fmt"
	"net"
	"slices"
)

// FailNIC fails at once every path that leaves through nic: those bound to
// it by name, and those whose source address is one of its addresses. It
// is the answer to a carrier loss (discovery.WatchCarrier): waiting for
// the NOP-Out check to notice would stall I/O for over a second. Their
// connections are dropped too, so that commands in flight on them come
// back and go to the other paths now; the paths' loops then log them in
// again with the usual backoff, which succeeds once the NIC is back.
func (d *Device) FailNIC(nic string, reason string) {
	ifc, _ := net.InterfaceByName(nic) // nil if the NIC was deleted
	addrs := interfaceIPs(ifc)
	err := fmt.Errorf("NIC %s: %s", nic, reason)
	for _, p := range d.paths {
		if p.spec.Device != nic && !slices.ContainsFunc(addrs, func(ip net.IP) bool { return ip.String() == p.spec.SourceAddr }) {
			continue
		}
		s := p.sess.Load()
		if s == nil {
			continue
		}
		if p.fail(s, err) {
			// Closing the session would first wait for its commands,
			// which cannot finish over a dead NIC; dropping the
			// connection hands them back to Execute for another path.
			s.Abort(err)
		}
	}
}

func interfaceIPs(ifc *net.Interface) []net.IP {
	if ifc == nil {
		return nil
	}
	addrs, _ := ifc.Addrs()
	var ips []net.IP
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			ips = append(ips, n.IP)
		}
	}
	return ips
}

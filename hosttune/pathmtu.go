package hosttune

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// smallProbe is an IP packet size every IPv4 path carries (RFC 791's 576).
const smallProbe = 576

// ReadPath reads the route to the portal (the group IP) and, when probe is
// set, sends don't-fragment ICMP echoes to it and to nothing else: at most
// three sizes, each tried at most twice for at most timeout.
func ReadPath(portal netip.Addr, probe bool, timeout time.Duration) (*PathReading, error) {
	routes, err := netlink.RouteGet(net.IP(portal.AsSlice()))
	if err != nil || len(routes) == 0 {
		return nil, fmt.Errorf("no route to the portal %s: %v", portal, err)
	}
	rt := routes[0]
	link, err := netlink.LinkByIndex(rt.LinkIndex)
	if err != nil {
		return nil, fmt.Errorf("the NIC of the route to %s: %w", portal, err)
	}
	p := &PathReading{Portal: portal, NIC: link.Attrs().Name, NICMTU: link.Attrs().MTU, RouteMTU: rt.MTU}
	if !probe {
		return p, nil
	}
	if link.Attrs().Flags&net.FlagLoopback != 0 {
		p.ProbeErr = "the portal is a local address"
		return p, nil
	}
	mtu := p.NICMTU
	if p.RouteMTU > 0 && p.RouteMTU < mtu {
		mtu = p.RouteMTU
	}
	// The sizes: a small one (is the portal answering at all?), Ethernet's
	// 1500 below jumbo frames (the usual mismatch), and the full MTU.
	sizes := []int{smallProbe}
	if mtu > 1500 {
		sizes = append(sizes, 1500)
	}
	if mtu > smallProbe {
		sizes = append(sizes, mtu)
	}
	for i, size := range sizes {
		ok, err := echoDF(portal, size, uint16(i+1), timeout)
		if err != nil {
			p.ProbeErr = err.Error()
			p.Probes = nil
			return p, nil
		}
		p.Probes = append(p.Probes, Probe{Size: size, Answered: ok})
	}
	return p, nil
}

// echoDF sends an ICMP echo request of size bytes (IP header included)
// with don't-fragment set, and says whether the portal answered it. It
// needs a raw socket (root, or CAP_NET_RAW).
func echoDF(portal netip.Addr, size int, seq uint16, timeout time.Duration) (bool, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_ICMP)
	if err != nil {
		return false, fmt.Errorf("raw ICMP socket: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_MTU_DISCOVER, unix.IP_PMTUDISC_PROBE); err != nil {
		return false, fmt.Errorf("set don't-fragment: %w", err)
	}
	to := &unix.SockaddrInet4{Addr: portal.As4()}
	id := uint16(os.Getpid())
	msg := echoRequest(id, seq, size-20)
	for try := 0; try < 2; try++ {
		if err := unix.Sendto(fd, msg, 0, to); err != nil {
			if errors.Is(err, unix.EMSGSIZE) {
				return false, nil // larger than the local MTU
			}
			return false, fmt.Errorf("echo to %s: %w", portal, err)
		}
		if ok, err := awaitEchoReply(fd, portal, id, seq, time.Now().Add(timeout)); ok || err != nil {
			return ok, err
		}
	}
	return false, nil
}

// echoRequest builds an ICMP echo request of n bytes.
func echoRequest(id, seq uint16, n int) []byte {
	b := make([]byte, n)
	b[0] = 8 // echo request
	binary.BigEndian.PutUint16(b[4:], id)
	binary.BigEndian.PutUint16(b[6:], seq)
	binary.BigEndian.PutUint16(b[2:], icmpChecksum(b))
	return b
}

func icmpChecksum(b []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// awaitEchoReply reads the raw socket (which sees every ICMP packet) until
// the portal's reply to (id, seq) comes or the deadline passes.
func awaitEchoReply(fd int, portal netip.Addr, id, seq uint16, deadline time.Time) (bool, error) {
	buf := make([]byte, 65536)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return false, nil
		}
		tv := unix.NsecToTimeval(left.Nanoseconds())
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			return false, err
		}
		n, from, err := unix.Recvfrom(fd, buf, 0)
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return false, err
		}
		sa, ok := from.(*unix.SockaddrInet4)
		if !ok || netip.AddrFrom4(sa.Addr) != portal || n < 20 {
			continue
		}
		hl := int(buf[0]&0x0f) * 4
		if n < hl+8 {
			continue
		}
		icmp := buf[hl:n]
		if icmp[0] == 0 && binary.BigEndian.Uint16(icmp[4:]) == id && binary.BigEndian.Uint16(icmp[6:]) == seq {
			return true, nil
		}
	}
}

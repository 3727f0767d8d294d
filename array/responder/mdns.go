package responder

import (
	"errors"
	"log"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/mdns"
	"github.com/hitkit/hitkit/setupapi"
	"github.com/miekg/dns"
	"github.com/sirupsen/logrus"
)

// PollInterval is how often the announcer re-reads the members' states:
// a member that gets initialised is no longer announced within it.
const PollInterval = 250 * time.Millisecond

// announcer answers mDNS/DNS-SD queries for the uninitialised members on
// one interface, with hashicorp/mdns's server. Its zone is rebuilt every
// PollInterval from the group's state; once no member is uninitialised it
// shuts the server down, and port 5353 is free again.
type announcer struct {
	r     *Responder
	iface string
	addr  netip.Addr
	zone  liveZone

	server *mdns.Server
	warned atomic.Bool // a member could not be announced; said once
	stop   chan struct{}
	done   chan struct{}
	once   sync.Once
}

// startAnnouncer checks the interface and starts answering on it.
func startAnnouncer(r *Responder, name string) (*announcer, error) {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return nil, err
	}
	switch {
	case ifi.Flags&net.FlagLoopback != 0:
		return nil, errors.New("a loopback interface has no multicast; name a veth or another multicast-capable interface")
	case ifi.Flags&net.FlagUp == 0:
		return nil, errors.New("the interface is down")
	case ifi.Flags&net.FlagMulticast == 0:
		return nil, errors.New("the interface cannot multicast")
	}
	addr, err := firstIPv4(ifi)
	if err != nil {
		return nil, err
	}
	a := &announcer{r: r, iface: name, addr: addr, stop: make(chan struct{}), done: make(chan struct{})}
	if a.refresh() == 0 {
		close(a.done)
		r.log.WithField("interface", name).Info("mDNS: no uninitialised member to announce")
		return a, nil
	}
	a.server, err = mdns.NewServer(&mdns.Config{Zone: &a.zone, Iface: ifi, Logger: log.New(debugWriter{r.log}, "", 0)})
	if err != nil {
		return nil, err
	}
	r.log.WithFields(logrus.Fields{"interface": name, "addr": addr.String(), "service": setupapi.MDNSService}).Info("mDNS: announcing the uninitialised members")
	go a.poll()
	return a, nil
}

func firstIPv4(ifi *net.Interface) (netip.Addr, error) {
	addrs, err := ifi.Addrs()
	if err != nil {
		return netip.Addr{}, err
	}
	for _, ad := range addrs {
		if n, ok := ad.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP.To4()); ok {
				return ip, nil
			}
		}
	}
	return netip.Addr{}, errors.New("the interface has no IPv4 address")
}

// poll keeps the zone current, and ends the announcement when nothing is
// left to announce or on close.
func (a *announcer) poll() {
	defer close(a.done)
	defer a.server.Shutdown()
	t := time.NewTicker(PollInterval)
	defer t.Stop()
	for {
		select {
		case <-a.stop:
			return
		case <-t.C:
		}
		if a.refresh() == 0 {
			a.r.log.WithField("interface", a.iface).Info("mDNS: no uninitialised member left; announcement stopped")
			return
		}
	}
}

// refresh rebuilds the zone and says how many members it announces.
func (a *announcer) refresh() int {
	var svcs []*mdns.MDNSService
	for _, m := range a.r.g.Config().Members {
		if m.Initialized {
			continue
		}
		svc, err := a.service(m.Number)
		if err != nil {
			if a.warned.CompareAndSwap(false, true) {
				a.r.log.WithError(err).WithField("member", m.Number).Warn("mDNS: member not announced")
			}
			continue
		}
		svcs = append(svcs, svc)
	}
	a.zone.services.Store(&svcs)
	return len(svcs)
}

func (a *announcer) service(number int) (*mdns.MDNSService, error) {
	ans, ok := a.r.answer(number, a.addr)
	if !ok {
		return nil, errors.New("no longer uninitialised")
	}
	txt, err := ans.TXT()
	if err != nil {
		return nil, err
	}
	return mdns.NewMDNSService(ans.Serial, setupapi.MDNSService, "local.", ans.Serial+".local.",
		endpointPort(ans.SetupEndpoint), []net.IP{a.addr.AsSlice()}, txt)
}

// endpointPort is the port of an https:// endpoint, setupapi.Port when it
// names none; it goes in the SRV record.
func endpointPort(endpoint string) int {
	u, err := url.Parse(endpoint)
	if err != nil {
		return setupapi.Port
	}
	if p, err := strconv.Atoi(u.Port()); err == nil && p > 0 && p < 65536 {
		return p
	}
	return setupapi.Port
}

func (a *announcer) close() {
	a.once.Do(func() { close(a.stop) })
	<-a.done
}

// liveZone is the members announced right now.
type liveZone struct {
	services atomic.Pointer[[]*mdns.MDNSService]
}

// Records answers from every announced member. The service enumeration
// (_services._dns-sd._udp) is the same for all of them, so only the
// first answers it.
func (z *liveZone) Records(q dns.Question) []dns.RR {
	p := z.services.Load()
	if p == nil {
		return nil
	}
	var out []dns.RR
	for i, s := range *p {
		if i > 0 && strings.HasPrefix(q.Name, "_services._dns-sd._udp.") {
			break
		}
		out = append(out, s.Records(q)...)
	}
	return out
}

// debugWriter turns hashicorp/mdns's log lines (one per malformed
// packet, among others) into debug logs.
type debugWriter struct{ log logrus.FieldLogger }

func (w debugWriter) Write(p []byte) (int, error) {
	w.log.Debug(strings.TrimSpace(string(p)))
	return len(p), nil
}

// Package responder is the discovery responder of the lab group's
// uninitialised members: an array.Service that, for each member waiting
// for the setup wizard, answers a unicast UDP probe on that member's first
// port address (BASE+10*m+1, port 3261) with what the member is.
//
// A probe is the datagram {"probe":"hitkit"}; the answer is one JSON
// datagram (see setupapi.Announcement). Anything else is ignored.
//
// When told an interface (MDNSInterface), it also announces those members
// over mDNS/DNS-SD there (see mdns.go). Each member stops answering, and
// stops being announced, once it is initialised.
package responder

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"

	"github.com/sirupsen/logrus"

	"github.com/hitkit/hitkit/array"
	"github.com/hitkit/hitkit/setupapi"
)

// Model and Firmware are what lab members report.
const (
	Model    = "PS-Lab"
	Firmware = "lab-1.0"
)

// maxDatagram bounds what is read; larger probes are truncated and ignored.
const maxDatagram = 512

// Responder is the service. The zero value is not usable; call New.
type Responder struct {
	// Logger overrides the group's logger.
	Logger logrus.FieldLogger
	// MDNSInterface, when set, is the interface the members are announced
	// on over mDNS, with its first IPv4 address. Empty: no mDNS (a host's
	// real interfaces are never used unless named here).
	MDNSInterface string
	// SetupInfo gives member m's setup endpoint and the SHA-256
	// fingerprint of its certificate (the setup service provides it). It
	// is asked on every answer. Nil: a placeholder endpoint on setupapi.Port
	// and no fingerprint.
	SetupInfo func(member int) (endpoint, fingerprint string)

	g     *array.Group
	log   logrus.FieldLogger
	mu    sync.Mutex
	conns []*net.UDPConn
	ann   *announcer
	wg    sync.WaitGroup
}

// New returns a responder.
func New() *Responder { return &Responder{} }

var _ array.Service = (*Responder)(nil)

// Addr is the address member m answers probes on.
func Addr(base netip.Addr, m int) (netip.AddrPort, error) {
	ap, err := netip.ParseAddrPort(array.PortAddr(base, m, 1))
	if err != nil {
		return netip.AddrPort{}, err
	}
	return netip.AddrPortFrom(ap.Addr(), setupapi.ProbePort), nil
}

// MACs derives n locally administered unicast MAC addresses from a serial.
func MACs(serial string, n int) []string {
	out := make([]string, 0, n)
	for i := range n {
		h := sha256.Sum256([]byte(fmt.Sprintf("%s/%d", serial, i)))
		h[0] = h[0]&^0x01 | 0x02 // unicast, locally administered
		out = append(out, net.HardwareAddr(h[:6]).String())
	}
	return out
}

// Start listens for each uninitialised member of g, and starts the mDNS
// announcer when MDNSInterface is set.
func (r *Responder) Start(g *array.Group) error {
	r.g = g
	r.log = r.Logger
	if r.log == nil {
		r.log = g.Logger()
	}
	r.log = r.log.WithField("service", "responder")
	cfg := g.Config()
	base := cfg.BaseIP
	for _, m := range cfg.Members {
		if m.Initialized {
			continue
		}
		addr, err := Addr(base, m.Number)
		if err != nil {
			r.Close()
			return fmt.Errorf("responder: member %d: %w", m.Number, err)
		}
		conn, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(addr))
		if err != nil {
			r.Close()
			return fmt.Errorf("responder: member %d: %w", m.Number, err)
		}
		r.mu.Lock()
		r.conns = append(r.conns, conn)
		r.mu.Unlock()
		r.log.WithFields(logrus.Fields{"member": m.Number, "serial": m.Serial, "addr": addr.String()}).Info("discovery responder listening")
		r.wg.Add(1)
		go r.serve(conn, m.Number, addr.Addr())
	}
	if r.MDNSInterface != "" {
		ann, err := startAnnouncer(r, r.MDNSInterface)
		if err != nil {
			r.Close()
			return fmt.Errorf("responder: mDNS on %q: %w", r.MDNSInterface, err)
		}
		r.mu.Lock()
		r.ann = ann
		r.mu.Unlock()
	}
	return nil
}

// answer is what member number says of itself when reached at addr, or
// false once it is initialised (or gone). It reads the group's
// configuration, not Status: Status also waits for every volume's lock,
// which a rebalancing join holds.
func (r *Responder) answer(number int, addr netip.Addr) (setupapi.Announcement, bool) {
	cfg := r.g.Config()
	if number < 1 || number > len(cfg.Members) || cfg.Members[number-1].Initialized {
		return setupapi.Announcement{}, false
	}
	mc := cfg.Members[number-1]
	a := setupapi.Announcement{
		Serial: mc.Serial, Model: Model, Firmware: Firmware,
		MACs: MACs(mc.Serial, cfg.SetupPortsPerMember()), State: string(array.MemberUninitialized),
	}
	a.SetupEndpoint, a.Fingerprint = r.setupInfo(number, addr)
	return a, true
}

func (r *Responder) setupInfo(number int, addr netip.Addr) (endpoint, fingerprint string) {
	if r.SetupInfo != nil {
		return r.SetupInfo(number)
	}
	return fmt.Sprintf("https://%s", netip.AddrPortFrom(addr, setupapi.Port)), ""
}

func (r *Responder) serve(conn *net.UDPConn, number int, addr netip.Addr) {
	defer r.wg.Done()
	buf := make([]byte, maxDatagram+1)
	for {
		n, from, err := conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			r.log.WithError(err).Debug("responder read")
			continue
		}
		if n > maxDatagram || !isProbe(buf[:n]) {
			r.log.WithField("from", from.String()).Debug("responder: ignored a datagram that is not a probe")
			continue
		}
		a, ok := r.answer(number, addr)
		if !ok {
			r.log.WithField("member", number).Debug("responder: the member is initialised; probe not answered")
			continue
		}
		b, err := json.Marshal(a)
		if err != nil {
			continue
		}
		if _, err := conn.WriteToUDPAddrPort(b, from); err != nil {
			r.log.WithError(err).Debug("responder write")
		}
	}
}

func isProbe(b []byte) bool {
	var p setupapi.Probe
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&p); err != nil {
		return false
	}
	return p.Probe == setupapi.ProbeMagic
}

// Close stops listening and announcing.
func (r *Responder) Close() error {
	r.mu.Lock()
	conns, ann := r.conns, r.ann
	r.conns, r.ann = nil, nil
	r.mu.Unlock()
	if ann != nil {
		ann.close()
	}
	for _, c := range conns {
		c.Close()
	}
	r.wg.Wait()
	return nil
}

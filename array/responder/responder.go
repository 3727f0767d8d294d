// Package responder is the discovery responder of the lab group's
// uninitialised members: an array.Service that, for each member waiting
// for the setup wizard, answers a unicast UDP probe on that member's first
// port address (BASE+10*m+1, port 3261) with what the member is.
//
// A probe is the datagram {"probe":"hitkit"}; the answer is one JSON
// datagram (see Answer). Anything else is ignored.
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
)

// Port is the UDP port the responder listens on.
const Port = 3261

// Model and Firmware are what lab members report.
const (
	Model    = "PS-Lab"
	Firmware = "lab-1.0"
)

// SetupPort is the placeholder port of a member's setup endpoint.
const SetupPort = 8444

// maxDatagram bounds what is read; larger probes are truncated and ignored.
const maxDatagram = 512

// Probe is the probe datagram.
type Probe struct {
	Probe string `json:"probe"`
}

// ProbeMagic is the value of a probe's "probe" field.
const ProbeMagic = "hitkit"

// Answer is the answer to a probe.
type Answer struct {
	Serial        string   `json:"serial"`
	Model         string   `json:"model"`
	Firmware      string   `json:"firmware"`
	MACs          []string `json:"macs"`
	State         string   `json:"state"`
	SetupEndpoint string   `json:"setup_endpoint"`
	Fingerprint   string   `json:"fingerprint"`
}

// Responder is the service. The zero value is not usable; call New.
type Responder struct {
	// Logger overrides the group's logger.
	Logger logrus.FieldLogger

	log   logrus.FieldLogger
	mu    sync.Mutex
	conns []*net.UDPConn
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
	return netip.AddrPortFrom(ap.Addr(), Port), nil
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

// Start listens for each uninitialised member of g.
func (r *Responder) Start(g *array.Group) error {
	r.log = r.Logger
	if r.log == nil {
		r.log = g.Logger()
	}
	r.log = r.log.WithField("service", "responder")
	base := g.Config().BaseIP
	for _, m := range g.Status().Members {
		if m.State != array.MemberUninitialized {
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
		n := len(m.Ports)
		if n < 1 {
			n = 1
		}
		ans, err := json.Marshal(Answer{
			Serial: m.Serial, Model: Model, Firmware: Firmware,
			MACs: MACs(m.Serial, n), State: string(array.MemberUninitialized),
			SetupEndpoint: fmt.Sprintf("https://%s", netip.AddrPortFrom(addr.Addr(), SetupPort)),
		})
		if err != nil {
			conn.Close()
			r.Close()
			return err
		}
		r.mu.Lock()
		r.conns = append(r.conns, conn)
		r.mu.Unlock()
		r.log.WithFields(logrus.Fields{"member": m.Number, "serial": m.Serial, "addr": addr.String()}).Info("discovery responder listening")
		r.wg.Add(1)
		go r.serve(conn, ans)
	}
	return nil
}

func (r *Responder) serve(conn *net.UDPConn, ans []byte) {
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
		if _, err := conn.WriteToUDPAddrPort(ans, from); err != nil {
			r.log.WithError(err).Debug("responder write")
		}
	}
}

func isProbe(b []byte) bool {
	var p Probe
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&p); err != nil {
		return false
	}
	return p.Probe == ProbeMagic
}

// Close stops listening.
func (r *Responder) Close() error {
	r.mu.Lock()
	conns := r.conns
	r.conns = nil
	r.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
	r.wg.Wait()
	return nil
}

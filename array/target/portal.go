package target

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
)

// PortalInfo names a portal: the address it listens on and its target
// portal group tag.
type PortalInfo struct {
	Addr string // host:port
	TPGT uint16
}

// String is the TargetAddress form, "host:port,tpgt".
func (p PortalInfo) String() string { return p.Addr + "," + strconv.Itoa(int(p.TPGT)) }

// portal is one listening address. It can go down and come back (fault
// injection) without losing its identity.
type portal struct {
	srv  *Server
	info PortalInfo
	log  logrus.FieldLogger

	mu    sync.Mutex
	ln    net.Listener // nil while the port is down
	conns map[*conn]struct{}
	// gate is closed while traffic flows. Blackhole swaps in an open
	// channel, on which readers block until traffic flows again.
	gate  chan struct{}
	delay time.Duration
}

var errPortalRemoved = errors.New("portal removed")

// AddPortal starts listening on addr ("127.0.0.1:0" picks a port) with the
// given target portal group tag. It returns the portal's actual address,
// by which the other portal methods know it.
func (s *Server) AddPortal(addr string, tpgt uint16) (PortalInfo, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return PortalInfo{}, fmt.Errorf("target: portal %s: %w", addr, err)
	}
	info := PortalInfo{Addr: ln.Addr().String(), TPGT: tpgt}
	p := &portal{
		srv: s, info: info, conns: map[*conn]struct{}{}, gate: closedGate(),
		log: s.log.WithField("portal", info.String()),
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		ln.Close()
		return PortalInfo{}, ErrServerClosed
	}
	if _, dup := s.portals[info.Addr]; dup {
		ln.Close()
		return PortalInfo{}, fmt.Errorf("target: portal %s already exists", info.Addr)
	}
	s.portals[info.Addr] = p
	p.listen(ln)
	p.log.Info("portal up")
	return info, nil
}

// RemovePortal stops listening on addr and drops its connections.
func (s *Server) RemovePortal(addr string) error {
	s.mu.Lock()
	p, ok := s.portals[addr]
	delete(s.portals, addr)
	s.mu.Unlock()
	if !ok {
		return fmt.Errorf("target: no portal %s", addr)
	}
	p.stop(errPortalRemoved)
	p.log.Info("portal removed")
	return nil
}

// Portals lists the portals, whether or not they are up.
func (s *Server) Portals() []PortalInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]PortalInfo, 0, len(s.portals))
	for _, p := range s.portals {
		out = append(out, p.info)
	}
	return out
}

func (s *Server) portal(addr string) (*portal, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.portals[addr]
	if !ok {
		return nil, fmt.Errorf("target: no portal %s", addr)
	}
	return p, nil
}

// listen starts the accept loop on ln. p.mu or s.mu is held by the caller
// when p is shared.
func (p *portal) listen(ln net.Listener) {
	p.ln = ln
	p.srv.wg.Add(1)
	go p.accept(ln)
}

func (p *portal) accept(ln net.Listener) {
	defer p.srv.wg.Done()
	for {
		nc, err := ln.Accept()
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			return // the listener was closed
		}
		c := newConn(p, nc)
		if !p.add(c, ln) {
			nc.Close()
			continue
		}
		p.srv.wg.Add(1)
		go c.serve()
	}
}

// add registers c, unless the listener it came from has been closed since.
func (p *portal) add(c *conn, ln net.Listener) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != ln {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *portal) remove(c *conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}

// stop closes the listener and every connection.
func (p *portal) stop(reason error) {
	p.mu.Lock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	p.mu.Unlock()
	p.dropConns(reason)
}

// dropConns closes every connection on the portal.
func (p *portal) dropConns(reason error) {
	p.mu.Lock()
	conns := make([]*conn, 0, len(p.conns))
	for c := range p.conns {
		conns = append(conns, c)
	}
	p.mu.Unlock()
	for _, c := range conns {
		c.close(reason)
	}
}

func closedGate() chan struct{} {
	ch := make(chan struct{})
	close(ch)
	return ch
}

// passable returns a channel that is closed while traffic flows.
func (p *portal) passable() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.gate
}

func (p *portal) blackholed() bool {
	select {
	case <-p.passable():
		return false
	default:
		return true
	}
}

func (p *portal) responseDelay() time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.delay
}

package target

import (
	"errors"
	"fmt"
	"net"
	"time"
)

// Fault injection, for multipath tests. Each fault acts on one portal, by
// the address AddPortal returned.

var (
	errPortalDown  = errors.New("portal dropped (fault injection)")
	errPortalReset = errors.New("portal reset (fault injection)")
)

// DropPortal takes a port down: it stops listening, so connects are
// refused, and drops every connection on it, until RestorePortal.
func (s *Server) DropPortal(addr string) error {
	p, err := s.portal(addr)
	if err != nil {
		return err
	}
	p.stop(errPortalDown)
	p.log.Warn("portal dropped (fault injection)")
	return nil
}

// RestorePortal brings a dropped portal back on the same address.
func (s *Server) RestorePortal(addr string) error {
	p, err := s.portal(addr)
	if err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		return nil
	}
	ln, err := net.Listen("tcp", p.info.Addr)
	if err != nil {
		return fmt.Errorf("target: restoring portal %s: %w", addr, err)
	}
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		ln.Close()
		return ErrServerClosed
	}
	p.listen(ln)
	p.log.Info("portal restored")
	return nil
}

// ResetPortal drops every connection on a portal but keeps listening, as
// a control module failover does: initiators can log in again at once.
func (s *Server) ResetPortal(addr string) error {
	p, err := s.portal(addr)
	if err != nil {
		return err
	}
	p.dropConns(errPortalReset)
	p.log.Warn("portal reset (fault injection)")
	return nil
}

// Blackhole makes a portal silently dead while on: connections stay open
// but nothing is read or answered, and new connections hang before login.
// Turned off, traffic flows again.
func (s *Server) Blackhole(addr string, on bool) error {
	p, err := s.portal(addr)
	if err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.gate: // flowing
		if on {
			p.gate = make(chan struct{})
		}
	default:
		if !on {
			close(p.gate)
		}
	}
	p.log.WithField("on", on).Warn("portal blackhole (fault injection)")
	return nil
}

// Delay adds latency d to every response sent through a portal; zero
// removes it.
func (s *Server) Delay(addr string, d time.Duration) error {
	p, err := s.portal(addr)
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.delay = d
	p.mu.Unlock()
	p.log.WithField("delay", d).Warn("portal delay (fault injection)")
	return nil
}

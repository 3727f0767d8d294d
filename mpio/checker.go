package mpio

import (
	"time"
)

// run is a path's life: watch it while it is in service, log it in again
// when it fails, until the device closes.
//
// A path in service is checked in two ways. Its session pings the target
// whenever the line has been quiet for CheckInterval and drops the
// connection when an answer takes longer than CheckTimeout (initiator's
// NOP-Out keepalive), which catches a silent blackhole even on an idle
// path; and this loop looks at the session every CheckInterval, so that a
// session that died while no command was using it is noticed and replaced.
func (p *path) run() {
	b := newBackoff(p.dev.cfg.BackoffMin, p.dev.cfg.BackoffMax)
	for p.dev.life.Err() == nil {
		if p.loadState() == stateFailed {
			p.reinstate(b)
		} else {
			p.watch()
		}
	}
}

// watch waits for something to happen to a path in service: a failure, a
// logout request, or the next check.
func (p *path) watch() {
	t := time.NewTimer(p.dev.cfg.CheckInterval)
	defer t.Stop()
	select {
	case <-p.dev.life.Done():
	case <-p.kick:
	case within := <-p.logout:
		p.renew(within)
	case <-t.C:
		p.check()
	}
}

// check fails the path if its session has failed by itself.
func (p *path) check() {
	s := p.sess.Load()
	if s == nil {
		return
	}
	if err := s.Err(); err != nil {
		p.fail(s, err)
	}
}

// sampleRates updates every path's IOPS once a second.
func (d *Device) sampleRates() {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-d.life.Done():
			return
		case now := <-t.C:
			for _, p := range d.paths {
				p.sampleRate(now)
				p.latency.sample()
			}
		}
	}
}

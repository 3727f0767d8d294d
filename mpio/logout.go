package mpio

import (
	"context"
	"fmt"
	"time"
)

// renew answers a target's logout request (AsyncEvent 1) without failing
// any I/O: the path stops taking new commands, its commands finish, and its
// session logs out and in again through the portal, which may put it on
// another member port. Within is the deadline the target gave.
func (p *path) renew(within time.Duration) {
	s := p.sess.Load()
	if s == nil || !p.state.CompareAndSwap(int32(stateUp), int32(stateDraining)) {
		return
	}
	log := p.dev.log.WithFields(p.fields())
	log.WithField("within", within).Info("target asked for a logout: draining the path")
	ctx, cancel := context.WithTimeout(p.dev.life, max(within, defaultRenewAtLeast))
	defer cancel()
	p.drainCommands(ctx)
	if err := s.Renew(ctx); err != nil {
		p.fail(s, fmt.Errorf("log in again after the target's logout request: %w", err))
		return
	}
	p.mu.Lock()
	p.remote = s.Portal()
	p.mu.Unlock()
	if p.state.CompareAndSwap(int32(stateDraining), int32(stateUp)) {
		p.dev.pathsChanged()
		p.dev.log.WithFields(p.fields()).Info("path logged in again after the logout request")
	}
}

// drainCommands waits until the path has no command outstanding, for at
// most half the time left: Renew needs the rest to log out and in, and
// re-sends whatever is still in flight then.
func (p *path) drainCommands(ctx context.Context) {
	deadline, ok := ctx.Deadline()
	if ok {
		deadline = time.Now().Add(time.Until(deadline) / 2)
	}
	for p.outstanding.Load() > 0 && (!ok || time.Now().Before(deadline)) {
		if !sleep(ctx, defaultDrainPollEvery) {
			return
		}
	}
}

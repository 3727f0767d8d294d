package mpio

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hitkit/hitkit/initiator"
	"github.com/sirupsen/logrus"
)

// State is where a path is in its life, as Status reports it.
type State string

const (
	// StateActive paths carry commands.
	StateActive State = "active"
	// StateStandby paths are healthy but unused: the failover policy keeps
	// them for when the active path fails.
	StateStandby State = "standby"
	// StateDraining paths finish their commands and take no new ones while
	// they log out and in again, because the target asked them to.
	StateDraining State = "draining"
	// StateFailed paths lost their session; they wait to log in again.
	StateFailed State = "failed"
	// StateReinstating paths are logging in again.
	StateReinstating State = "reinstating"
)

// pathState is a path's state as the hot path reads it, without a lock.
// Active and standby are both "up": which one a path is depends on the
// policy, and is worked out only for Status.
type pathState int32

const (
	stateUp pathState = iota
	stateDraining
	stateFailed
	stateReinstating
)

// path is one session to the logical unit, from one local address or NIC.
// A path keeps its identity while its session is replaced.
type path struct {
	id   int
	spec PathSpec
	dev  *Device

	state       atomic.Int32 // a pathState
	member      atomic.Int32 // the member of the session's portal, by the page map; 0 if unknown
	sess        atomic.Pointer[initiator.Session]
	outstanding atomic.Int64
	completed   atomic.Uint64
	errors      atomic.Uint64
	reinstated  atomic.Uint64 // failed, then logged in again: a flapping path counts up
	latency     latencyStats

	kick   chan struct{}      // wakes the path's loop after a failure
	logout chan time.Duration // a logout request and its deadline

	mu          sync.Mutex // guards what follows, which only Status and logs read
	remote      string
	lastReason  string
	lastFailure time.Time
	iops        float64
	sampleCount uint64
	sampleTime  time.Time
}

func newPath(d *Device, id int, spec PathSpec) *path {
	p := &path{
		id: id, spec: spec, dev: d,
		kick:   make(chan struct{}, 1),
		logout: make(chan time.Duration, 1),
	}
	p.state.Store(int32(stateFailed))
	return p
}

func (p *path) loadState() pathState { return pathState(p.state.Load()) }

// usable says whether the selector may send a command to the path now.
func (p *path) usable(allowDraining bool) bool {
	st := p.loadState()
	return (st == stateUp || allowDraining && st == stateDraining) && p.sess.Load() != nil
}

// execute runs one command on session s of this path, bounded by timeout,
// and keeps the counters the policies and Status read.
func (p *path) execute(ctx context.Context, s *initiator.Session, cmd initiator.Command, timeout time.Duration) (initiator.Result, error) {
	p.outstanding.Add(1)
	defer p.outstanding.Add(-1)
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	res, err := s.Execute(cctx, cmd)
	if err == nil {
		p.latency.add(time.Since(start))
		p.completed.Add(1)
		return res, nil
	}
	if ctx.Err() == nil && cctx.Err() != nil {
		err = fmt.Errorf("no answer to a command within %v: %w", timeout, err)
	}
	return res, err
}

// install makes s the path's session and puts the path in service.
func (p *path) install(s *initiator.Session) {
	p.mu.Lock()
	p.remote = s.Portal()
	p.mu.Unlock()
	p.member.Store(int32(p.dev.sel.pages.memberOf(s.Portal())))
	p.sess.Store(s)
	p.state.Store(int32(stateUp))
	p.dev.pathsChanged()
}

// fail takes the path out of service because session s failed with err,
// and wakes the path's loop to log in again. A failure of a session the
// path has already replaced changes nothing. It reports whether the path
// changed state.
func (p *path) fail(s *initiator.Session, err error) bool {
	if p.sess.Load() != s {
		return false
	}
	for {
		st := p.loadState()
		if st == stateFailed || st == stateReinstating {
			return false
		}
		if p.state.CompareAndSwap(int32(st), int32(stateFailed)) {
			break
		}
	}
	p.errors.Add(1)
	p.noteFailure(err)
	p.dev.log.WithFields(p.fields()).WithError(err).Warn("path failed; its commands go to the other paths")
	select {
	case p.kick <- struct{}{}:
	default:
	}
	return true
}

// noteFailure records why the path failed, and says whether the reason
// differs from the last one, so that a path failing the same way on every
// retry is logged once.
func (p *path) noteFailure(err error) (changed bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	reason := err.Error()
	changed = reason != p.lastReason
	p.lastReason, p.lastFailure = reason, time.Now()
	return changed
}

func (p *path) fields() logrus.Fields {
	p.mu.Lock()
	defer p.mu.Unlock()
	return logrus.Fields{"path": p.id, "source": p.spec.String(), "portal": p.remote}
}

// onEvent receives the async events of the path's sessions.
func (p *path) onEvent(ev initiator.Event) {
	if ev.Kind != initiator.EventLogoutRequested || ev.Session != p.sess.Load() {
		return
	}
	select {
	case p.logout <- ev.Within:
	default: // a renewal is already pending
	}
}

// sampleRate updates the path's IOPS, a moving average over about two
// samples, so Status shows what the path does now rather than since Open.
func (p *path) sampleRate(now time.Time) {
	n := p.completed.Load()
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.sampleTime.IsZero() {
		if dt := now.Sub(p.sampleTime).Seconds(); dt > 0 {
			p.iops = 0.5*p.iops + 0.5*float64(n-p.sampleCount)/dt
		}
	}
	p.sampleCount, p.sampleTime = n, now
}

package mpio

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/hitkit/hitkit/initiator"
)

// reinstate replaces a failed path's session: it waits out the backoff,
// takes its turn among the paths, logs in at the portal (the group IP
// picks the member port) and checks that the new session reaches the same
// logical unit. Failures are logged when their reason changes, not on
// every attempt.
func (p *path) reinstate(b *backoff) {
	if old := p.sess.Swap(nil); old != nil {
		// A failed session closes at once; one that timed out drains
		// for a while, which this path need not wait for.
		p.dev.wg.Go(func() { old.Close() })
	}
	if !sleep(p.dev.life, b.next()) || p.dev.limit.wait(p.dev.life) != nil {
		return
	}
	p.state.Store(int32(stateReinstating))
	s, err := p.dialChecked()
	if err != nil {
		p.state.Store(int32(stateFailed))
		p.errors.Add(1)
		if p.noteFailure(err) {
			p.dev.log.WithFields(p.fields()).WithError(err).Warn("path reinstatement failed; retrying with backoff")
		} else {
			p.dev.log.WithFields(p.fields()).WithError(err).Debug("path reinstatement failed again")
		}
		return
	}
	attempts := b.attempts
	b.reset()
	p.reinstated.Add(1)
	p.install(s)
	p.dev.log.WithFields(p.fields()).WithField("attempts", attempts).Info("path reinstated")
}

// dialChecked logs the path in and refuses a session that reaches another
// logical unit than the device's.
func (p *path) dialChecked() (*initiator.Session, error) {
	ctx, cancel := context.WithTimeout(p.dev.life, p.dev.cfg.Session.LoginTimeout+p.dev.cfg.IOTimeout)
	defer cancel()
	s, wwid, err := p.dial(ctx)
	if err != nil {
		return nil, err
	}
	if wwid != p.dev.wwid {
		s.Close()
		return nil, fmt.Errorf("refused: the session reaches logical unit %s, not the device's %s", wwid, p.dev.wwid)
	}
	return s, nil
}

// dial logs one session in for the path and reads the logical unit's WWID
// through it. The TEST UNIT READY that opening the unit sends also clears
// the unit attention a new session starts with.
func (p *path) dial(ctx context.Context) (*initiator.Session, string, error) {
	cfg := p.dev.cfg.sessionConfig(p.spec, p.onEvent)
	cfg.Log = p.dev.log.WithField("path", p.id)
	s, err := initiator.Dial(ctx, cfg)
	if err != nil {
		return nil, "", fmt.Errorf("log in at %s from %s: %w", cfg.Portal, p.spec, err)
	}
	lu, err := initiator.OpenLogicalUnit(ctx, s, p.dev.cfg.LUN)
	if err == nil {
		var id initiator.Identity
		if id, err = lu.Identify(ctx); err == nil {
			return s, id.WWID, nil
		}
	}
	s.Close()
	return nil, "", fmt.Errorf("identify the logical unit through %s: %w", s.Portal(), err)
}

// backoff spaces a path's login attempts: from min, doubling up to max,
// each wait jittered by ±20 % so that paths that failed together do not
// retry together.
type backoff struct {
	min, max, cur time.Duration
	attempts      int
}

func newBackoff(min, max time.Duration) *backoff {
	return &backoff{min: min, max: max, cur: min}
}

func (b *backoff) next() time.Duration {
	d := b.cur
	b.cur = min(b.cur*2, b.max)
	b.attempts++
	return jitter(d)
}

func (b *backoff) reset() { b.cur, b.attempts = b.min, 0 }

func jitter(d time.Duration) time.Duration {
	return d + time.Duration((rand.Float64()*0.4-0.2)*float64(d))
}

// loginLimiter keeps the logins of all paths at least gap apart, so that
// when a whole group comes back its hosts do not all log in at once.
type loginLimiter struct {
	gap  time.Duration
	mu   sync.Mutex
	next time.Time
}

func newLoginLimiter(gap time.Duration) *loginLimiter { return &loginLimiter{gap: gap} }

// wait returns when it is this caller's turn, or when ctx ends.
func (l *loginLimiter) wait(ctx context.Context) error {
	l.mu.Lock()
	turn := time.Now()
	if l.next.After(turn) {
		turn = l.next
	}
	l.next = turn.Add(l.gap)
	l.mu.Unlock()
	if !sleep(ctx, time.Until(turn)) {
		return ctx.Err()
	}
	return nil
}

// sleep waits for d, or returns false if ctx ends first.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

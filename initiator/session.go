package initiator

import (
	"context"
	"crypto/rand"
	"fmt"
	"sync"
	"time"

	"github.com/hitkit/hitkit/iscsi"
	"github.com/sirupsen/logrus"
)

type sessionState int

const (
	stateLoggedIn   sessionState = iota
	stateRecovering              // the conn was lost; logging in again
	stateRenewing                // draining for a logout the target asked for
	stateClosing
	stateClosed
	stateFailed
)

// Session is a logged-in iSCSI session with one connection. It is safe for
// concurrent use: many commands may be outstanding at once, up to the
// command window that the target grants.
type Session struct {
	cfg  Config
	log  *logrus.Entry
	isid iscsi.ISID

	mu       sync.Mutex
	state    sessionState
	failErr  error
	conn     *conn
	tsih     uint16
	cmdSN    uint32 // the next CmdSN to assign
	expCmdSN uint32
	maxCmdSN uint32
	nextITT  uint32
	tasks    map[uint32]*task
	changed  chan struct{} // closed and replaced when state, conn or window change
	waiting  int           // goroutines blocked on changed; window updates signal only them

	// life ends when Close is called, cutting short recovery logins and waits.
	life    context.Context
	endLife context.CancelFunc
	wg      sync.WaitGroup
}

// Dial connects and logs in. For a normal session Config.TargetName must be
// set; without it the session is a discovery session.
func Dial(ctx context.Context, cfg Config) (*Session, error) {
	cfg = cfg.withDefaults()
	s := &Session{
		cfg:     cfg,
		isid:    cfg.ISID,
		tasks:   make(map[uint32]*task),
		changed: make(chan struct{}),
		nextITT: 1,
	}
	s.life, s.endLife = context.WithCancel(context.Background())
	if s.isid == (iscsi.ISID{}) {
		s.isid = RandomISID()
	}
	s.log = cfg.Log.WithFields(logrus.Fields{"target": cfg.TargetName, "isid": fmt.Sprintf("%x", s.isid[:])})
	c, lr, err := s.connect(ctx)
	if err != nil {
		s.endLife()
		return nil, err
	}
	s.install(c, lr)
	return s, nil
}

// RandomISID returns an ISID of the random type (RFC 7143 section 11.12.5).
func RandomISID() iscsi.ISID {
	var id iscsi.ISID
	rand.Read(id[:])
	id[0] = 0x80 | id[0]&0x3f // T=10b: random
	return id
}

// ISID returns the session's initiator identifier, which stays the same
// across reinstatement.
func (s *Session) ISID() iscsi.ISID { return s.isid }

// Params returns the parameters negotiated by the current login.
func (s *Session) Params() iscsi.Params {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn == nil {
		return iscsi.Params{}
	}
	return s.conn.params
}

// Portal returns the address the session is connected to now, after
// redirects, or "" while it is not connected.
func (s *Session) Portal() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn == nil {
		return ""
	}
	return s.conn.portal
}

// Abort drops the current connection at once, as a dead link would. The
// session then recovers as configured: commands in flight are sent again
// after a new login, or fail at once with ErrConnectionLost when the
// replacement timeout is negative. Multipath calls it when a NIC loses its
// carrier, rather than wait for a NOP-Out to go unanswered.
func (s *Session) Abort(reason error) {
	s.mu.Lock()
	c := s.conn
	s.mu.Unlock()
	if c != nil {
		c.close(reason)
	}
}

// LocalAddr is the local address of the current connection, host:port,
// or "" between connections.
func (s *Session) LocalAddr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn == nil {
		return ""
	}
	return s.conn.nc.LocalAddr().String()
}

// Err returns why the session failed, or nil while it is usable.
func (s *Session) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch s.state {
	case stateFailed:
		return s.failErr
	case stateClosing, stateClosed:
		return ErrClosed
	}
	return nil
}

// install makes c the session's connection and starts its goroutines.
func (s *Session) install(c *conn, lr *loginResult) {
	c.params = lr.params
	c.fr.HeaderDigest, c.fr.DataDigest = lr.params.HeaderDigest, lr.params.DataDigest
	c.batch.direct = false // from now on, many goroutines write
	c.fr.MaxRecvDataSegment = int(lr.params.InitiatorMaxRecvDSL)
	c.expStatSN.Store(lr.sn.StatSN + 1)

	s.mu.Lock()
	s.conn, s.tsih, s.state = c, lr.tsih, stateLoggedIn
	s.cmdSN, s.expCmdSN, s.maxCmdSN = lr.sn.ExpCmdSN, lr.sn.ExpCmdSN, lr.sn.MaxCmdSN
	s.signalLocked()
	s.mu.Unlock()

	s.wg.Add(2)
	go func() { defer s.wg.Done(); c.readLoop() }()
	go func() { defer s.wg.Done(); c.keepalive(s.cfg.NopInterval, s.cfg.NopTimeout) }()
	c.log.WithField("tsih", lr.tsih).Info("logged in")
}

func (s *Session) signalLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// windowOpenLocked reports whether the target lets us send the next command.
func (s *Session) windowOpenLocked() bool {
	return iscsi.SerialInWindow(s.cmdSN, s.expCmdSN, s.maxCmdSN)
}

// updateWindow applies the ExpCmdSN and MaxCmdSN of a target PDU. Values
// that are stale, or that describe an impossible window, are ignored as
// RFC 7143 section 4.2.2.1 requires.
func (s *Session) updateWindow(exp, max uint32) {
	s.mu.Lock()
	s.updateWindowLocked(exp, max)
	s.mu.Unlock()
}

func (s *Session) updateWindowLocked(exp, max uint32) {
	if iscsi.SerialLess(max, exp-1) {
		return
	}
	opened := false
	if iscsi.SerialLess(s.expCmdSN, exp) {
		s.expCmdSN, opened = exp, true
	}
	if iscsi.SerialLess(s.maxCmdSN, max) {
		s.maxCmdSN, opened = max, true
	}
	if opened && s.waiting > 0 {
		s.signalLocked()
	}
}

// waitReady waits until the session is logged in with room in the window,
// and returns its connection.
func (s *Session) waitReady(ctx context.Context, needWindow bool) (*conn, error) {
	for {
		s.mu.Lock()
		switch s.state {
		case stateFailed:
			s.mu.Unlock()
			return nil, s.failErr
		case stateClosing, stateClosed:
			s.mu.Unlock()
			return nil, ErrClosed
		case stateLoggedIn:
			if !needWindow || s.windowOpenLocked() {
				c := s.conn
				s.mu.Unlock()
				return c, nil
			}
		}
		ch := s.changed
		s.waiting++
		s.mu.Unlock()
		var err error
		select {
		case <-ch:
		case <-ctx.Done():
			err = ctx.Err()
		}
		s.mu.Lock()
		s.waiting--
		s.mu.Unlock()
		if err != nil {
			return nil, err
		}
	}
}

// register gives t a fresh initiator task tag and enters it in the table.
func (s *Session) register(t *task) {
	s.mu.Lock()
	t.itt = s.allocITTLocked()
	s.tasks[t.itt] = t
	s.mu.Unlock()
}

func (s *Session) allocITTLocked() uint32 {
	for {
		itt := s.nextITT
		s.nextITT++
		if itt == iscsi.ReservedTag || itt == 0 {
			continue
		}
		if _, busy := s.tasks[itt]; !busy {
			return itt
		}
	}
}

func (s *Session) forget(t *task) {
	s.mu.Lock()
	if s.tasks[t.itt] == t {
		delete(s.tasks, t.itt)
	}
	t.conn = nil
	s.mu.Unlock()
}

// pingTag returns a tag for a keepalive NOP-Out and the CmdSN it carries
// (immediate PDUs do not advance CmdSN).
func (s *Session) pingTag() (itt, cmdSN uint32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.allocITTLocked(), s.cmdSN
}

func (s *Session) currentCmdSN() uint32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cmdSN
}

// lookup finds the task that a PDU arriving on c is for. A task sent on an
// older connection, or of another kind, is not returned.
func (s *Session) lookup(itt uint32, c *conn, kind taskKind) *task {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tasks[itt]
	if t == nil || t.conn != c || t.kind != kind {
		return nil
	}
	return t
}

// complete hands a finished task back to its caller.
func (s *Session) complete(t *task) {
	s.mu.Lock()
	delete(s.tasks, t.itt)
	t.conn = nil
	s.mu.Unlock()
	t.wake <- wakeDone
}

// finish is complete for a status-bearing PDU: the window it carries is
// applied under the same lock, which every command's completion takes.
func (s *Session) finish(t *task, exp, max uint32) {
	s.mu.Lock()
	s.updateWindowLocked(exp, max)
	delete(s.tasks, t.itt)
	t.conn = nil
	s.mu.Unlock()
	t.wake <- wakeDone
}

// connGone runs when c's reader exits. Tasks sent on c go back to their
// callers to be sent again, and the session starts to recover.
func (s *Session) connGone(c *conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range s.tasks {
		if t.conn == c {
			t.conn = nil
			t.wake <- wakeRetry
		}
	}
	if s.conn != c {
		return
	}
	s.conn = nil
	defer s.signalLocked()
	switch {
	case s.state != stateLoggedIn:
		return // closing, or renewing: Renew logs in again itself
	case s.cfg.ReplacementTimeout < 0:
		s.state, s.failErr = stateFailed, fmt.Errorf("%w: %v", ErrConnectionLost, c.closeErr)
	default:
		s.state = stateRecovering
		s.wg.Add(1)
		go func() { defer s.wg.Done(); s.recover(c.closeErr) }()
	}
}

// recover logs in again with the same ISID, which reinstates the session on
// the target, until the replacement timeout runs out.
func (s *Session) recover(cause error) {
	deadline := time.Now().Add(s.cfg.ReplacementTimeout)
	backoff := 100 * time.Millisecond
	lastErr := cause
	for attempt := 1; ; attempt++ {
		ctx, cancel := context.WithDeadline(s.life, deadline)
		c, lr, err := s.connect(ctx)
		cancel()
		if err == nil {
			if !s.reinstate(c, lr) {
				c.close(ErrClosed)
			}
			return
		}
		lastErr = err
		if attempt == 1 || attempt%10 == 0 {
			s.log.WithError(err).WithField("attempt", attempt).Warn("session recovery: login failed; retrying")
		}
		wait := min(backoff, time.Until(deadline))
		if wait <= 0 || !s.sleep(wait) {
			break
		}
		backoff = min(backoff*2, 2*time.Second)
	}
	s.mu.Lock()
	if s.state == stateRecovering {
		s.state, s.failErr = stateFailed, fmt.Errorf("%w (%v): %v", ErrReplacementTimeout, s.cfg.ReplacementTimeout, lastErr)
		s.signalLocked()
		s.log.WithError(s.failErr).Error("session failed")
	}
	s.mu.Unlock()
}

// reinstate installs a recovered connection unless the session was closed
// in the meantime.
func (s *Session) reinstate(c *conn, lr *loginResult) bool {
	s.mu.Lock()
	ok := s.state == stateRecovering || s.state == stateRenewing
	s.mu.Unlock()
	if ok {
		s.install(c, lr)
	}
	return ok
}

// sleep waits for d, or returns false if the session is closed first.
func (s *Session) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.life.Done():
		return false
	}
}

// deliver passes an async event to the owner, off the reader goroutine.
func (s *Session) deliver(c *conn, ev Event) {
	c.log.WithField("event", ev.Kind).WithField("within", ev.Within).Info("async event from target")
	if s.cfg.OnEvent != nil {
		go s.cfg.OnEvent(ev)
		return
	}
	if ev.Kind == EventLogoutRequested {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), max(ev.Within, time.Second))
			defer cancel()
			if err := s.Renew(ctx); err != nil {
				s.log.WithError(err).Warn("renewing the login after a logout request")
			}
		}()
	}
}

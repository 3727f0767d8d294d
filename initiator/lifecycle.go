package initiator

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hitkit/hitkit/iscsi"
)

// connect dials the portal and logs in, following redirects.
func (s *Session) connect(ctx context.Context) (*conn, *loginResult, error) {
	addr := s.cfg.Portal
	for hop := 0; ; hop++ {
		c, lr, err := s.loginAt(ctx, addr)
		var redirect *redirectError
		if !errors.As(err, &redirect) {
			return c, lr, err
		}
		if hop >= s.cfg.MaxRedirects {
			return nil, nil, fmt.Errorf("login to %s: more than %d redirects, last to %s", s.cfg.Portal, s.cfg.MaxRedirects, redirect.addr)
		}
		s.log.WithField("portal", addr).WithField("to", redirect.addr).Debug("login redirected")
		addr = redirect.addr
	}
}

// loginAt dials addr and runs the login phase on it.
func (s *Session) loginAt(ctx context.Context, addr string) (*conn, *loginResult, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.LoginTimeout)
	defer cancel()
	nc, err := s.cfg.dial(ctx, addr)
	if err != nil {
		return nil, nil, fmt.Errorf("connect to portal %s: %w", addr, err)
	}
	if dl, ok := ctx.Deadline(); ok {
		nc.SetDeadline(dl)
	}
	c := newConn(s, nc, addr)
	s.mu.Lock()
	cmdSN := s.cmdSN
	s.mu.Unlock()
	lr, err := newLogin(&s.cfg, c.fr, s.isid, cmdSN).run()
	if err != nil {
		nc.Close()
		var le *LoginError
		if errors.As(err, &le) {
			le.Portal = addr
		}
		return nil, nil, err
	}
	nc.SetDeadline(time.Time{})
	return c, lr, nil
}

// Renew logs out and logs in again through the configured portal, which
// may redirect the session elsewhere. It is the answer to a target's
// logout request: new commands wait, commands in flight drain until ctx is
// near its end, and what is still in flight then is sent again after the
// new login. Callers see no errors.
func (s *Session) Renew(ctx context.Context) error {
	s.mu.Lock()
	if s.state != stateLoggedIn {
		s.mu.Unlock()
		return nil
	}
	s.state = stateRenewing
	c := s.conn
	s.signalLocked()
	s.mu.Unlock()

	s.drain(ctx, c)
	s.logout(c, time.Second)
	c.close(ErrClosed)
	<-c.done

	nc, lr, err := s.connect(ctx)
	if err != nil || !s.reinstate(nc, lr) {
		if nc != nil {
			nc.close(ErrClosed)
		}
		s.mu.Lock()
		if s.state == stateRenewing {
			s.state = stateRecovering
			s.wg.Add(1)
			go func() { defer s.wg.Done(); s.recover(err) }()
		}
		s.mu.Unlock()
		return err
	}
	return nil
}

// drain waits until no command is outstanding on c, or until ctx is within
// a safety margin of its deadline.
func (s *Session) drain(ctx context.Context, c *conn) {
	if dl, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, dl.Add(-time.Until(dl)/4))
		defer cancel()
	}
	for {
		s.mu.Lock()
		busy := false
		for _, t := range s.tasks {
			busy = busy || t.conn == c && t.kind == kindSCSI
		}
		ch := s.changed
		s.mu.Unlock()
		if !busy || c.isClosed() {
			return
		}
		select {
		case <-ch:
		case <-time.After(5 * time.Millisecond):
		case <-ctx.Done():
			return
		}
	}
}

func (c *conn) isClosed() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// logout ends the session on the target, best effort.
func (s *Session) logout(c *conn, timeout time.Duration) error {
	if c == nil || c.isClosed() {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	h, _, err := s.request(ctx, c, logoutReq{&iscsi.LogoutRequest{Immediate: true, Reason: iscsi.LogoutSession}}, nil)
	if err != nil {
		return fmt.Errorf("logout: %w", err)
	}
	var resp iscsi.LogoutResponse
	resp.Unmarshal(h)
	if resp.Response != iscsi.LogoutOK {
		return fmt.Errorf("logout: target answered %d", resp.Response)
	}
	return nil
}

// Close waits briefly for commands in flight, logs out and releases the
// session. Commands still waiting fail with ErrClosed. Close leaks no
// goroutine.
func (s *Session) Close() error {
	s.mu.Lock()
	if s.state == stateClosing || s.state == stateClosed {
		s.mu.Unlock()
		return nil
	}
	wasLoggedIn := s.state == stateLoggedIn
	s.state = stateClosing
	c := s.conn
	s.signalLocked()
	s.mu.Unlock()
	s.endLife()

	var err error
	if wasLoggedIn && c != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		s.drain(ctx, c)
		cancel()
		err = s.logout(c, 2*time.Second)
	}
	if c != nil {
		c.close(ErrClosed)
	}
	s.mu.Lock()
	s.state = stateClosed
	s.signalLocked()
	s.mu.Unlock()
	s.wg.Wait()
	return err
}

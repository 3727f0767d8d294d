package target

import (
	"errors"
	"math"
	"time"

	"github.com/hitkit/hitkit/iscsi"
)

var (
	errLogoutOverdue = errors.New("initiator did not log out when asked")
	errDropped       = errors.New("dropped by the target")
)

// asyncDropGrace is how long the target waits, after announcing that it
// drops a connection or session, before it does: time for the initiator to
// read the announcement.
const asyncDropGrace = 200 * time.Millisecond

// RequestLogout asks the initiator of session tsih to log out within the
// given time (AsyncEvent 1, RFC 7143 section 11.9.1), as an array does
// to move a session to another port. A session still there after that is
// dropped.
func (s *Server) RequestLogout(tsih uint16, within time.Duration) error {
	ss, err := s.session(tsih)
	if err != nil {
		return err
	}
	secs := uint16(min(math.Ceil(within.Seconds()), math.MaxUint16))
	c := ss.conn
	if err := c.write(&iscsi.AsyncMessage{Event: iscsi.AsyncLogoutRequest, Parameter3: secs}, nil, true); err != nil {
		return err
	}
	ss.log.WithField("within", within).Info("asked the initiator to log out")
	s.afterUnlessGone(c, within, func() {
		ss.log.Warn("initiator did not log out in time; dropping the session")
		c.close(errLogoutOverdue)
	})
	return nil
}

// DropConnection announces that the target drops session tsih's connection
// (AsyncEvent 2), then drops it. The initiator may reconnect after
// time2Wait.
func (s *Server) DropConnection(tsih uint16, time2Wait time.Duration) error {
	return s.announceDrop(tsih, iscsi.AsyncConnectionDrop, time2Wait)
}

// DropSession announces that the target drops session tsih (AsyncEvent 3),
// then drops it.
func (s *Server) DropSession(tsih uint16, time2Wait time.Duration) error {
	return s.announceDrop(tsih, iscsi.AsyncSessionDrop, time2Wait)
}

func (s *Server) announceDrop(tsih uint16, event uint8, time2Wait time.Duration) error {
	ss, err := s.session(tsih)
	if err != nil {
		return err
	}
	c := ss.conn
	msg := iscsi.AsyncMessage{
		Event: event, Parameter1: c.cid,
		Parameter2: uint16(min(math.Ceil(time2Wait.Seconds()), 3600)),
	}
	if err := c.write(&msg, nil, true); err != nil {
		return err
	}
	ss.log.WithField("event", event).Info("announced a drop")
	s.afterUnlessGone(c, asyncDropGrace, func() { c.close(errDropped) })
	return nil
}

// afterUnlessGone runs f after d, unless the connection ends first.
func (s *Server) afterUnlessGone(c *conn, d time.Duration, f func()) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			f()
		case <-c.done:
		}
	}()
}

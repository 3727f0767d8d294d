package target

import (
	"encoding/hex"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hitkit/hitkit/iscsi"
	"github.com/sirupsen/logrus"
)

// session is a logged-in session. The engine runs one connection per
// session, so the session holds what outlives a single PDU (the nexus, the
// command window, the tasks) and its conn does the I/O.
type session struct {
	srv       *Server
	conn      *conn
	tsih      uint16
	isid      iscsi.ISID
	initiator string
	target    *Target // nil for a discovery session
	chapUser  string
	params    iscsi.Params
	nexus     Nexus
	started   time.Time
	log       logrus.FieldLogger

	mu          sync.Mutex
	expCmdSN    uint32
	depth       uint32
	outstanding uint32 // window slots held by commands not yet answered
	tasks       map[uint32]*task

	commands atomic.Uint64
	bytesIn  atomic.Uint64 // write data received
	bytesOut atomic.Uint64 // read data sent
	// commandNanos is the cumulative time, in nanoseconds, from each SCSI
	// command's arrival to its response being sent, for the commands that
	// were answered (an aborted command adds nothing). Divided by the
	// change in commands over an interval, it gives the mean latency.
	commandNanos atomic.Uint64
}

func (s *session) discovery() bool { return s.target == nil }

// window returns ExpCmdSN and MaxCmdSN. A slot frees up only when a
// command is answered, so MaxCmdSN never moves backwards and at most
// depth commands are outstanding.
func (s *session) window() (exp, max uint32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.windowLocked()
}

func (s *session) windowLocked() (exp, max uint32) {
	return s.expCmdSN, s.expCmdSN - 1 + s.depth - s.outstanding
}

// admit applies the CmdSN rules to a command (RFC 7143 section 4.2.2.1):
// immediate commands pass, others must fall in the window and are
// silently ignored otherwise. holdSlot keeps a window slot until release.
func (s *session) admit(cmdSN uint32, immediate, holdSlot bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if immediate {
		return true
	}
	exp, max := s.windowLocked()
	if !iscsi.SerialInWindow(cmdSN, exp, max) {
		s.log.WithFields(logrus.Fields{"cmdsn": cmdSN, "expcmdsn": exp, "maxcmdsn": max}).
			Debug("ignoring a command outside the CmdSN window")
		return false
	}
	s.expCmdSN = cmdSN + 1
	if holdSlot {
		s.outstanding++
	}
	return true
}

// release frees the window slot of a command that held one.
func (s *session) release() {
	s.mu.Lock()
	s.outstanding--
	s.mu.Unlock()
}

// SessionInfo describes a session, for status displays and tests.
type SessionInfo struct {
	TSIH          uint16
	Type          string // "Normal" or "Discovery"
	InitiatorName string
	ISID          string // hex
	TargetName    string
	Portal        PortalInfo // the portal it logged in through
	Remote        string     // the initiator's address
	CHAPUser      string
	Params        iscsi.Params
	Since         time.Time
	Outstanding   int // commands in progress
	Commands      uint64
	BytesIn       uint64 // written by the initiator
	BytesOut      uint64 // read by the initiator
	CommandNanos  uint64 // cumulative command latency, arrival to response sent
}

func (s *session) info() SessionInfo {
	s.mu.Lock()
	outstanding := len(s.tasks)
	s.mu.Unlock()
	typ, name := "Discovery", ""
	if s.target != nil {
		typ, name = "Normal", s.target.Name
	}
	return SessionInfo{
		TSIH: s.tsih, Type: typ, InitiatorName: s.initiator, ISID: hex.EncodeToString(s.isid[:]),
		TargetName: name, Portal: s.conn.portal.info, Remote: s.conn.nc.RemoteAddr().String(),
		CHAPUser: s.chapUser, Params: s.params, Since: s.started, Outstanding: outstanding,
		Commands: s.commands.Load(), BytesIn: s.bytesIn.Load(), BytesOut: s.bytesOut.Load(),
		CommandNanos: s.commandNanos.Load(),
	}
}

// Sessions lists the logged-in sessions, ordered by TSIH.
func (s *Server) Sessions() []SessionInfo {
	s.mu.Lock()
	list := make([]*session, 0, len(s.sessions))
	for _, ss := range s.sessions {
		list = append(list, ss)
	}
	s.mu.Unlock()
	out := make([]SessionInfo, 0, len(list))
	for _, ss := range list {
		out = append(out, ss.info())
	}
	slices.SortFunc(out, func(a, b SessionInfo) int { return int(a.TSIH) - int(b.TSIH) })
	return out
}

func (s *Server) session(tsih uint16) (*session, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ss, ok := s.sessions[tsih]
	if !ok {
		return nil, errNoSession
	}
	return ss, nil
}

var (
	errNoSession   = errors.New("target: no such session")
	errReinstated  = errors.New("session reinstated by a new login")
	reinstateGrace = 5 * time.Second
)

// register adds a session that just logged in. A session with the same
// initiator, ISID, target and portal group is the initiator starting
// over (session reinstatement, RFC 7143 section 6.3.5): the old one is
// closed first, and its commands are given up to reinstateGrace to end.
func (s *Server) register(ss *session) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrServerClosed
	}
	var old *session
	for _, o := range s.sessions {
		if o.initiator == ss.initiator && o.isid == ss.isid && o.target == ss.target &&
			o.conn.portal.info.TPGT == ss.conn.portal.info.TPGT {
			old = o
		}
	}
	ss.tsih = s.newTSIH()
	ss.log = ss.log.WithField("tsih", ss.tsih)
	s.sessions[ss.tsih] = ss
	s.mu.Unlock()
	if old != nil {
		old.log.Info("session reinstated; closing the old one")
		old.conn.close(errReinstated)
		select {
		case <-old.conn.finished:
		case <-time.After(reinstateGrace):
			old.log.Warn("old session is slow to end; going ahead with the new one")
		}
	}
	return nil
}

// newTSIH picks an unused, non-zero TSIH. s.mu is held.
func (s *Server) newTSIH() uint16 {
	for {
		s.lastTSIH++
		if _, used := s.sessions[s.lastTSIH]; s.lastTSIH != 0 && !used {
			return s.lastTSIH
		}
	}
}

func (s *Server) unregister(ss *session) {
	s.mu.Lock()
	registered := s.sessions[ss.tsih] == ss
	if registered {
		delete(s.sessions, ss.tsih)
	}
	s.mu.Unlock()
	if registered && ss.target != nil {
		ss.target.nexusLost(ss.nexus)
	}
}

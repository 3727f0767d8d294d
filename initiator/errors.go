package initiator

import (
	"errors"
	"fmt"

	"github.com/hitkit/hitkit/iscsi"
)

var (
	// ErrClosed is returned for commands on a session that Close ended.
	ErrClosed = errors.New("iscsi session closed")
	// ErrConnectionLost is returned when a connection fails and the session
	// does not recover in place (ReplacementTimeout is zero).
	ErrConnectionLost = errors.New("iscsi connection lost")
	// ErrReplacementTimeout is returned when the session could not log in
	// again within its replacement timeout.
	ErrReplacementTimeout = errors.New("iscsi session not recovered within the replacement timeout")
	// ErrNopTimeout is why a connection is dropped when the target stops
	// answering pings: the link or the target went silent.
	ErrNopTimeout = errors.New("target did not answer a NOP-Out ping in time")
)

// LoginError is a login refused by the target, with the status it sent.
type LoginError struct {
	Portal string
	Target string
	Status iscsi.LoginStatus
}

func (e *LoginError) Error() string {
	hint := ""
	switch e.Status {
	case iscsi.LoginAuthFailed:
		hint = ": check the CHAP user and secret"
	case iscsi.LoginNotFound:
		hint = ": check the target name (hitkit discover lists them)"
	case iscsi.LoginAuthorizationFailed:
		hint = ": the target's access list does not include this initiator"
	}
	if e.Target == "" {
		return fmt.Sprintf("discovery login at %s: %v%s", e.Portal, e.Status, hint)
	}
	return fmt.Sprintf("login to %s at %s: %v%s", e.Target, e.Portal, e.Status, hint)
}

// Is lets callers test for a status with errors.Is(err, &LoginError{Status: s}).
func (e *LoginError) Is(target error) bool {
	t, ok := target.(*LoginError)
	return ok && t.Status == e.Status
}

// ProtocolError is a target that broke the protocol. The connection it came
// on is dropped.
type ProtocolError struct{ Reason string }

func (e *ProtocolError) Error() string { return "iscsi protocol error: " + e.Reason }

func protocolErrorf(format string, args ...any) error {
	return &ProtocolError{fmt.Sprintf(format, args...)}
}
